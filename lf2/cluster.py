"""Pseudo labels (docs/method.md §4): k-means or DBSCAN on Jaccard distances, plus cluster metrics.

Label arrays are int64 with clusters numbered 0..m-1 consecutively; DBSCAN outliers are -1.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from lf2.errors import LF2Error

log = logging.getLogger(__name__)

CLUSTER_METHODS = ("kmeans", "minibatch_kmeans", "dbscan")
#: the released code's MiniBatchKMeans settings (target_train.py): batches of 300 images,
#: initialisation on 1500 images for the global set and 900 for each part set
MINIBATCH_SIZE = 300
MINIBATCH_INIT_SIZES = (1500, 900)
_warned_cpu = False


@dataclass
class KMeansResult:
    labels: np.ndarray  # (N,) int64, consecutive 0..m-1 (m == k unless a cluster ended empty)
    centroids: np.ndarray  # (m, D) float32, row i is the centroid of label i
    inertia: float  # sum of squared distances to the assigned centroid


def kmeans(
    features: np.ndarray,
    k: int,
    *,
    seed: int,
    niter: int,
    device: str = "cpu",
    nredo: int = 1,
) -> KMeansResult:
    """Lloyd's k-means (faiss, random init from k data points), seeded and deterministic on CPU.

    faiss re-seeds empty clusters during training by splitting large ones; if a cluster is
    still empty after the final assignment, labels are remapped to 0..m-1 (m < k). The
    returned centroids are the exact means of the final clusters (``centroids[i]`` belongs to
    label i) and ``inertia`` is measured against them. ``nredo`` > 1 runs k-means that many
    times (seeds derived from ``seed``) and keeps the lowest inertia: Lloyd's algorithm can
    stop in a local minimum (two centroids in one blob). On ``cuda`` devices a faiss GPU
    index is used when faiss has GPU support, otherwise ``lf2.kmeans_torch``.
    """
    x = _as_features(features)
    n, d = x.shape
    if not isinstance(k, int | np.integer) or k < 2 or k > n:
        raise LF2Error(f"k-means needs 2 <= k <= N; got k={k} clusters for N={n} features")
    k = int(k)
    if niter < 1:
        raise LF2Error(f"finetune.clustering.kmeans_iters must be >= 1, got {niter}")
    if nredo < 1:
        raise LF2Error(f"k-means nredo must be >= 1, got {nredo}")
    import faiss

    use_cuda = str(device).startswith("cuda")
    if use_cuda and faiss.get_num_gpus() == 0:
        from lf2.kmeans_torch import kmeans_torch

        runs = [
            kmeans_torch(x, k, seed=seed + r, niter=niter, device=device)[0] for r in range(nredo)
        ]
    else:
        km = faiss.Kmeans(
            d,
            k,
            niter=int(niter),
            nredo=int(nredo),
            seed=int(seed),
            spherical=False,
            verbose=False,
            gpu=bool(use_cuda),
            # never subsample (faiss's default caps training at 256 points per centroid) and
            # do not warn about small clusters: every feature takes part in every iteration.
            max_points_per_centroid=math.ceil(n / k) + 1,
            min_points_per_centroid=1,
        )
        km.train(x)
        runs = [km.index.search(x, 1)[1][:, 0]]
    best: KMeansResult | None = None
    for assign in runs:
        labels = _remap(np.asarray(assign, dtype=np.int64))[0]
        sums = _label_sums(x, labels, int(labels.max()) + 1)
        centroids = (sums / np.bincount(labels)[:, None]).astype(np.float32)
        diff = x - centroids[labels]
        inertia = float(np.einsum("ij,ij->i", diff, diff).sum(dtype=np.float64))
        if best is None or inertia < best.inertia:
            best = KMeansResult(labels, centroids, inertia)
    assert best is not None
    return best


def minibatch_kmeans(
    features: np.ndarray, k: int, *, seed: int, niter: int, init_size: int = 900
) -> np.ndarray:
    """scikit-learn ``MiniBatchKMeans`` as the released code calls it (batch 300, ``max_iter``
    = ``niter``, k-means++ init on ``init_size`` images, capped at N); labels 0..m-1.

    ``n_init=3`` is the scikit-learn default of the released code's time (newer versions
    default to 1 for k-means++); seeded by ``random_state``. CPU only.
    """
    from sklearn.cluster import MiniBatchKMeans

    x = _as_features(features)
    n = x.shape[0]
    if not isinstance(k, int | np.integer) or k < 2 or k > n:
        raise LF2Error(f"k-means needs 2 <= k <= N; got k={k} clusters for N={n} features")
    if niter < 1:
        raise LF2Error(f"finetune.clustering.kmeans_iters must be >= 1, got {niter}")
    km = MiniBatchKMeans(n_clusters=int(k), max_iter=int(niter), batch_size=MINIBATCH_SIZE,
                         init_size=min(max(int(init_size), 3 * int(k)), n), n_init=3,
                         random_state=int(seed) % (2**32))
    labels = km.fit_predict(x)
    return _remap(np.asarray(labels, dtype=np.int64))[0]


def dbscan_jaccard(
    features: np.ndarray, *, eps: float, min_samples: int, k1: int = 20, k2: int = 6
) -> np.ndarray:
    """DBSCAN on k-reciprocal Jaccard distances (outliers -1, clusters 0..m-1).

    ``jaccard_distance`` may return a dense (N,N) array or a scipy.sparse matrix whose absent
    entries mean distance 1.0; Jaccard distances lie in [0, 1], so eps must be in (0, 1).
    """
    from sklearn.cluster import DBSCAN

    from lf2.eval.rerank import jaccard_distance

    if not 0.0 < eps < 1.0:
        raise LF2Error(
            f"finetune.clustering.dbscan_eps must be in (0, 1) for Jaccard distances, got {eps}"
        )
    if min_samples < 1:
        raise LF2Error(f"finetune.clustering.dbscan_min_samples must be >= 1, got {min_samples}")
    x = _as_features(features)
    dist = jaccard_distance(x, k1, k2)
    if hasattr(dist, "tocsr"):  # scipy.sparse: missing entries are "far", not 0
        dist = _sparse_for_dbscan(dist, eps)
    else:
        dist = np.asarray(dist, dtype=np.float64)
        np.fill_diagonal(dist, 0.0)
        dist = np.clip(dist, 0.0, None)
    labels = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(dist)
    labels = labels.astype(np.int64)
    inliers = labels >= 0
    if inliers.any():
        labels[inliers] = _remap(labels[inliers])[0]
    return labels


def pseudo_labels(
    feature_sets: list[np.ndarray],
    *,
    method: str,
    k: int,
    seed: int,
    niter: int,
    eps: float,
    min_samples: int,
    k1: int,
    k2: int,
    device: str = "cpu",
) -> list[np.ndarray]:
    """One label array per feature set (global, part/fused 1..K); set j uses seed + j."""
    if method not in CLUSTER_METHODS:
        raise LF2Error(
            f"finetune.clustering.method {method!r} is not supported; "
            f"allowed: {', '.join(CLUSTER_METHODS)}"
        )
    global _warned_cpu
    if method == "minibatch_kmeans" and str(device).startswith("cuda") and not _warned_cpu:
        log.warning("finetune.clustering.method minibatch_kmeans (scikit-learn) runs on the CPU, "
                    "not on %s", device)
        _warned_cpu = True
    out = []
    for j, feats in enumerate(feature_sets):
        if method == "kmeans":
            out.append(kmeans(feats, k, seed=seed + j, niter=niter, device=device).labels)
        elif method == "minibatch_kmeans":
            init = MINIBATCH_INIT_SIZES[min(j, 1)]
            out.append(minibatch_kmeans(feats, k, seed=seed + j, niter=niter, init_size=init))
        else:
            out.append(dbscan_jaccard(feats, eps=eps, min_samples=min_samples, k1=k1, k2=k2))
    return out


def class_centroids(features: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, D) float32 L2-normalised mean feature per label; label -1 is ignored.

    A class without any member gets a zero row.
    """
    x = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    if x.ndim != 2 or len(x) != len(labels):
        raise LF2Error(
            f"class_centroids: features {x.shape} and labels {labels.shape} do not match"
        )
    if labels.size and labels.max() >= num_classes:
        raise LF2Error(f"class_centroids: label {labels.max()} >= num_classes={num_classes}")
    keep = labels >= 0
    if not keep.all():
        x, labels = x[keep], labels[keep]
    sums = _label_sums(x, labels, num_classes)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    means = sums / np.maximum(counts, 1.0)[:, None]
    norms = np.linalg.norm(means, axis=1, keepdims=True)
    return (means / np.maximum(norms, 1e-12)).astype(np.float32)


