"""Pseudo-label clustering: k-means (faiss / torch fallback), DBSCAN on Jaccard, metrics."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from lf2 import cluster
from lf2.cluster import (
    KMeansResult,
    agreement,
    class_centroids,
    cluster_stats,
    dbscan_jaccard,
    kmeans,
    nmi,
    pseudo_labels,
    purity,
)
from lf2.errors import LF2Error


def _blobs(n_per: int = 20, k: int = 4, d: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 10.0
    x = np.concatenate([c + 0.1 * rng.normal(size=(n_per, d)) for c in centers])
    y = np.repeat(np.arange(k), n_per)
    perm = rng.permutation(len(y))
    return x[perm].astype(np.float32), y[perm]


# ------------------------------------------------------------------ k-means
def test_kmeans_recovers_blobs_and_is_deterministic() -> None:
    x, y = _blobs()
    # nredo: Lloyd's algorithm from a random init can end with two centroids in one blob
    a = kmeans(x, 4, seed=3, niter=20, nredo=5)
    b = kmeans(x, 4, seed=3, niter=20, nredo=5)
    assert isinstance(a, KMeansResult)
    assert a.labels.dtype == np.int64 and a.labels.shape == (80,)
    assert a.centroids.dtype == np.float32 and a.centroids.shape == (4, 8)
    assert np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.centroids, b.centroids)
    assert agreement(a.labels, y) == pytest.approx(1.0)
    assert sorted(np.unique(a.labels)) == [0, 1, 2, 3]


def test_kmeans_redo_keeps_the_lowest_inertia() -> None:
    x, y = _blobs()
    single = [kmeans(x, 4, seed=s, niter=20) for s in range(4)]
    best = kmeans(x, 4, seed=0, niter=20, nredo=8)
    assert agreement(best.labels, y) == pytest.approx(1.0)
    for r in single:  # any run that misses the blobs has a larger inertia than the optimum
        if agreement(r.labels, y) < 1.0:
            assert r.inertia > best.inertia


def test_kmeans_centroids_and_inertia_are_consistent_with_labels() -> None:
    x, _ = _blobs()
    r = kmeans(x, 4, seed=0, niter=20)
    for i in range(4):
        assert np.allclose(r.centroids[i], x[r.labels == i].mean(axis=0), atol=1e-4)
    inertia = float(((x - r.centroids[r.labels]) ** 2).sum())
    assert r.inertia == pytest.approx(inertia, rel=1e-4)


def test_kmeans_does_not_subsample_large_n_per_centroid() -> None:
    # 600 points in k=2 clusters is above faiss's default 256 points per centroid cap
    x, _ = _blobs(n_per=300, k=2, d=4, seed=1)
    r = kmeans(x, 2, seed=0, niter=10)
    for i in range(2):  # exact means of all members: no subsampled training
        assert np.allclose(r.centroids[i], x[r.labels == i].mean(axis=0), atol=1e-4)


@pytest.mark.parametrize("k", [1, 0, 81])
def test_kmeans_bad_k_names_k_and_n(k: int) -> None:
    x, _ = _blobs()
    with pytest.raises(LF2Error, match=rf"k={k}.*N=80"):
        kmeans(x, k, seed=0, niter=5)


def test_kmeans_rejects_nan() -> None:
    x, _ = _blobs()
    x[3, 2] = np.nan
    with pytest.raises(LF2Error, match="NaN"):
        kmeans(x, 4, seed=0, niter=5)


def test_kmeans_labels_consecutive_with_duplicate_points() -> None:
    # 3 distinct points, k=5: some clusters cannot be filled
    x = np.repeat(np.eye(3, dtype=np.float32), 4, axis=0)
    r = kmeans(x, 5, seed=0, niter=10)
    m = r.labels.max() + 1
    assert set(r.labels.tolist()) == set(range(m))
    assert r.centroids.shape == (m, 3)
    for i in range(m):
        assert np.allclose(r.centroids[i], x[r.labels == i].mean(axis=0), atol=1e-5)


def test_kmeans_cuda_without_faiss_gpu_uses_torch_fallback(monkeypatch) -> None:
    import faiss

    import lf2.kmeans_torch

    calls = {}

    def fake(features, k, *, seed, niter, device):
        calls.update(k=k, seed=seed, niter=niter, device=device)
        labels = np.array([0, 2, 2, 0], dtype=np.int64)  # label 1 unused
        cents = np.array([[0.0], [9.0], [2.0]], dtype=np.float32)
        return labels, cents, 1.5

    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 0)
    monkeypatch.setattr(lf2.kmeans_torch, "kmeans_torch", fake)
    r = kmeans(np.zeros((4, 1), np.float32), 3, seed=7, niter=4, device="cuda:0")
    assert calls == {"k": 3, "seed": 7, "niter": 4, "device": "cuda:0"}
    assert r.labels.tolist() == [0, 1, 1, 0]  # label 1 unused -> remapped
    assert r.centroids.tolist() == [[0.0], [0.0]]  # means of the (all-zero) members
    assert r.inertia == 0.0


def test_pseudo_labels_one_array_per_set_with_seed_offset(monkeypatch) -> None:
    seeds = []
    real = cluster.kmeans

    def spy(features, k, *, seed, niter, device="cpu"):
        seeds.append(seed)
        return real(features, k, seed=seed, niter=niter, device=device)

    monkeypatch.setattr(cluster, "kmeans", spy)
    x, y = _blobs(n_per=20, k=2)  # two blobs: no local-minimum trap here
    out = pseudo_labels(
        [x, x * 2.0, x[:, ::-1].copy()],
        method="kmeans",
        k=2,
        seed=10,
        niter=10,
        eps=0.5,
        min_samples=4,
        k1=20,
        k2=6,
        device="cpu",
    )
    assert seeds == [10, 11, 12]
    assert len(out) == 3
    assert all(agreement(labels, y) == pytest.approx(1.0) for labels in out)
    with pytest.raises(LF2Error, match="kmeans, dbscan"):
        pseudo_labels(
            [x], method="hdbscan", k=4, seed=0, niter=1, eps=0.5, min_samples=4, k1=2, k2=1
        )


# ------------------------------------------------------------------- DBSCAN
def _fake_rerank(monkeypatch, sparse: bool) -> None:
    """A stand-in jaccard_distance: Euclidean distance scaled to [0, 1]."""

    def jaccard_distance(feat, k1=20, k2=6):
        d = np.sqrt(((feat[:, None, :] - feat[None, :, :]) ** 2).sum(-1))
        d = np.minimum(d / 5.0, 1.0)
        if not sparse:
            return d
        import scipy.sparse as sp

        d[d >= 1.0] = 0.0  # absent entries mean 1.0 in the sparse contract
        return sp.csr_matrix(d)

    monkeypatch.setitem(
        sys.modules, "lf2.eval.rerank", types.SimpleNamespace(jaccard_distance=jaccard_distance)
    )


def _blobs_with_outlier() -> tuple[np.ndarray, np.ndarray]:
    x, y = _blobs(n_per=10, k=3, d=4, seed=2)
    far = np.full((1, 4), 500.0, dtype=np.float32)
    return np.concatenate([x, far]), np.concatenate([y, [-1]])


@pytest.mark.parametrize("sparse", [False, True])
def test_dbscan_finds_blobs_and_outlier(monkeypatch, sparse: bool) -> None:
    _fake_rerank(monkeypatch, sparse)
    x, y = _blobs_with_outlier()
    labels = dbscan_jaccard(x, eps=0.3, min_samples=3)
    assert labels.dtype == np.int64
    assert labels[-1] == -1
    assert sorted(set(labels[:-1].tolist())) == [0, 1, 2]
    assert agreement(labels[:-1], y[:-1]) == pytest.approx(1.0)


def test_dbscan_sparse_and_dense_agree(monkeypatch) -> None:
    x, _ = _blobs(n_per=15, k=4, d=3, seed=5)
    x = x * 0.05  # blobs touch at this scale: a non-trivial clustering
    _fake_rerank(monkeypatch, sparse=False)
    dense = dbscan_jaccard(x, eps=0.2, min_samples=4)
    _fake_rerank(monkeypatch, sparse=True)
    sparse = dbscan_jaccard(x, eps=0.2, min_samples=4)
    assert np.array_equal(dense, sparse)


def test_dbscan_bad_eps(monkeypatch) -> None:
    _fake_rerank(monkeypatch, sparse=False)
    x, _ = _blobs()
    with pytest.raises(LF2Error, match="dbscan_eps"):
        dbscan_jaccard(x, eps=1.0, min_samples=4)


def test_dbscan_with_real_jaccard_finds_blobs() -> None:
    rerank = pytest.importorskip(
        "lf2.eval.rerank", reason="lf2.eval.rerank (jaccard_distance) is not written yet"
    )
    if not hasattr(rerank, "jaccard_distance"):
        pytest.skip("lf2.eval.rerank has no jaccard_distance yet")
    x, y = _blobs(n_per=12, k=4, d=16, seed=4)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = dbscan_jaccard(x, eps=0.6, min_samples=4, k1=8, k2=3)
    assert (labels >= 0).all()
    assert agreement(labels, y) == pytest.approx(1.0)


# ------------------------------------------------------------------ helpers
def test_class_centroids_normalised_and_ignores_outliers() -> None:
    x = np.array([[3.0, 0.0], [1.0, 0.0], [0.0, 2.0], [9.0, 9.0]], dtype=np.float32)
    labels = np.array([0, 0, 1, -1])
    c = class_centroids(x, labels, 3)
    assert c.dtype == np.float32 and c.shape == (3, 2)
    assert np.allclose(c[0], [1.0, 0.0]) and np.allclose(c[1], [0.0, 1.0])
    assert np.allclose(c[2], [0.0, 0.0])  # empty class -> zero row
    x2 = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    assert np.allclose(class_centroids(x2, np.array([0, 0]), 1)[0], [0.70710678, 0.70710678])
    with pytest.raises(LF2Error, match="num_classes=1"):
        class_centroids(x, np.array([0, 1, 1, 0]), 1)


def test_cluster_stats_by_hand() -> None:
    labels = np.array([0, 0, 0, 1, 2, 2, -1, -1, 3, 3, 3, 3])
    # sizes: 0->3, 1->1, 2->2, 3->4; median 2.5
    assert cluster_stats(labels) == {
        "num_clusters": 4,
        "singletons": 1,
        "outliers": 2,
        "size_min": 1,
        "size_median": 2.5,
        "size_max": 4,
    }
    empty = cluster_stats(np.array([-1, -1]))
    assert empty["num_clusters"] == 0 and empty["outliers"] == 2 and empty["size_max"] == 0


def test_purity_by_hand() -> None:
    true = np.array([10, 10, 20, 20, 20, 30])
    # cluster 0 = {10,10,20}: majority 10 -> 2 right; cluster 1 = {20,20}: 2 right; outlier wrong
    labels = np.array([0, 0, 0, 1, 1, -1])
    assert purity(labels, true) == pytest.approx(4 / 6)
    assert purity(np.arange(6), true) == pytest.approx(1.0)  # all singletons are pure
    assert purity(np.zeros(6, dtype=int), true) == pytest.approx(3 / 6)
    assert purity(np.full(6, -1), true) == 0.0


def test_agreement_and_nmi() -> None:
    a = np.array([0, 0, 1, 1, 2, 2])
    assert agreement(a, np.array([5, 5, 3, 3, 9, 9])) == pytest.approx(1.0)  # relabelled
    assert nmi(a, np.array([1, 1, 0, 0, 2, 2])) == pytest.approx(1.0)
    assert agreement(a, np.array([0, 1, 0, 1, 0, 1])) < 0.0  # worse than chance
    assert nmi(np.zeros(6, dtype=int), a) == pytest.approx(0.0)


def test_dbscan_sparse_keeps_explicit_zero_distances(monkeypatch) -> None:
    import scipy.sparse as sp

    # 0 and 1 are duplicates (stored distance 0.0), 2-3 at 0.1, every other pair absent (1.0)
    rows, cols = [0, 1, 2, 3], [1, 0, 3, 2]
    graph = sp.csr_matrix(([0.0, 0.0, 0.1, 0.1], (rows, cols)), shape=(4, 4))
    monkeypatch.setitem(
        sys.modules,
        "lf2.eval.rerank",
        types.SimpleNamespace(jaccard_distance=lambda feat, k1, k2: graph),
    )
    labels = dbscan_jaccard(np.zeros((4, 2), np.float32), eps=0.3, min_samples=2)
    assert labels.tolist() == [0, 0, 1, 1]


def test_match_to_previous_undoes_a_relabelling() -> None:
    x, y = _blobs(n_per=10, k=5, seed=3)
    perm = np.array([3, 0, 4, 1, 2])
    relabelled = perm[y]
    np.testing.assert_array_equal(cluster.match_to_previous(x, relabelled, y), y)
    # a few images changing cluster do not break the matching of the rest
    moved = relabelled.copy()
    moved[:3] = perm[1]
    out = cluster.match_to_previous(x, moved, y)
    np.testing.assert_array_equal(out[3:], y[3:])
    assert set(out[:3]) == {1}


def test_match_to_previous_more_new_clusters_and_outliers() -> None:
    x, y = _blobs(n_per=10, k=4, seed=5)
    prev = np.array([0, 1, 0, 2])[y]  # the old labeling merged blobs 0 and 2
    new = np.array([2, 0, 3, 1])[y]  # four clusters under fresh ids
    gone = np.flatnonzero(y == 0)[:2]
    new[gone] = -1  # two outliers
    out = cluster.match_to_previous(x, new, prev)
    assert (out[gone] == -1).all()
    assert (out[y == 1] == 1).all() and (out[y == 3] == 2).all()
    assert {int(out[y == 0].max()), int(out[y == 2][0])} == {0, 3}  # the split: one old id, one new


def test_match_to_previous_bad_lengths() -> None:
    with pytest.raises(LF2Error, match="previous labels"):
        cluster.match_to_previous(np.zeros((4, 2)), np.zeros(4, int), np.zeros(3, int))
