"""k-reciprocal re-ranking and Jaccard distance against a straightforward dense version."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from lf2.eval.rerank import jaccard_distance, rerank


def dense_reference(
    feat: np.ndarray, k1: int, k2: int, normalise: bool, self_in_k1: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Zhong et al.'s algorithm written plainly with dense N x N arrays (float64).

    ``self_in_k1=False``: R(i) is the point and its k1 nearest others (Zhong et al., the
    re-ranking convention). ``True``: R(i) is the k1 nearest points, the point itself one
    of them (SpCL / OpenUnReID's Jaccard distance for DBSCAN). The half sets H(c) are the
    round(k1/2) + 1 nearest in both. Returns (jaccard N x N, weighting distance N x N).
    """
    n = feat.shape[0]
    sq = (feat**2).sum(1)
    dist = np.maximum(sq[:, None] + sq[None, :] - 2 * feat @ feat.T, 0.0)
    np.fill_diagonal(dist, 0.0)
    if normalise:
        dist = dist / dist.max(axis=1, keepdims=True)
    order = np.argsort(dist, axis=1, kind="stable")
    for i in range(n):  # the point itself first
        order[i] = np.concatenate([[i], order[i][order[i] != i]])

    def recip(i: int, size: int) -> np.ndarray:  # the `size` nearest, the point included
        fwd = order[i, :size]
        return np.array([j for j in fwd if i in order[j, :size]], dtype=np.int64)

    n1 = k1 if self_in_k1 else k1 + 1
    half = int(np.around(k1 / 2)) + 1
    v = np.zeros((n, n))
    for i in range(n):
        r = recip(i, n1)
        exp = list(r)
        for c in r:
            h = recip(c, half)
            if len(np.intersect1d(h, r)) > 2 / 3 * len(h):
                exp.extend(h)
        exp = np.unique(exp)
        w = np.exp(-dist[i, exp])
        v[i, exp] = w / w.sum()
    if k2 != 1:
        v = np.stack([v[order[i, :k2]].mean(0) for i in range(n)])
    jac = np.zeros((n, n))
    for i in range(n):
        s = np.minimum(v[i][None, :], v).sum(1)
        jac[i] = 1 - s / (2 - s)
    return jac, dist


def _feats(n: int, d: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(2, n // 5), d))
    x = centres[rng.integers(0, centres.shape[0], n)] + 0.5 * rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("k1,k2", [(20, 6), (5, 3), (4, 1), (7, 7)])
def test_jaccard_matches_dense_reference(k1: int, k2: int) -> None:
    x = _feats(40, seed=k1)
    ref, _ = dense_reference(x, k1, k2, normalise=False, self_in_k1=True)
    ref = np.maximum(ref, 0.0)
    got = jaccard_distance(x, k1=k1, k2=k2, device="cpu")
    assert isinstance(got, sp.csr_matrix) and got.shape == (40, 40)
    dense = np.ones((40, 40))
    coo = got.tocoo()
    dense[coo.row, coo.col] = coo.data
    np.testing.assert_allclose(dense, ref, rtol=0, atol=1e-9)
    # every point shares its own neighbours: the diagonal is stored (explicitly) as ~0
    coo_pairs = set(zip(coo.row.tolist(), coo.col.tolist(), strict=True))
    assert all((i, i) in coo_pairs for i in range(40))
    assert np.abs(got.diagonal()).max() < 1e-12
    # pairs left out are exactly those whose reference distance is 1 (no shared neighbour)
    missing = np.ones((40, 40), dtype=bool)
    missing[coo.row, coo.col] = False
    assert np.all(ref[missing] == 1.0)
    dense_out = jaccard_distance(x, k1=k1, k2=k2, dense=True, device="cpu")
    assert dense_out.dtype == np.float32
    np.testing.assert_allclose(dense_out, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("lam", [0.3, 0.0, 1.0])
def test_rerank_matches_dense_reference(lam: float) -> None:
    x = _feats(50, seed=3)
    nq = 12
    jac, dist = dense_reference(x, 20, 6, normalise=True)
    ref = ((1 - lam) * jac + lam * dist)[:nq, nq:]
    got = rerank(x[:nq], x[nq:], k1=20, k2=6, lambda_value=lam, device="cpu")
    assert got.shape == (nq, 38) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)


def test_rerank_float32_input_close_to_reference() -> None:
    x = _feats(45, seed=5)
    jac, dist = dense_reference(x, 10, 4, normalise=True)
    ref = (0.7 * jac + 0.3 * dist)[:10, 10:]
    got = rerank(x[:10].astype(np.float32), x[10:].astype(np.float32), k1=10, k2=4, device="cpu")
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)  # float32 distances


def test_small_sets_and_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    import lf2.eval.rerank as rr

    x = _feats(30, seed=9)
    monkeypatch.setattr(rr, "BLOCK_ELEMENTS", 64)  # many tiny blocks
    monkeypatch.setattr(rr, "TRIPLE_BLOCK", 50)
    got = jaccard_distance(x, k1=40, k2=6, dense=True, device="cpu")  # k1 > n
    ref, _ = dense_reference(x, 40, 6, normalise=False, self_in_k1=True)
    np.testing.assert_allclose(got, np.maximum(ref, 0), rtol=0, atol=1e-6)
    sparse = jaccard_distance(x, k1=5, k2=2, device="cpu")
    ref5, _ = dense_reference(x, 5, 2, normalise=False, self_in_k1=True)
    np.testing.assert_allclose(
        sparse.toarray()[sparse.toarray() > 0],
        np.maximum(ref5, 0)[sparse.toarray() > 0],
        rtol=0,
        atol=1e-9,
    )


def test_k1_conventions_differ_by_one() -> None:
    """Clustering's k1 is SpCL's (the point among its k1 neighbours), re-ranking's is
    Zhong et al.'s (the point plus k1 others): jaccard_distance(k1) is the SpCL reference
    at k1 and the re-ranking reference at k1 - 1, and not the re-ranking one at k1."""
    x = _feats(60, seed=4)
    got = jaccard_distance(x, k1=12, k2=4, dense=True, device="cpu")
    spcl, _ = dense_reference(x, 12, 4, normalise=False, self_in_k1=True)
    zhong, _ = dense_reference(x, 12, 4, normalise=False)
    np.testing.assert_allclose(got, np.maximum(spcl, 0), rtol=0, atol=1e-6)
    assert np.abs(got - np.maximum(zhong, 0)).max() > 1e-2  # the old, off-by-one reading


def test_bad_inputs() -> None:
    x = _feats(10)
    with pytest.raises(ValueError, match="k2"):
        jaccard_distance(x, k1=3, k2=9)
    with pytest.raises(ValueError, match="k1"):
        jaccard_distance(x, k1=0, k2=1)
    with pytest.raises(ValueError, match="2-D"):
        jaccard_distance(x[0])
    with pytest.raises(ValueError, match="dimension"):
        rerank(x, x[:, :3])
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        rerank(bad, x)
    with pytest.raises(ValueError, match="lambda"):
        rerank(x, x, lambda_value=1.5)
