"""Retrieval metrics (CMC, mAP, mINP) under the standard re-ID protocol, without sorting.

Protocol, per query: gallery entries with the same identity AND the same camera as the
query are removed (they are "junk", not distractors); distractors (pid 0 on Market) stay
and never match. A query with no remaining true match is skipped and counted.

The ranks of the true matches come from :class:`lf2.eval.rank_counting.RankAccumulator`
(how they are computed, and what it costs, is told there); this module checks the inputs and
feeds it chunks of queries. Everything runs in torch on the device of the input (a CUDA distance matrix is evaluated
on its GPU); NumPy inputs are wrapped without copying.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import torch

from lf2.eval.rank_counting import RankAccumulator

#: elements of the distance matrix handled at once (bounds the temporaries to ~0.5 GB)
CHUNK_ELEMENTS = 1 << 24

METRICS = ("cosine", "sqeuclidean")


def evaluate_ranking(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 50,
) -> dict[str, Any]:
    """CMC, mAP and mINP of a query x gallery distance matrix (smaller = more similar).

    Returns ``{"mAP", "cmc", "mINP", "num_valid_query", "num_query"}``: ``mAP`` and
    ``mINP`` are floats in [0, 1], ``cmc`` a float64 array of length ``max_rank`` whose
    entry ``k-1`` is the share of valid queries whose first true match is within rank
    ``k``. AP is the mean of the precision at each true match; INP is (number of true
    matches) / (rank of the hardest true match).

    Gallery entries with the query's pid and camera are removed; queries left without a
    true match are skipped (``num_query - num_valid_query`` of them). **Ties in distance
    are broken by gallery order** (the result equals that of a stable sort).

    ``distmat`` is a NumPy array or torch tensor (CUDA tensors are evaluated on their
    GPU). Raises ValueError on length mismatches, a distance matrix that is not 2-D or
    not finite, an empty gallery, or when no query has a true match.
    """
    dist = _as_tensor(distmat, "distmat")
    if dist.dim() != 2:
        raise ValueError(
            f"distmat must be 2-D (num_query x num_gallery), got shape {tuple(dist.shape)}"
        )
    num_q, num_g = dist.shape
    ids = _check_ids(num_q, num_g, q_pids, g_pids, q_camids, g_camids, dist.device)
    acc = RankAccumulator(num_q, ids[1], ids[3], max_rank, dist.device)
    rows = _chunk_rows(num_g)
    for start in range(0, num_q, rows):
        stop = min(start + rows, num_q)
        acc.add(dist[start:stop], ids[0][start:stop], ids[2][start:stop], start)
    return acc.result()


def evaluate_features(
    q_feat: Any,
    g_feat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 50,
    metric: str = "cosine",
    timings: dict[str, float] | None = None,
) -> dict[str, Any]:
    """:func:`evaluate_ranking` on features, computing the distances chunk by chunk.

    ``metric="cosine"`` L2-normalises both sets and uses ``1 - cos``; ``"sqeuclidean"``
    uses the squared Euclidean distance of the features as given (for L2-normalised
    features it is ``2 - 2 cos``, the same ranking). The full query x gallery matrix is
    never held. When ``timings`` is a dict, the seconds spent on distances and on ranking
    are added under ``"distance"`` and ``"ranking"``.
    """
    q = _as_tensor(q_feat, "q_feat")
    g = _as_tensor(g_feat, "g_feat").to(q.device)
    if q.dim() != 2 or g.dim() != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(
            f"features must be 2-D with the same dimension; got query {tuple(q.shape)}, "
            f"gallery {tuple(g.shape)}"
        )
    if not (torch.isfinite(q).all() and torch.isfinite(g).all()):
        raise ValueError("features contain NaN or infinite values; expected finite numbers")
    q, g = _prepare_pair(q, g, metric)
    num_q, num_g = q.shape[0], g.shape[0]
    ids = _check_ids(num_q, num_g, q_pids, g_pids, q_camids, g_camids, q.device)
    acc = RankAccumulator(num_q, ids[1], ids[3], max_rank, q.device)
    t_dist = t_rank = 0.0
    rows = _chunk_rows(num_g)
    for start in range(0, num_q, rows):
        stop = min(start + rows, num_q)
        t0 = time.perf_counter()
        d = pairwise_distance(q[start:stop], g, metric, prepared=True)
        if d.is_cuda:
            torch.cuda.synchronize(d.device)  # honest split of the timings
        t1 = time.perf_counter()
        acc.add(d, ids[0][start:stop], ids[2][start:stop], start)
        t_rank += time.perf_counter() - t1
        t_dist += t1 - t0
    if timings is not None:
        timings["distance"] = timings.get("distance", 0.0) + t_dist
        timings["ranking"] = timings.get("ranking", 0.0) + t_rank
    return acc.result()


def pairwise_distance(
    x: Any, y: Any, metric: str = "cosine", *, prepared: bool = False
) -> torch.Tensor:
    """Dense distance matrix between two feature sets (``1 - cos`` or squared Euclidean).

    Computed in float32 (float64 when an input is float64) on the device of ``x``.
    ``prepared=True`` skips the normalisation (the caller already ran it). The squared
    Euclidean distance is clamped at 0 (rounding); ``1 - cos`` is returned as computed.
    """
    a = _as_tensor(x, "x")
    b = _as_tensor(y, "y").to(a.device)
    if not prepared:
        a, b = _prepare_pair(a, b, metric)
    if metric == "cosine":
        return 1.0 - a @ b.T
    sq = (a * a).sum(1, keepdim=True) + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return sq.clamp_(min=0.0)


# --------------------------------------------------------------------------- inputs and chunks


def _chunk_rows(num_g: int) -> int:
    return max(1, min(CHUNK_ELEMENTS // max(num_g, 1), 1 << 14))


def _prepare_pair(
    a: torch.Tensor, b: torch.Tensor, metric: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sets in one float dtype (float64 if either is, else float32), L2-normalised
    for the cosine metric."""
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r}; expected one of {', '.join(METRICS)}")
    dtype = torch.float64 if torch.float64 in (a.dtype, b.dtype) else torch.float32
    a, b = a.to(dtype), b.to(dtype)
    if metric == "cosine":
        a, b = torch.nn.functional.normalize(a, dim=1), torch.nn.functional.normalize(b, dim=1)
    return a, b