def match_to_previous(
    features: np.ndarray, labels: np.ndarray, previous: np.ndarray
) -> np.ndarray:
    """Relabel ``labels`` so that each new cluster takes the id of the old cluster it matches.

    Cluster ids are arbitrary each epoch, so a classifier kept across re-clustering
    (``finetune.reinit_classifier: false``) would score the wrong clusters. Both labelings
    are summarised by centroids of the SAME features (this epoch's; old centroid j = mean
    of the images that carried old label j), and the new-to-old assignment minimising the
    summed squared centroid distance is found by the Hungarian algorithm
    (``scipy.optimize.linear_sum_assignment``). New clusters left unmatched (more new than
    old clusters) take the unused ids in order; with fewer new clusters than old, the ids
    of unmatched old clusters go unused (not consecutive). Outliers (-1) stay -1.
    """
    from scipy.optimize import linear_sum_assignment

    x = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    previous = np.asarray(previous, dtype=np.int64)
    if not (len(x) == len(labels) == len(previous)):
        raise LF2Error(
            f"match_to_previous: {len(x)} features, {len(labels)} labels and "
            f"{len(previous)} previous labels; expected one of each per image"
        )
    m_new, m_old = int(labels.max()) + 1, int(previous.max()) + 1
    if m_new <= 0 or m_old <= 0:
        return labels.copy()

    def centroids(y: np.ndarray, m: int) -> np.ndarray:
        keep = y >= 0
        sums = _label_sums(x[keep], y[keep], m)
        return sums / np.maximum(np.bincount(y[keep], minlength=m), 1)[:, None]

    new_c, old_c = centroids(labels, m_new), centroids(previous, m_old)
    cost = (new_c**2).sum(1)[:, None] + (old_c**2).sum(1)[None, :] - 2.0 * new_c @ old_c.T
    rows, cols = linear_sum_assignment(cost)
    mapping = np.full(m_new, -1, dtype=np.int64)
    mapping[rows] = cols
    unused = np.setdiff1d(np.arange(max(m_new, m_old)), cols)
    mapping[mapping < 0] = unused[: int((mapping < 0).sum())]
    out = labels.copy()
    out[labels >= 0] = mapping[labels[labels >= 0]]
    return out


