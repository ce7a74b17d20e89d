"""Table II spread on hand-made per-seed metrics: intervals, paired diffs, gap closed."""

from __future__ import annotations

import math

import pytest
from scipy import stats as sps

from lf2.report.spread import (
    DIFF_COLUMNS,
    build_diffs,
    comparisons,
    gap_closed,
    render_diffs_md,
    spread_cells,
)

ROWS = ["direct", "baseline", "no_fm", "lf2_m8", "lf2_m12", "supervised"]
VARIANT = {"direct": "direct", "baseline": "baseline", "no_fm": "no_fm", "lf2_m8": "lf2", "lf2_m12": "lf2",
           "supervised": "supervised"}
#: mAP per row and seed (fractions); rank1 = mAP + 0.1
MAPS = {"direct": [0.30, 0.34, 0.32], "baseline": [0.40, 0.42, 0.44], "no_fm": [0.41, 0.45, 0.40],
        "lf2_m8": [0.45, 0.47, 0.49], "lf2_m12": [0.44, 0.40, 0.48], "supervised": [0.70, 0.72, 0.74]}
SEEDS = [0, 1, 2]


def _metrics(seeds=SEEDS) -> dict:
    return {("A", r, s): {"mAP": MAPS[r][i], "rank1": MAPS[r][i] + 0.1} for r in ROWS for i, s in enumerate(seeds)}


def test_comparisons_cover_the_issue_list() -> None:
    pairs = comparisons(ROWS, VARIANT, reference_lf2="lf2_m8")
    assert pairs == [("baseline", "direct"), ("no_fm", "direct"), ("lf2_m8", "direct"), ("lf2_m12", "direct"),
                     ("lf2_m8", "baseline"), ("lf2_m12", "baseline"), ("lf2_m8", "no_fm"),
                     ("no_fm", "baseline"), ("supervised", "direct")]


def test_diffs_are_paired_t_intervals() -> None:
    diffs = build_diffs(_metrics(), ["A"], [("baseline", "direct"), ("lf2_m12", "baseline")], SEEDS)
    assert list(diffs.columns) == DIFF_COLUMNS and len(diffs) == 4
    rec = diffs.iloc[0]
    d = [10.0, 8.0, 12.0]  # baseline - direct per seed, percent
    low, high = sps.t.interval(0.95, 2, loc=10.0, scale=sps.sem(d))
    assert (rec["comparison"], rec["metric"], rec["n"]) == ("baseline - direct", "mAP", 3)
    assert (rec["mean_diff"], rec["ci95_low"], rec["ci95_high"]) == (pytest.approx(10.0), pytest.approx(low),
                                                                     pytest.approx(high))
    assert rec["verdict"] == "higher"
    assert diffs.iloc[2]["verdict"] == "not distinguishable"  # +4 -2 +4


def test_n1_diffs_say_no_interval() -> None:
    diffs = build_diffs(_metrics([5]), ["A"], [("baseline", "direct")], [5])
    rec = diffs.iloc[0]
    assert rec["verdict"] == "n = 1, no interval" and rec["ci95_low"] is None and rec["n"] == 1
    md = "\n".join(render_diffs_md(diffs, {"baseline": "Baseline", "direct": "Direct transfer"}))
    assert "| Baseline − Direct transfer | mAP | +10.0 | n = 1, no interval | 1 | n = 1, no interval |" in md


def test_gap_closed_and_spread_cells() -> None:
    m = _metrics()
    # baseline mean 42, direct 32, supervised 72 -> 10 / 40
    assert gap_closed(m, "A", "baseline", ROWS, SEEDS) == pytest.approx(25.0)
    assert gap_closed(m, "A", "direct", ROWS, SEEDS) is None
    assert gap_closed(m, "A", "baseline", ROWS[:-1], SEEDS) is None
    cells = spread_cells(m, "A", "baseline", ROWS, SEEDS)
    assert cells["A mAP std"] == pytest.approx(2.0) and cells["A n"] == 3
    assert cells["A Rank-1 ci95_high"] == pytest.approx(52.0 + sps.t.ppf(0.975, 2) * 2.0 / math.sqrt(3))
    one = spread_cells(_metrics([0]), "A", "baseline", ROWS, [0])
    assert one["A mAP std"] is None and one["A mAP ci95_low"] is None and one["A n"] == 1