def _as_tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    try:
        arr = np.asarray(x)
    except Exception as exc:  # noqa: BLE001 - any conversion failure is a bad input
        raise ValueError(f"{name} is not array-like ({exc})") from exc
    if arr.dtype == object:
        raise ValueError(f"{name} must be numeric, got an object array")
    arr = np.ascontiguousarray(arr)
    with warnings.catch_warnings():  # read-only arrays are fine: nothing writes to them
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(arr)


def _check_ids(
    num_q: int,
    num_g: int,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    device: torch.device,
) -> tuple[torch.Tensor, ...]:
    if num_g == 0:
        raise ValueError(
            "the gallery is empty (distmat has 0 columns); expected at least one entry"
        )
    out = []
    for name, arr, n, side in (
        ("q_pids", q_pids, num_q, "query"),
        ("g_pids", g_pids, num_g, "gallery"),
        ("q_camids", q_camids, num_q, "query"),
        ("g_camids", g_camids, num_g, "gallery"),
    ):
        t = _as_tensor(arr, name)
        if t.dim() != 1 or t.numel() != n:
            raise ValueError(
                f"{name} has shape {tuple(t.shape)}; expected ({n},), one per {side} entry"
            )
        if t.is_floating_point():
            if not torch.equal(t, t.round()):
                raise ValueError(f"{name} must hold integer ids, got non-integer values")
        elif t.dtype == torch.bool:
            raise ValueError(f"{name} must hold integer ids, got booleans")
        out.append(t.to(device=device, dtype=torch.int64))
    return tuple(out)
