"""Table II (and our line of Table I) from the metrics JSON files of a run.

Inputs: the metrics files of :func:`lf2.layout.metrics_paths` for every direction of the
params and every row of :func:`lf2.config.rows_for` (one per seed; the tables show the first
seed's numbers). Outputs: ``table2.csv`` (ours), ``table2.md``
(ours beside the paper's numbers) and ``table1.csv`` (our LF² line among Table I's methods).
All numbers are percent with one decimal, from the LAST epoch's checkpoint.
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


def table_metrics_path(params: dict, direction: str, row: str) -> str:
    """The metrics file a table line shows: the first seed's (means over seeds: later)."""
    return layout.metrics_paths(params, direction, row)[0]


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


def collect_metrics(params: dict) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(direction, row): metrics}`` for every direction and Table II row of the params."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for d in params["directions"]:
        for row in _rows_for(params):
            out[(d["name"], row)] = load_metrics(table_metrics_path(params, d["name"], row))
    return out


def pct(value: float) -> float:
    """Fraction -> percent with one decimal, rounding halves away from zero."""
    x = 100.0 * float(value)
    return math.floor(x * 10.0 + 0.5 + 1e-9) / 10.0


# ----------------------------------------------------------------------------- building tables


def metric_columns(direction: str) -> list[str]:
    return [f"{direction} {METRIC_LABELS[m]}" for m in METRICS]


def build_table2(params: dict, metrics: dict[tuple[str, str], dict[str, Any]]) -> pd.DataFrame:
    """One line per Table II row (paper order), 4 percent columns per params direction."""
    lines = []
    for row in _rows_for(params):
        line: dict[str, Any] = {"Method": display_name(params, row)}
        for d in params["directions"]:
            m = metrics[(d["name"], row)]
            for key, col in zip(METRICS, metric_columns(d["name"]), strict=True):
                line[col] = pct(m[key])
        lines.append(line)
    return pd.DataFrame(lines)


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


def render_table2_md(
    params: dict,
    metrics: dict[tuple[str, str], dict[str, Any]],
    paper: pd.DataFrame,
    sources: bool = False,
) -> str:
    """Markdown: our Table II, beside the paper's numbers where the data are the real ones."""
    rows = _rows_for(params)
    directions = params["directions"]
    mapped = {d["name"]: paper_direction(params, d) for d in directions}
    out = ["# Table II: component analysis and number of pseudo identities", ""]
    out += [f"> {LAST_EPOCH_NOTE}", ""]
    rerank = sorted({bool(metrics[(d["name"], r)].get("rerank", False)) for d in directions for r in rows})
    out += [
        f"Re-ranking: {'on' if rerank == [True] else 'off' if rerank == [False] else 'mixed'}. "
        "Percent, one decimal. Paper: " + PAPER_CITATION + ", Table II.",
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
    if sources:
        out += ["## Sources", ""]
        for d in directions:
            for row in rows:
                m = metrics[(d["name"], row)]
                ck = m.get("checkpoint") or {}
                sha = str(ck.get("sha256", ""))[:12] if isinstance(ck, dict) else ""
                path = table_metrics_path(params, d["name"], row)
                out.append(f"- `{path}`" + (f" (checkpoint sha256 {sha}…)" if sha else ""))
        out.append("")
    return "\n".join(out)


# ----------------------------------------------------------------------------- writing


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.1f", encoding="utf-8")


def write_tables(
    params: dict,
    out_csv: str | os.PathLike[str],
    *,
    paper_values: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Write ``table2.csv`` at ``out_csv`` and ``table2.md`` / ``table1.csv`` beside it."""
    out = Path(out_csv)
    metrics = collect_metrics(params)
    paper = load_paper_values(paper_values)
    t2 = build_table2(params, metrics)
    t1 = build_table1(params, metrics, paper)
    md = render_table2_md(params, metrics, paper, sources=True)
    md_path = out.with_name(layout.TABLE2_MD)
    t1_path = out.with_name(layout.TABLE1_CSV)
    _write_csv(t2, out)
    atomic_write_text(md_path, md)
    _write_csv(t1, t1_path)
    return [out, md_path, t1_path]
