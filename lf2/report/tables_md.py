"""``table2.md``: our Table II (seed means) beside the paper's numbers, each direction's
spread over seeds, the supplementary FM-ablation rows, the paired differences, the leak meter
and the metrics files read.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from lf2 import layout
from lf2.report import leak, spread
from lf2.report.paper import (
    METRICS,
    PAPER_CITATION,
    PAPER_DIRECTIONS,
    paper_direction,
    table2_values,
)
from lf2.report.run_metrics import SeedMetrics, display_name, is_supplementary, pct, table2_rows
from lf2.rows import rows_for

LAST_EPOCH_NOTE = (
    "All numbers of this run are from the LAST epoch's checkpoint (no model selection on the "
    "test split); Direct transfer is the last epoch of source pre-training."
)


# ----------------------------------------------------------------------------- markdown


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{float(value):.1f}"


def _md_table(header: list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return lines



def _supplementary_md(params: dict, metrics: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    """The FM-ablation rows beside w/o FM and LF² at the same M_t (rows.ablation_clusters)."""
    all_rows = rows_for(params)
    extra = [r for r in all_rows if is_supplementary(params, r)]
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
    rows = table2_rows(params)
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
    names = {r: display_name(params, r) for r in rows_for(params)}  # supplementary rows too
    if diffs is not None:
        out += spread.render_diffs_md(diffs, names)
    if leak_table is not None:
        out += leak.render_leak_md(leak_table, names.__getitem__)
    if per_seed is not None:
        out += ["## Sources", ""]
        for d in directions:
            for row in rows_for(params):  # supplementary rows too: every file read
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

