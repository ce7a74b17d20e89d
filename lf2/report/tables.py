"""Table II (and our line of Table I) from the metrics JSON files of a run.

Inputs: the metrics files of :func:`lf2.layout.metrics_paths` for every direction of the
params, every row of :func:`lf2.config.rows_for` and every seed of ``rows.seeds``. Outputs:
``table2.csv`` (ours: seed means, then per direction the std / Student-t 95% CI of mAP and
Rank-1, n and the share of the gap to the supervised row closed), ``table2_diffs.csv``
(paired differences over seeds, :mod:`lf2.report.spread`), ``leak.csv`` (the leak meter,
:mod:`lf2.report.leak`), ``table2.md`` (all of it, ours beside the paper's numbers) and
``table1.csv`` (our LF² line, seed means, among Table I's methods). All numbers are percent,
from the LAST epoch's checkpoint.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from lf2 import layout
from lf2.errors import LF2Error
from lf2.io import atomic_path, atomic_write_text
from lf2.report import leak, spread
from lf2.report.paper import (
    METRIC_LABELS,
    METRICS,
    PAPER_CITATION,
    PAPER_DIRECTIONS,
    load_paper_values,
    paper_direction,
    table1_methods,
    table2_values,
)

LAST_EPOCH_NOTE = (
    "All numbers of this run are from the LAST epoch's checkpoint (no model selection on the "
    "test split); Direct transfer is the last epoch of source pre-training."
)


# ----------------------------------------------------------------------------- params helpers


def _rows_for(params: dict) -> list[str]:
    from lf2.config import rows_for

    return rows_for(params)


def _row_spec(params: dict, row: str) -> dict[str, Any]:
    from lf2.config import row_spec

    return row_spec(params, row)


def display_name(params: dict, row: str) -> str:
    """The Table II name of a row, with this run's M_t (e.g. ``LF² (M_t = 48)``)."""
    return str(_row_spec(params, row)["display_name"])


def reference_lf2_row(params: dict) -> str:
    """The LF² row of our Table I line (:func:`lf2.config.reference_row` of ``lf2``)."""
    from lf2.config import reference_row

    return reference_row(params, "lf2")


SeedMetrics = dict[tuple[str, str, int], dict[str, Any]]


# ----------------------------------------------------------------------------- reading metrics


