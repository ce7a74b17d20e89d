"""Table II (and our line of Table I) from the metrics JSON files of a run.

Inputs: the metrics files of :func:`lf2.layout.metrics_paths` for every direction of the
params, every row of :func:`lf2.config.rows_for` and every seed of ``rows.seeds``. Outputs:
``table2.csv`` (ours: seed means, then per direction the std / Student-t 95% CI of mAP and
Rank-1, n and the share of the gap to the supervised row closed), ``table2_diffs.csv``
(paired differences over seeds, :mod:`lf2.report.spread`), ``leak.csv`` (the leak meter,
:mod:`lf2.report.leak`), ``table2.md`` (all of it, ours beside the paper's numbers) and
``table1.csv`` (our LF² line, seed means, among Table I's methods). All numbers are percent,
from the LAST epoch's checkpoint. The metrics files are read by :mod:`lf2.report.run_metrics`,
the markdown is :mod:`lf2.report.tables_md`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from lf2 import layout
from lf2.io import atomic_path, atomic_write_text
from lf2.report import leak, spread
from lf2.report.paper import (
    METRIC_LABELS,
    METRICS,
    PAPER_DIRECTIONS,
    load_paper_values,
    paper_direction,
    table1_methods,
)
from lf2.report.run_metrics import (
    SeedMetrics,
    collect_seed_metrics,
    display_name,
    pct,
    reference_lf2_row,
    seed_means,
    table2_rows,
)
from lf2.report.tables_md import render_table2_md
from lf2.rows import row_spec, rows_for

# ----------------------------------------------------------------------------- building tables


def metric_columns(direction: str) -> list[str]:
    return [f"{direction} {METRIC_LABELS[m]}" for m in METRICS]


def build_table2(params: dict, metrics: dict[tuple[str, str], dict[str, Any]],
                 per_seed: SeedMetrics | None = None) -> pd.DataFrame:
    """One line per Table II row (paper order), 4 percent columns (seed means) per direction;
    with ``per_seed``, then per direction the spread columns of :func:`spread.spread_columns`."""
    rows, lines = table2_rows(params), []
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


def diff_pairs(params: dict) -> list[tuple[str, str]]:
    """The (A, B) row pairs of table2_diffs (each A − B): :func:`spread.comparisons` plus the
    FM-ablation contrasts when the FM rows run."""
    rows = rows_for(params)
    variants = {r: row_spec(params, r)["variant"] for r in rows}
    has_lf2 = "lf2" in variants.values()
    pairs = spread.comparisons(rows, variants, reference_lf2_row(params) if has_lf2 else None)
    if has_lf2:  # the FM-ablation contrasts
        lf2_row = reference_lf2_row(params)
        extra = [("no_fm_stripe", "no_fm"), (lf2_row, "no_fm_stripe"), ("lf2_fm_frozen", "no_fm"),
                 (lf2_row, "lf2_fm_frozen")]
        pairs = list(dict.fromkeys([*pairs, *((a, b) for a, b in extra if a in rows and b in rows)]))
    return pairs


def build_diffs(params: dict, per_seed: SeedMetrics) -> pd.DataFrame:
    """table2_diffs: the comparisons of :func:`diff_pairs`, paired over seeds."""
    return spread.build_diffs(per_seed, [d["name"] for d in params["directions"]], diff_pairs(params),
                              layout.seeds(params))


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
