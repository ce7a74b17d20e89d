"""Table II with its seed spread: per-row intervals, paired differences, share of the gap.

Input: ``{(direction, row, seed): metrics}`` (fractions, as in the metrics JSON files) and
the params' rows and seeds. Every number here is percent. Intervals are Student-t 95%
(:mod:`lf2.report.stats`); differences are paired over seeds (fine-tuning seed s starts
from pre-training seed s, so row A seed s and row B seed s share their start).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from lf2.report.stats import NO_INTERVAL, Summary, paired_difference, summarize

#: the two metrics with a spread in the tables (key in the metrics JSON, column label)
SPREAD_METRICS = (("mAP", "mAP"), ("rank1", "Rank-1"))
DIFF_COLUMNS = ["direction", "comparison", "metric", "mean_diff", "ci95_low", "ci95_high", "n", "verdict"]
SUPERVISED = "supervised"
DIRECT = "direct"

Metrics = dict[tuple[str, str, int], dict[str, Any]]


def seed_values(metrics: Metrics, direction: str, row: str, seeds: Sequence[int], key: str) -> list[float]:
    """Percent values of one metric of one (direction, row), in seed order."""
    return [100.0 * float(metrics[(direction, row, s)][key]) for s in seeds]


def row_summary(metrics: Metrics, direction: str, row: str, seeds: Sequence[int], key: str) -> Summary:
    return summarize(seed_values(metrics, direction, row, seeds, key), what=f"{direction} {row} {key}")


def spread_columns(direction: str) -> list[str]:
    """The spread columns table2.csv adds per direction, after its mean columns."""
    cols = []
    for _, label in SPREAD_METRICS:
        cols += [f"{direction} {label} std", f"{direction} {label} ci95_low", f"{direction} {label} ci95_high"]
    return [*cols, f"{direction} n", f"{direction} gap closed %"]


def spread_cells(metrics: Metrics, direction: str, row: str, rows: Sequence[str],
                 seeds: Sequence[int]) -> dict[str, float | int | None]:
    """std / CI of mAP and Rank-1, n and the share of the gap closed, for one table line."""
    cells: dict[str, float | int | None] = {}
    for key, label in SPREAD_METRICS:
        s = row_summary(metrics, direction, row, seeds, key)
        cells[f"{direction} {label} std"] = s.std
        cells[f"{direction} {label} ci95_low"] = s.ci_low
        cells[f"{direction} {label} ci95_high"] = s.ci_high
    cells[f"{direction} n"] = len(seeds)
    cells[f"{direction} gap closed %"] = gap_closed(metrics, direction, row, rows, seeds)
    return cells


def gap_closed(metrics: Metrics, direction: str, row: str, rows: Sequence[str],
               seeds: Sequence[int]) -> float | None:
    """100 · (row − Direct) / (supervised − Direct) on seed-mean mAP; None where undefined.

    Undefined for Direct transfer and the supervised row themselves, without a supervised
    row, or when the supervised reference is not above Direct transfer (no gap to close).
    """
    if row in (DIRECT, SUPERVISED) or SUPERVISED not in rows or DIRECT not in rows:
        return None

    def mean(r: str) -> float:
        return row_summary(metrics, direction, r, seeds, "mAP").mean

    gap = mean(SUPERVISED) - mean(DIRECT)
    if gap <= 0:
        return None
    return 100.0 * (mean(row) - mean(DIRECT)) / gap


def comparisons(rows: Sequence[str], variant_of: dict[str, str], reference_lf2: str | None) -> list[tuple[str, str]]:
    """(A, B) pairs of table2_diffs, each A − B, without repeats, in a fixed order.

    Each adapted row − Direct transfer; each LF² row − Baseline; LF² (at the ablation M_t)
    − LF² w/o FM; LF² w/o FM − Baseline; the supervised reference − Direct transfer.
    """
    adapted = [r for r in rows if variant_of[r] not in (DIRECT, SUPERVISED)]
    by_variant = {variant_of[r]: r for r in rows}
    pairs: list[tuple[str, str]] = []
    if DIRECT in rows:
        pairs += [(r, DIRECT) for r in adapted]
    base, no_fm = by_variant.get("baseline"), by_variant.get("no_fm")
    if base:
        pairs += [(r, base) for r in rows if variant_of[r] == "lf2"]
    if no_fm and reference_lf2:
        pairs.append((reference_lf2, no_fm))
    if no_fm and base:
        pairs.append((no_fm, base))
    if SUPERVISED in rows and DIRECT in rows:
        pairs.append((SUPERVISED, DIRECT))
    return list(dict.fromkeys(pairs))


def build_diffs(metrics: Metrics, directions: Sequence[str], pairs: Sequence[tuple[str, str]],
                seeds: Sequence[int]) -> pd.DataFrame:
    """table2_diffs: one line per (direction, comparison, metric), paired over ``seeds``."""
    lines = []
    for d in directions:
        for a, b in pairs:
            for key, label in SPREAD_METRICS:
                diff = paired_difference(seed_values(metrics, d, a, seeds, key),
                                         seed_values(metrics, d, b, seeds, key), what=f"{d} {a} - {b}")
                lines.append({"direction": d, "comparison": f"{a} - {b}", "metric": label,
                              "mean_diff": diff.mean, "ci95_low": diff.ci_low, "ci95_high": diff.ci_high,
                              "n": diff.n, "verdict": diff.verdict})
    return pd.DataFrame(lines, columns=DIFF_COLUMNS)


def fmt_interval(s: Summary, digits: int = 1) -> str:
    """``51.2 ± 1.3 [49.8, 52.6]`` (mean ± std [95% CI]), or the mean with NO_INTERVAL."""
    if s.ci_low is None or s.std is None or s.ci_high is None:
        return f"{s.mean:.{digits}f} ({NO_INTERVAL})"
    return f"{s.mean:.{digits}f} ± {s.std:.{digits}f} [{s.ci_low:.{digits}f}, {s.ci_high:.{digits}f}]"


def render_diffs_md(diffs: pd.DataFrame, display: dict[str, str]) -> list[str]:
    """Markdown section of table2_diffs, one table per direction, display names of the rows."""
    if diffs.empty:
        return []
    out = ["## Paired differences over seeds", "",
           "A − B per seed (fine-tuning seed s starts from pre-training seed s), mean and Student-t "
           "95% interval in percent points; `higher` / `lower`: the interval excludes 0.", ""]
    for d, sub in diffs.groupby("direction", sort=False):
        out += [f"### {d}", "", "| A − B | metric | mean | 95% CI | n | verdict |", "|---|---|---|---|---|---|"]
        for rec in sub.itertuples(index=False):
            a, b = str(rec.comparison).split(" - ")
            ci = NO_INTERVAL if _missing(rec.ci95_low) else f"[{rec.ci95_low:+.1f}, {rec.ci95_high:+.1f}]"
            out.append(f"| {display.get(a, a)} − {display.get(b, b)} | {rec.metric} | {rec.mean_diff:+.1f} | "
                       f"{ci} | {rec.n} | {rec.verdict} |")
        out.append("")
    return out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