def cluster_stats(labels: np.ndarray) -> dict[str, Any]:
    """Cluster count and sizes (outliers, label -1, are counted apart)."""
    labels = np.asarray(labels, dtype=np.int64)
    inl = labels[labels >= 0]
    sizes = np.unique(inl, return_counts=True)[1] if inl.size else np.zeros(0, dtype=np.int64)
    return {
        "num_clusters": int(len(sizes)),
        "singletons": int((sizes == 1).sum()),
        "outliers": int((labels < 0).sum()),
        "size_min": int(sizes.min()) if sizes.size else 0,
        "size_median": float(np.median(sizes)) if sizes.size else 0.0,
        "size_max": int(sizes.max()) if sizes.size else 0,
    }


def _contingency(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Counts of (label in a, label in b) over the same images; every label (-1 too) a group."""
    a, b = np.asarray(a).reshape(-1), np.asarray(b).reshape(-1)
    if len(a) != len(b):
        raise LF2Error(f"comparing labelings of {len(a)} and {len(b)} images")
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    table = np.zeros((ia.max(initial=-1) + 1, ib.max(initial=-1) + 1), dtype=np.int64)
    np.add.at(table, (ia.reshape(-1), ib.reshape(-1)), 1)
    return table


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index between two labelings of the same images (Hubert & Arabie, 1985).

    From the pair counts: ``same`` = pairs together in both, ``only_a`` / ``only_b`` =
    together in one only, ``apart`` = in neither; integer arithmetic, so it equals
    scikit-learn's ``adjusted_rand_score`` (tests/test_cluster_metrics.py) without importing
    scikit-learn, which costs each fine-tuning job about 2 s.
    """
    table = _contingency(a, b)
    n = int(table.sum())
    squares = int((table.astype(np.int64) ** 2).sum())  # <= n^2; products below in Python ints
    rows = [int(v) for v in table.sum(axis=1)]
    cols = [int(v) for v in table.sum(axis=0)]
    same = squares - n
    only_a = sum(r * r for r in rows) - squares
    only_b = sum(c * c for c in cols) - squares
    apart = n * n - only_a - only_b - squares
    if only_a == 0 and only_b == 0:  # the same partition (or no pairs at all)
        return 1.0
    num = 2.0 * (same * apart - only_a * only_b)
    return float(num / ((same + only_a) * (only_a + apart) + (same + only_b) * (only_b + apart)))


def purity(labels: np.ndarray, true: np.ndarray) -> float:
    """Share of images whose cluster's majority true id is their own; outliers count as wrong.

    Ties for the majority are broken towards the smallest true id (deterministic).
    """
    labels = np.asarray(labels, dtype=np.int64)
    true = np.asarray(true)
    if len(labels) != len(true):
        raise LF2Error(f"purity: {len(labels)} labels but {len(true)} true ids")
    if len(labels) == 0:
        return 0.0
    _, t = np.unique(true, return_inverse=True)
    inl = labels >= 0
    if not inl.any():
        return 0.0
    c = _remap(labels[inl])[0]
    t_in = t[inl]
    table = np.zeros((c.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(table, (c, t_in), 1)
    correct = table.max(axis=1).sum()
    return float(correct / len(labels))


def nmi(labels: np.ndarray, true: np.ndarray) -> float:
    """Normalised mutual information, MI over the arithmetic mean of the two entropies
    (scikit-learn's default; equal to it to float precision, tests/test_cluster_metrics.py);
    outliers form one group. One group on both sides is a perfect match (1.0)."""
    table = _contingency(true, labels).astype(np.float64)
    n = table.sum()
    if table.shape[0] == table.shape[1] <= 1:
        return 1.0
    p_true, p_labels = table.sum(axis=1) / n, table.sum(axis=0) / n
    nz = table > 0
    joint = table[nz] / n
    mi = float((joint * (np.log(joint) - np.log(np.outer(p_true, p_labels)[nz]))).sum())
    if mi < np.finfo(np.float64).eps:  # independent, or one side a single group
        return 0.0
    h_true = float(-(p_true * np.log(p_true)).sum())
    h_labels = float(-(p_labels * np.log(p_labels)).sum())
    return mi / ((h_true + h_labels) / 2)


def _as_features(features: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(features, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise LF2Error(f"clustering expects a non-empty (N, D) feature array, got {x.shape}")
    if not np.isfinite(x).all():
        raise LF2Error("clustering: features contain NaN or Inf (did training diverge?)")
    return x


def _remap(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels -> 0..m-1 consecutive (order kept); also returns the original ids kept."""
    keep, inverse = np.unique(labels, return_inverse=True)
    return inverse.astype(np.int64).reshape(-1), keep


def _label_sums(x: np.ndarray, labels: np.ndarray, m: int) -> np.ndarray:
    """(m, D) float64 per-label sums of the rows of x (labels in 0..m-1).

    A sparse one-hot (m, N) float32 matrix times x: ~30 ms at Market scale (13k x 2048),
    where ``np.add.at`` or a float64 ``reduceat`` take seconds.
    """
    import scipy.sparse as sp

    n = len(labels)
    onehot = sp.csr_matrix(
        (np.ones(n, dtype=np.float32), (labels, np.arange(n))), shape=(m, n), dtype=np.float32
    )
    return np.asarray(onehot @ np.asarray(x, dtype=np.float32), dtype=np.float64)


def _sparse_for_dbscan(dist: Any, eps: float) -> Any:
    """A CSR matrix holding only pairs within eps: sklearn treats stored entries as neighbours
    and absent ones as not, so dropping the far pairs is exact and keeps the matrix small."""
    import scipy.sparse as sp

    m = sp.csr_matrix(dist, dtype=np.float64, copy=True)
    m.setdiag(0.0)  # each point is its own neighbour
    m.data = np.clip(m.data, 0.0, None)
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    near = m.data <= eps
    out = sp.csr_matrix((m.data[near], (rows[near], m.indices[near])), shape=m.shape)
    out.sort_indices()
    return out
