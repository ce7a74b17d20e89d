"""kmeans_torch against faiss CPU k-means, plus the contract (labels, empties, seeds)."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from lf2.kmeans_torch import assign, kmeans_torch

SEEDS = range(16)  # random init lands in different local optima: average many seeds


def faiss_kmeans(x: np.ndarray, k: int, seed: int, niter: int) -> tuple[np.ndarray, float]:
    km = faiss.Kmeans(x.shape[1], k, niter=niter, seed=seed, verbose=False)
    km.train(x)
    d, labels = km.index.search(x, 1)
    return labels[:, 0].astype(np.int64), float(d.sum())


def inertia(x: np.ndarray, labels: np.ndarray) -> float:
    total = 0.0
    for c in np.unique(labels):
        pts = x[labels == c].astype(np.float64)
        total += float(((pts - pts.mean(0)) ** 2).sum())
    return total


@pytest.fixture(scope="module")
def blobs():
    x, y = make_blobs(3000, n_features=32, centers=30, cluster_std=2.0, random_state=0)
    return x.astype(np.float32), y


@pytest.mark.slow
def test_blobs_same_quality_as_faiss(blobs):
    x, y = blobs
    ours = [kmeans_torch(x, 30, seed=s, niter=20) for s in SEEDS]
    theirs = [faiss_kmeans(x, 30, s, 20) for s in SEEDS]
    our_inertia = np.mean([r[2] for r in ours])
    their_inertia = np.mean([r[1] for r in theirs])
    assert our_inertia <= 1.03 * their_inertia
    our_ari = np.mean([adjusted_rand_score(y, r[0]) for r in ours])
    their_ari = np.mean([adjusted_rand_score(y, r[0]) for r in theirs])
    assert our_ari >= their_ari - 0.03
    assert our_ari > 0.75  # random init (like faiss) finds most of the 30 blobs


def test_kmeanspp_recovers_separated_blobs():
    x, y = make_blobs(2000, n_features=16, centers=12, cluster_std=0.5, random_state=1)
    labels, cents, _ = kmeans_torch(x.astype(np.float32), 12, seed=0, niter=30, init="k-means++")
    assert adjusted_rand_score(y, labels) > 0.99
    assert cents.shape == (12, 16)


def test_random_data_same_inertia_as_faiss():
    x = np.random.default_rng(0).standard_normal((2000, 16)).astype(np.float32)
    ours = np.mean([kmeans_torch(x, 20, seed=s, niter=25)[2] for s in SEEDS])
    theirs = np.mean([faiss_kmeans(x, 20, s, 25)[1] for s in SEEDS])
    assert abs(ours - theirs) <= 0.03 * theirs


def test_outputs_are_consistent(blobs):
    x, _ = blobs
    labels, cents, inert = kmeans_torch(x, 30, seed=0, niter=10)
    assert labels.dtype == np.int64 and labels.shape == (3000,)
    assert cents.dtype == np.float32 and cents.shape == (30, 32)
    assert set(np.unique(labels)) == set(range(30))
    # labels are the nearest centroid; inertia is the sum of squared distances to it
    d = ((x[:, None, :].astype(np.float64) - cents[None].astype(np.float64)) ** 2).sum(-1)
    np.testing.assert_array_equal(labels, d.argmin(1))
    assert inert == pytest.approx(d.min(1).sum(), rel=1e-4)
    # after Lloyd steps the centroids are (nearly) the means of their members
    assert inert == pytest.approx(inertia(x, labels), rel=1e-3)


def test_deterministic_by_seed(blobs):
    x, _ = blobs
    a = kmeans_torch(x, 30, seed=5, niter=8)
    b = kmeans_torch(x, 30, seed=5, niter=8)
    c = kmeans_torch(x, 30, seed=6, niter=8)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2] == b[2]
    assert not np.array_equal(a[0], c[0])


def test_chunking_does_not_change_the_result(blobs):
    x, _ = blobs
    whole = kmeans_torch(x, 30, seed=1, niter=5)
    tiny = kmeans_torch(x, 30, seed=1, niter=5, memory_budget=8 * 30 * 64)  # 47 chunks, last partial
    np.testing.assert_array_equal(whole[0], tiny[0])
    np.testing.assert_allclose(whole[1], tiny[1], rtol=1e-5, atol=1e-5)


def test_assign_matches_bruteforce():
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.standard_normal((50, 4)).astype(np.float32))
    c = torch.from_numpy(rng.standard_normal((6, 4)).astype(np.float32))
    labels, d = assign(x, c, (x * x).sum(1), budget=8 * 6 * 3)
    brute = torch.cdist(x.double(), c.double()) ** 2
    assert torch.equal(labels, brute.argmin(1))
    torch.testing.assert_close(d.double(), brute.min(1).values, rtol=1e-4, atol=1e-4)


def test_empty_clusters_are_reseeded():
    # two tight groups far apart; init picks k points that are likely in one group
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0, 0.01, (95, 2)), rng.normal(100, 1.0, (5, 2))]).astype(np.float32)
    labels, cents, _ = kmeans_torch(x, 6, seed=0, niter=20)
    assert len(np.unique(labels)) == 6  # no cluster left empty
    assert len(np.unique(labels[95:])) >= 1 and cents.shape == (6, 2)


def test_fewer_distinct_points_than_k_gives_consecutive_labels():
    x = np.repeat(np.eye(3, dtype=np.float32), 4, axis=0)  # 3 distinct points, 12 rows
    labels, cents, inert = kmeans_torch(x, 5, seed=0, niter=10)
    m = len(np.unique(labels))
    assert m == 3 and set(labels) == set(range(m)) and cents.shape == (m, 3)
    assert inert == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"k": 0}, "k must be"),
        ({"k": 101}, "k must be"),
        ({"k": 3, "niter": 0}, "niter"),
        ({"k": 3, "init": "kmeans||"}, "init"),
    ],
)
def test_rejects_bad_arguments(kwargs, match):
    x = np.zeros((100, 2), np.float32)
    k = kwargs.pop("k")
    with pytest.raises(ValueError, match=match):
        kmeans_torch(x, k, **kwargs)


def test_rejects_non_finite_and_bad_shape():
    x = np.ones((10, 2), np.float32)
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        kmeans_torch(x, 2)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        kmeans_torch(np.ones(10, np.float32), 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_gpu_matches_cpu_quality(blobs):
    x, y = blobs
    cpu = kmeans_torch(x, 30, seed=0, niter=20, device="cpu")
    gpu = kmeans_torch(x, 30, seed=0, niter=20, device="cuda")
    assert gpu[2] == pytest.approx(cpu[2], rel=1e-3)
    assert adjusted_rand_score(cpu[0], gpu[0]) > 0.99