def load_metrics(path: str | os.PathLike[str]) -> dict[str, Any]:
    """One metrics JSON; checks that mAP and Rank-1/5/10 are fractions in [0, 1]."""
    p = Path(path)
    if not p.is_file():
        raise LF2Error(
            f"metrics file {p} does not exist; run `lf2 evaluate ... --out {p}` for that row first"
        )
    try:
        with open(p, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise LF2Error(f"metrics file {p} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise LF2Error(f"metrics file {p}: expected a JSON object, got {type(data).__name__}")
    for key in METRICS:
        value = data.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
            raise LF2Error(
                f"metrics file {p}: key {key!r} is {value!r}; expected a fraction in [0, 1]"
            )
    return data


def collect_seed_metrics(params: dict) -> SeedMetrics:
    """``{(direction, row, seed): metrics}``; a missing seed's file is an error naming it."""
    seeds = layout.seeds(params)
    return {(d["name"], row, s): load_metrics(path)
            for d in params["directions"] for row in _rows_for(params)
            for s, path in zip(seeds, layout.metrics_paths(params, d["name"], row), strict=True)}


def seed_means(params: dict, per_seed: SeedMetrics) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(direction, row): metrics}`` with mAP / Rank-k the means over seeds; the other keys
    (``rerank``, ``checkpoint``) from the first seed."""
    seeds = layout.seeds(params)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for d in params["directions"]:
        for row in _rows_for(params):
            runs = [per_seed[(d["name"], row, s)] for s in seeds]
            out[(d["name"], row)] = {**runs[0], **{k: math.fsum(r[k] for r in runs) / len(runs) for k in METRICS}}
    return out


def collect_metrics(params: dict) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(direction, row): metrics}`` (seed means) for every direction and Table II row."""
    return seed_means(params, collect_seed_metrics(params))


def pct(value: float) -> float:
    """Fraction -> percent with one decimal, rounding halves away from zero."""
    x = 100.0 * float(value)
    return math.floor(x * 10.0 + 0.5 + 1e-9) / 10.0


# ----------------------------------------------------------------------------- building tables


def metric_columns(direction: str) -> list[str]:
    return [f"{direction} {METRIC_LABELS[m]}" for m in METRICS]


def build_table2(params: dict, metrics: dict[tuple[str, str], dict[str, Any]],
                 per_seed: SeedMetrics | None = None) -> pd.DataFrame:
    """One line per Table II row (paper order), 4 percent columns (seed means) per direction;
    with ``per_seed``, then per direction the spread columns of :func:`spread.spread_columns`."""
    rows, lines = _table2_rows(params), []
    for row in rows:
        line: dict[str, Any] = {"Method": display_name(params, row)}
        for d in params["directions"]:
            m = metrics[(d["name"], row)]
            for key, col in zip(METRICS, metric_columns(d["name"]), strict=True):
                line[col] = pct(m[key])
        if per_seed is not None:
            for d in params["directions"]:
                line.update(spread.spread_cells(per_seed, d["name"], row, rows, layout.seeds(params)))
        lines.append(line)
    return pd.DataFrame(lines)


def build_diffs(params: dict, per_seed: SeedMetrics) -> pd.DataFrame:
    """table2_diffs: the comparisons of :func:`spread.comparisons`, paired over seeds."""
    rows = _rows_for(params)
    pairs = spread.comparisons(rows, {r: _row_spec(params, r)["variant"] for r in rows},
                               reference_lf2_row(params) if any(_row_spec(params, r)["variant"] == "lf2"
                                                                for r in rows) else None)
    if "lf2" in {_row_spec(params, r)["variant"] for r in rows}:  # the FM-ablation contrasts
        lf2_row = reference_lf2_row(params)
        extra = [("no_fm_stripe", "no_fm"), (lf2_row, "no_fm_stripe"), ("lf2_fm_frozen", "no_fm"),
                 (lf2_row, "lf2_fm_frozen")]
        pairs = list(dict.fromkeys([*pairs, *((a, b) for a, b in extra if a in rows and b in rows)]))
    return spread.build_diffs(per_seed, [d["name"] for d in params["directions"]], pairs, layout.seeds(params))


def build_table1(
    params: dict, metrics: dict[tuple[str, str], dict[str, Any]], paper: pd.DataFrame
) -> pd.DataFrame:
    """Table I's published methods plus our LF² line (at :func:`reference_lf2_row`).

    Our directions that map to the paper's (real Duke/Market data) fill the paper's
    columns; others (synthetic) get their own column group, empty for the published lines.
    """
    published = table1_methods(paper)
    row = reference_lf2_row(params)
    ours: dict[str, Any] = {
        "Category": "This run",
        "Method": f"{display_name(params, row)}, this run (last epoch)",
        "Reference": f"lf2 row {row}",
    }
    extra_cols: list[str] = []
    for d in params["directions"]:
        pd_name = paper_direction(params, d)
        cols = metric_columns(pd_name) if pd_name else metric_columns(d["name"])
        if not pd_name:
            extra_cols += cols
        m = metrics[(d["name"], row)]
        for key, col in zip(METRICS, cols, strict=True):
            ours[col] = pct(m[key])
    table = pd.concat([published, pd.DataFrame([ours])], ignore_index=True)
    paper_cols = [c for d in PAPER_DIRECTIONS for c in metric_columns(d)]
    return table[["Category", "Method", "Reference", *paper_cols, *extra_cols]]


# ----------------------------------------------------------------------------- markdown


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{float(value):.1f}"


def _md_table(header: list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return lines


def _is_supplementary(params: dict, row: str) -> bool:
    from lf2.train.variants import VARIANTS

    return VARIANTS[_row_spec(params, row)["variant"]].supplementary


def _table2_rows(params: dict) -> list[str]:
    """Table II proper: supplementary rows are tabled apart (:func:`_supplementary_md`)."""
    return [r for r in _rows_for(params) if not _is_supplementary(params, r)]


def _supplementary_md(params: dict, metrics: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    """The FM-ablation rows beside w/o FM and LF² at the same M_t (rows.ablation_clusters)."""
    all_rows = _rows_for(params)
    extra = [r for r in all_rows if _is_supplementary(params, r)]
    if not extra:
        return []
    abl = params["rows"]["ablation_clusters"]
    rows = [r for r in all_rows if r in ("no_fm", f"lf2_m{abl}")]
    rows = rows[:1] + extra + rows[1:]
    out = [f"## Supplementary: what the Fusion Module adds (M_t = {abl})", "",
           "LF² − w/o FM mixes two effects: clustering on fused features and an extra "
           "softmax-triplet on the stripes (the FM term). `no_fm_stripe` − w/o FM: the extra "
           "stripe supervision alone. LF² − `no_fm_stripe`: clustering on fused features, the "
           "supervision matched. `lf2_fm_frozen` − w/o FM: clustering on randomly fused features, "
           "no extra supervision. LF² − `lf2_fm_frozen`: training FM (docs/method-choices.md).", ""]
    for d in params["directions"]:
        out += [f"### {d['name']}", ""]
        body = [[display_name(params, r), *(_fmt(pct(metrics[(d["name"], r)][k])) for k in METRICS)]
                for r in rows]
        out += _md_table(["Method", "mAP", "Rank-1", "Rank-5", "Rank-10"], body) + [""]
    return out


def render_table2_md(
    params: dict,
    metrics: dict[tuple[str, str], dict[str, Any]],
    paper: pd.DataFrame,
    per_seed: SeedMetrics | None = None,
    diffs: pd.DataFrame | None = None,
    leak_table: pd.DataFrame | None = None,
) -> str:
    """Markdown: our Table II (seed means), beside the paper's numbers where the data are the
    real ones; with ``per_seed`` each direction's spread, the paired differences, the leak
    meter and the sources follow."""
    rows = _table2_rows(params)
    seeds = layout.seeds(params)
    directions = params["directions"]
    mapped = {d["name"]: paper_direction(params, d) for d in directions}
    out = ["# Table II: component analysis and number of pseudo identities", ""]
    out += [f"> {LAST_EPOCH_NOTE}", ""]
    rerank = sorted({bool(metrics[(d["name"], r)].get("rerank", False)) for d in directions for r in rows})
    out += [
        f"Re-ranking: {'on' if rerank == [True] else 'off' if rerank == [False] else 'mixed'}. "
        "Percent, one decimal. Paper: " + PAPER_CITATION + ", Table II.",
        f"Our numbers are means over seeds {seeds} (n = {len(seeds)}); the spread is the sample "
        "std and the Student-t 95% interval of the mean.",
        f"Baseline and LF² w/o FM use M_t = rows.ablation_clusters = "
        f"{params['rows']['ablation_clusters']} (the paper: 700).",
        "",
    ]
    for d in directions:
        name = d["name"]
        pname = mapped[name]
        title = f"## {name}: {d['source']} → {d['target']}"
        if pname:
            title += f" (the paper's {pname})"
        out += [title, ""]
        header = ["Method", "mAP", "Rank-1", "Rank-5", "Rank-10"]
        if pname:
            header = ["Method", "mAP", "mAP (paper)", "Rank-1", "Rank-1 (paper)", "Rank-5",
                      "Rank-10"]
        body = []
        for row in rows:
            m = metrics[(name, row)]
            ours = [_fmt(pct(m[k])) for k in METRICS]
            if pname:
                pv = table2_values(paper, row, pname)
                pm = _fmt(pv["mAP"]) if pv else "—"
                pr1 = _fmt(pv["rank1"]) if pv else "—"
                body.append([display_name(params, row), ours[0], pm, ours[1], pr1, ours[2], ours[3]])
            else:
                body.append([display_name(params, row), *ours])
        out += _md_table(header, body) + [""]
        if pname:
            missing = [display_name(params, r) for r in rows if table2_values(paper, r, pname) is None]
            if missing:
                out += [f"The paper has no line for: {', '.join(missing)} (M_t differs from its "
                        "500 / 700 / 900).", ""]
        if per_seed is not None:
            out += _spread_md(params, per_seed, name, rows, seeds)
    out += _supplementary_md(params, metrics)
    if not all(mapped.values()):
        out += [
            "## The paper's Table II (real data, for reference only)",
            "",
            "The paper's numbers are on DukeMTMC-reID ↔ Market-1501 with ResNet-50 at 256×128; "
            "the directions above use other data (e.g. the synthetic benchmark), so the two "
            "are not comparable number for number. Compare the ORDER of the rows instead.",
            "",
        ]
        header = ["Method"] + [f"{pd_} {lab}" for pd_ in PAPER_DIRECTIONS for lab in ("mAP", "Rank-1")]
        t2 = paper[paper["table"] == "II"]
        body = []
        for method in dict.fromkeys(t2["method"]):
            sub = t2[t2["method"] == method]
            cells = [method]
            for pd_ in PAPER_DIRECTIONS:
                rec = sub[sub["direction"] == pd_]
                cells += [_fmt(rec.iloc[0][k]) if not rec.empty else "—" for k in ("mAP", "rank1")]
            body.append(cells)
        out += _md_table(header, body) + [""]
    names = {r: display_name(params, r) for r in _rows_for(params)}  # supplementary rows too
    if diffs is not None:
        out += spread.render_diffs_md(diffs, names)
    if leak_table is not None:
        out += leak.render_leak_md(leak_table, names.__getitem__)
    if per_seed is not None:
        out += ["## Sources", ""]
        for d in directions:
            for row in _rows_for(params):  # supplementary rows too: every file read
                for s, path in zip(seeds, layout.metrics_paths(params, d["name"], row), strict=True):
                    ck = per_seed[(d["name"], row, s)].get("checkpoint") or {}
                    sha = str(ck.get("sha256", ""))[:12] if isinstance(ck, dict) else ""
                    out.append(f"- `{path}`" + (f" (checkpoint sha256 {sha}…)" if sha else ""))
        out.append("")
    return "\n".join(out)


def _spread_md(params: dict, per_seed: SeedMetrics, direction: str, rows: list[str], seeds: list[int]) -> list[str]:
    """A direction's spread: mean ± std [95% CI] of mAP and Rank-1, the share of the gap closed."""
    out = [f"Spread over seeds (n = {len(seeds)}): mean ± std [Student-t 95% CI]; gap closed = "
           "(row − Direct) / (supervised − Direct), on mean mAP.", ""]
    body = []
    for row in rows:
        cells = [display_name(params, row)]
        cells += [spread.fmt_interval(spread.row_summary(per_seed, direction, row, seeds, key))
                  for key, _ in spread.SPREAD_METRICS]
        gap = spread.gap_closed(per_seed, direction, row, rows, seeds)
        body.append([*cells, "—" if gap is None else f"{gap:.0f}%"])
    return out + _md_table(["Method", "mAP", "Rank-1", "gap closed"], body) + [""]


# ----------------------------------------------------------------------------- writing


def _write_csv(df: pd.DataFrame, path: Path, float_format: str = "%.1f") -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format=float_format, encoding="utf-8")


def write_tables(
    params: dict,
    out_csv: str | os.PathLike[str],
    *,
    paper_values: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Write ``table2.csv`` at ``out_csv`` and ``table2.md`` / ``table1.csv`` beside it."""
    out = Path(out_csv)
    per_seed = collect_seed_metrics(params)
    metrics = seed_means(params, per_seed)
    paper = load_paper_values(paper_values)
    t2 = build_table2(params, metrics, per_seed)
    t1 = build_table1(params, metrics, paper)
    diffs = build_diffs(params, per_seed)
    leaks = build_leak(params, per_seed)
    md = render_table2_md(params, metrics, paper, per_seed, diffs, leaks)
    paths = [out, *(out.with_name(n) for n in (layout.TABLE2_MD, layout.TABLE1_CSV,
                                                layout.TABLE2_DIFFS_CSV, layout.LEAK_CSV))]
    _write_csv(t2, paths[0])
    atomic_write_text(paths[1], md)
    _write_csv(t1, paths[2])
    _write_csv(diffs, paths[3], "%.2f")
    _write_csv(leaks, paths[4])
    return paths


def build_leak(params: dict, per_seed: SeedMetrics) -> pd.DataFrame:
    """The leak meter over every (direction, fine-tuning row, seed); empty without
    ``finetune.eval_every``. The last-epoch number is the last epoch's own test evaluation
    when there is one (same protocol both sides), else the row's metrics file."""
    from lf2.report.curves import load_epochs
    from lf2.rows import trained_rows

    def epochs_of(d: str, row: str, s: int) -> list[dict[str, Any]]:
        return [r for r in load_epochs(layout.epochs_path(params, d, row, s)) if r.get("stage") == "finetune"]

    def last_of(d: str, row: str, s: int) -> tuple[float, int]:
        recs = epochs_of(d, row, s)
        last = recs[-1] if recs else {}
        if last.get("eval"):
            return float(last["eval"]["mAP"]), int(last["epoch"])
        return float(per_seed[(d, row, s)]["mAP"]), int(last.get("epoch", params["finetune"]["epochs"]))

    keys = [(d["name"], r, s) for d in params["directions"] for r in trained_rows(params) for s in layout.seeds(params)]
    if not params["finetune"].get("eval_every"):
        keys = []
    return leak.build_leak_table(keys, epochs_of, last_of)
