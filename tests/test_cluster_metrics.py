"""The clustering measurements logged each epoch (ARI between pseudo-label sets, NMI against
the true ids) are lf2's own numpy code; they must equal scikit-learn's definitions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from lf2.cluster import agreement, nmi
from lf2.errors import LF2Error


def _labelings() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    cases = []
    for n, ka, kb in [(50, 5, 7), (384, 48, 48), (200, 3, 60), (30, 30, 2), (12, 1, 4)]:
        a = rng.integers(0, ka, n)
        b = np.where(rng.random(n) < 0.7, a % kb, rng.integers(0, kb, n))
        cases.append((a, b))
    with_outliers = rng.integers(-1, 6, 80)  # -1: DBSCAN outliers, one group
    cases.append((with_outliers, rng.integers(0, 6, 80)))
    same = rng.integers(0, 9, 40)
    cases.append((same, (same + 3) % 9))  # the same partition, renamed
    cases.append((np.zeros(10, int), np.zeros(10, int)))  # one cluster both
    cases.append((np.arange(10), np.arange(10)))  # all singletons both
    cases.append((np.zeros(10, int), np.arange(10)))  # one cluster against singletons
    cases.append((np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])))  # independent
    return cases


@pytest.mark.parametrize("case", range(len(_labelings())))
def test_ari_equals_scikit_learns(case: int) -> None:
    a, b = _labelings()[case]
    assert agreement(a, b) == pytest.approx(adjusted_rand_score(a, b), abs=1e-12)
    assert agreement(a, b) == pytest.approx(agreement(b, a), abs=1e-12)  # symmetric


@pytest.mark.parametrize("case", range(len(_labelings())))
def test_nmi_equals_scikit_learns(case: int) -> None:
    a, b = _labelings()[case]
    assert nmi(b, a) == pytest.approx(normalized_mutual_info_score(a, b), abs=1e-10)


def test_known_values() -> None:
    assert agreement([0, 0, 1, 1], [1, 1, 0, 0]) == 1.0
    assert nmi([0, 0, 1, 1], [5, 5, 7, 7]) == pytest.approx(1.0)
    assert nmi([0, 1, 0, 1], [0, 0, 1, 1]) == 0.0


def test_labelings_of_different_lengths_are_refused() -> None:
    with pytest.raises(LF2Error, match="3 and 2 images"):
        agreement([0, 1, 1], [0, 1])
