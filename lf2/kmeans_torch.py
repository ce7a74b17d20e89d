"""Lloyd's k-means in torch: on the GPU when features live there, on the CPU otherwise.

Pseudo-labelling runs k-means on the K+1 target feature sets every fine-tuning epoch
(12,936 x 2,048 on Market at M_t up to 900), so it must be fast and must not copy the
features back to the host. The algorithm follows faiss's ``Kmeans``: random (or k-means++)
initialisation from the data, ``niter`` Lloyd iterations, and empty clusters re-seeded
(faiss splits the largest cluster; here an empty centroid moves to the point farthest from
its centroid, which also splits a large, spread cluster). Distances are computed in row
chunks so that the N x k distance block never exceeds ``memory_budget`` bytes.
"""

from __future__ import annotations

import numpy as np
import torch

DEFAULT_BUDGET = 256 * 2**20


def _sq_norms(x: torch.Tensor) -> torch.Tensor:
    return (x * x).sum(dim=1)


def _chunk_rows(k: int, budget: int) -> int:
    # one chunk holds a (rows, k) float32 distance block plus a same-size temporary
    return max(1, budget // (8 * max(k, 1)))


def assign(
    x: torch.Tensor, centroids: torch.Tensor, x_norms: torch.Tensor, budget: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid of every row: (labels int64 (N,), squared distances (N,))."""
    c_norms = _sq_norms(centroids)
    n = x.shape[0]
    labels = torch.empty(n, dtype=torch.long, device=x.device)
    dists = torch.empty(n, dtype=x.dtype, device=x.device)
    step = _chunk_rows(centroids.shape[0], budget)
    for s in range(0, n, step):
        xs = x[s : s + step]
        d = torch.addmm(c_norms[None, :], xs, centroids.T, beta=1.0, alpha=-2.0)
        best, arg = d.min(dim=1)
        labels[s : s + step] = arg
        # clamp: the expanded form can go slightly negative for a point on its centroid
        dists[s : s + step] = (best + x_norms[s : s + step]).clamp_min_(0)
    return labels, dists


def _init_random(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    perm = torch.randperm(x.shape[0], generator=gen, device=gen.device)[:k]
    return x[perm.to(x.device)].clone()


def _init_plusplus(
    x: torch.Tensor, k: int, gen: torch.Generator, x_norms: torch.Tensor
) -> torch.Tensor:
    n = x.shape[0]
    first = int(torch.randint(0, n, (1,), generator=gen, device=gen.device))
    centroids = [x[first]]
    closest = (x_norms - 2 * x @ x[first] + x_norms[first]).clamp_min_(0)
    for _ in range(1, k):
        total = closest.sum()
        if float(total) <= 0:  # every point coincides with a centroid: pick any
            nxt = int(torch.randint(0, n, (1,), generator=gen, device=gen.device))
        else:
            u = torch.rand((), generator=gen, device=gen.device).to(x.device, torch.float64)
            cum = torch.cumsum(closest.double(), 0)
            nxt = int(torch.searchsorted(cum, u * cum[-1]).clamp_max(n - 1))
        c = x[nxt]
        centroids.append(c)
        closest = torch.minimum(closest, (x_norms - 2 * x @ c + x_norms[nxt]).clamp_min_(0))
    return torch.stack(centroids).clone()


def _update(x: torch.Tensor, labels: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    sums = torch.zeros(k, x.shape[1], dtype=x.dtype, device=x.device)
    sums.index_add_(0, labels, x)
    counts = torch.bincount(labels, minlength=k)
    return sums, counts


def _reseed_empty(
    centroids: torch.Tensor,
    counts: torch.Tensor,
    x: torch.Tensor,
    dists: torch.Tensor,
) -> int:
    """Move empty centroids onto the points farthest from their centroids; return how many."""
    empty = torch.nonzero(counts == 0).flatten()
    m = int(empty.numel())
    if m:
        far = torch.topk(dists, min(m, dists.numel())).indices
        centroids[empty[: far.numel()]] = x[far]
    return m


def kmeans_torch(
    features: np.ndarray | torch.Tensor,
    k: int,
    *,
    seed: int = 0,
    niter: int = 25,
    device: str | torch.device = "cpu",
    init: str = "random",
    memory_budget: int = DEFAULT_BUDGET,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Cluster ``features`` (N, D) into at most ``k`` clusters.

    Returns ``(labels, centroids, inertia)``: labels int64 (N,) in 0..m-1, centroids
    float32 (m, D) of the m <= k non-empty clusters in label order, and the sum of squared
    distances of each point to its centroid. m < k only when the data has fewer than k
    distinct points. ``init`` is ``"random"`` (faiss's default: k distinct data points) or
    ``"k-means++"``. Stops early once the assignment no longer changes (a fixed point).
    """
    x = torch.as_tensor(np.asarray(features) if not torch.is_tensor(features) else features)
    if x.ndim != 2:
        raise ValueError(f"kmeans_torch expects features (N, D), got shape {tuple(x.shape)}")
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"kmeans_torch: k must be in 1..{n} (number of points), got {k}")
    if niter < 1:
        raise ValueError(f"kmeans_torch: niter must be >= 1, got {niter}")
    if init not in ("random", "k-means++"):
        raise ValueError(f"kmeans_torch: init must be 'random' or 'k-means++', got {init!r}")
    dev = torch.device(device)
    x = x.to(device=dev, dtype=torch.float32).contiguous()
    if not torch.isfinite(x).all():
        raise ValueError("kmeans_torch: features contain NaN or inf")
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed))
    x_norms = _sq_norms(x)

    if init == "random":
        centroids = _init_random(x, k, gen)
    else:
        centroids = _init_plusplus(x, k, gen, x_norms)

    prev = None
    for _ in range(niter):
        labels, dists = assign(x, centroids, x_norms, memory_budget)
        if prev is not None and torch.equal(labels, prev):
            break
        sums, counts = _update(x, labels, k)
        nonempty = counts > 0
        centroids = torch.where(
            nonempty[:, None], sums / counts.clamp_min(1)[:, None].to(x.dtype), centroids
        )
        if _reseed_empty(centroids, counts, x, dists):
            prev = None  # the moved centroids change the next assignment
        else:
            prev = labels

    labels, dists = assign(x, centroids, x_norms, memory_budget)
    used, labels = torch.unique(labels, return_inverse=True)
    centroids = centroids[used]
    return (
        labels.cpu().numpy().astype(np.int64),
        centroids.cpu().numpy().astype(np.float32),
        float(dists.double().sum()),
    )
