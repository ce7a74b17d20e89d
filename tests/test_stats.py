"""lf2.report.stats on hand-made numbers, against scipy.stats.t."""

from __future__ import annotations

import math

import pytest
from scipy import stats as sps

from lf2.errors import LF2Error
from lf2.report.stats import (
    HIGHER,
    LOWER,
    NO_INTERVAL,
    UNCLEAR,
    paired_difference,
    summarize,
)


def test_summary_matches_scipy_t_interval() -> None:
    xs = [0.50, 0.54, 0.47, 0.53]
    s = summarize(xs)
    assert s.n == 4
    assert s.mean == pytest.approx(0.51)
    # sample std by hand: deviations -.01 .03 -.04 .02 -> sum of squares .003, / 3
    assert s.std == pytest.approx(math.sqrt(0.003 / 3))
    low, high = sps.t.interval(0.95, 3, loc=0.51, scale=sps.sem(xs))
    assert (s.ci_low, s.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert s.half_width == pytest.approx(sps.t.ppf(0.975, 3) * s.std / 2)


def test_one_sided_lower_bound() -> None:
    xs = [0.02, 0.05, 0.03]
    s = summarize(xs, one_sided=True)
    assert s.ci_low == pytest.approx(s.mean - sps.t.ppf(0.95, 2) * sps.sem(xs))
    assert s.ci_high == math.inf and s.half_width is None


def test_n1_has_no_interval() -> None:
    s = summarize([0.4])
    assert (s.n, s.mean, s.std, s.ci_low, s.ci_high) == (1, 0.4, None, None, None)
    d = paired_difference([0.6], [0.5])
    assert d.verdict == NO_INTERVAL and d.mean == pytest.approx(0.1)
    assert NO_INTERVAL in str(d)


def test_paired_verdicts() -> None:
    base = [0.50, 0.60, 0.55]
    # same gain on every seed: zero spread, a clear difference (the pairing removes the seed effect)
    assert paired_difference([b + 0.02 for b in base], base).verdict == HIGHER
    assert paired_difference(base, [b + 0.02 for b in base]).verdict == LOWER
    d = paired_difference([0.52, 0.58, 0.56], base)  # +.02 -.02 +.01
    assert d.verdict == UNCLEAR
    low, high = sps.t.interval(0.95, 2, loc=d.mean, scale=sps.sem([0.02, -0.02, 0.01]))
    assert (d.ci_low, d.ci_high) == (pytest.approx(low), pytest.approx(high))


def test_bad_input_is_named() -> None:
    with pytest.raises(LF2Error, match="no values"):
        summarize([], what="A-to-B direct mAP")
    with pytest.raises(LF2Error, match="same seeds"):
        paired_difference([0.1, 0.2], [0.1])
    with pytest.raises(LF2Error, match="NaN"):
        summarize([0.1, float("nan")])
