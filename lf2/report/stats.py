"""Seed statistics of the tables: mean, std and Student-t 95% confidence intervals.

The interval is the Student t interval of a mean, mean ± t_{(1+c)/2, n-1} · s/√n, with
s the sample standard deviation (n − 1 in the denominator). It assumes the per-seed
values are independent draws of a roughly normal quantity; with few seeds (n = 3..10) it
is wider than a bootstrap interval would pretend, which is the honest direction. A
comparison of two rows is paired over seeds (fine-tuning seed s starts from pre-training
seed s, so row A seed s and row B seed s share their start): the interval is the t
interval of the per-seed differences A_s − B_s.

With n = 1 there is no spread to estimate: ``std`` and the interval are ``None`` and the
tables print :data:`NO_INTERVAL` instead of inventing one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from lf2.errors import LF2Error

CONFIDENCE = 0.95
NO_INTERVAL = "n = 1, no interval"
HIGHER, LOWER, UNCLEAR = "higher", "lower", "not distinguishable"


@dataclass(frozen=True)
class Summary:
    """Mean of ``n`` values with their sample std and a Student-t interval (None if n = 1)."""

    n: int
    mean: float
    std: float | None
    ci_low: float | None
    ci_high: float | None

    @property
    def half_width(self) -> float | None:
        if self.ci_low is None or self.ci_high is None or math.isinf(self.ci_high):
            return None
        return (self.ci_high - self.ci_low) / 2.0


@dataclass(frozen=True)
class Difference(Summary):
    """Mean of paired differences A_s − B_s with its interval and a verdict about A vs B."""

    verdict: str

    def __str__(self) -> str:
        if self.n < 2:
            return f"mean difference {self.mean:+.4f} ({NO_INTERVAL})"
        return (f"mean difference {self.mean:+.4f}, sd {self.std:.4f}, n = {self.n}, "
                f"interval [{self.ci_low:+.4f}, {self.ci_high:+.4f}]: {self.verdict}")


def t_quantile(p: float, dof: int) -> float:
    """The p-quantile of Student's t with ``dof`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(p, dof))


def _check(values: Sequence[float], what: str) -> list[float]:
    out = [float(v) for v in values]
    if not out:
        raise LF2Error(f"{what}: no values; expected at least one seed")
    if any(math.isnan(v) for v in out):
        raise LF2Error(f"{what}: a value is NaN: {out}")
    return out


def summarize(values: Sequence[float], *, confidence: float = CONFIDENCE, one_sided: bool = False,
              what: str = "values") -> Summary:
    """Mean, sample std and Student-t interval of ``values``.

    ``one_sided``: the interval is [mean − t_{c, n-1} · s/√n, +inf) (a lower bound at
    confidence c), else the two-sided [mean ∓ t_{(1+c)/2, n-1} · s/√n].
    """
    xs = _check(values, what)
    n = len(xs)
    mean = math.fsum(xs) / n
    if n == 1:
        return Summary(1, mean, None, None, None)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    se = std / math.sqrt(n)
    if one_sided:
        return Summary(n, mean, std, mean - t_quantile(confidence, n - 1) * se, math.inf)
    half = t_quantile((1.0 + confidence) / 2.0, n - 1) * se
    return Summary(n, mean, std, mean - half, mean + half)


def verdict(s: Summary) -> str:
    """``higher`` if the interval of A − B lies above 0, ``lower`` if below, else not distinguishable."""
    if s.ci_low is None or s.ci_high is None:
        return NO_INTERVAL
    if s.ci_low > 0:
        return HIGHER
    if s.ci_high < 0:
        return LOWER
    return UNCLEAR


def paired_difference(a: Sequence[float], b: Sequence[float], *, confidence: float = CONFIDENCE,
                      one_sided: bool = False, what: str = "paired difference") -> Difference:
    """Summary of A_s − B_s over seeds s (``a[i]`` and ``b[i]`` are the same seed)."""
    xs, ys = _check(a, what), _check(b, what)
    if len(xs) != len(ys):
        raise LF2Error(f"{what}: {len(xs)} values against {len(ys)}; a paired comparison needs "
                       "the same seeds on both sides")
    s = summarize([x - y for x, y in zip(xs, ys, strict=True)], confidence=confidence,
                  one_sided=one_sided, what=what)
    return Difference(s.n, s.mean, s.std, s.ci_low, s.ci_high, verdict(s))
