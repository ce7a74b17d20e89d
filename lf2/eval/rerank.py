"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) and the Jaccard distance it is built on.

One implementation serves both uses:

* :func:`rerank` re-ranks a query x gallery retrieval (test time, ``--rerank``);
* :func:`jaccard_distance` gives the pairwise Jaccard distance of one feature set, what
  DBSCAN pseudo-labelling clusters (SpCL / OpenUnReID style).

The steps, for the ``N`` points of the (query + gallery) set:

1. ``R(i)``: the ``n1`` nearest neighbours of ``i`` (``i`` itself included), by squared
   Euclidean distance; found by chunked matrix products, never a full ``N x N`` matrix.
   **The two uses count k1 differently, each as its source does**: :func:`rerank` takes
   ``n1 = k1 + 1`` (Zhong et al.'s code: ``initial_rank[i, :k1 + 1]``, the point plus k1
   others); :func:`jaccard_distance` takes ``n1 = k1`` (SpCL's and OpenUnReID's
   ``compute_jaccard_distance`` search k1 neighbours, the point itself among them), so
   ``finetune.clustering.k1 = 20`` means what k1 = 20 means in those papers.
2. k-reciprocal set: ``j`` in ``R(i)`` with ``i`` in ``R(j)``. Expansion: for each member
   ``c``, its half set ``H(c)`` (``round(k1/2) + 1`` nearest, itself included, reciprocal;
   the same in both codes) joins when more than 2/3 of ``H(c)`` lies in ``i``'s set. The
   expanded set gets weights ``exp(-d(i, j))`` normalised to sum to 1: row ``i`` of ``V``.
3. Local query expansion: row ``i`` of ``V`` becomes the mean of the rows of its ``k2``
   nearest neighbours (``i`` included).
4. Jaccard distance ``1 - s / (2 - s)`` with ``s = sum_k min(V_ik, V_jk)`` (every row of
   ``V`` sums to 1), computed only for the pairs that share a non-zero column.

The weighting distance ``d``: :func:`rerank` follows the original code, squared Euclidean
divided by each row's maximum over all ``N`` points, and mixes the result back as
``(1 - lambda) * jaccard + lambda * d``. :func:`jaccard_distance` follows SpCL and
OpenUnReID: the raw squared Euclidean distance, ``2 - 2 cos`` for L2-normalised features.
(MMT's ``compute_jaccard_dist`` is the original re-ranking instead: it divides the
distances by their maximum and searches ``k1 + 1`` neighbours.) The neighbour search and
distances run in torch (on the GPU when there is one); the sparse set algebra runs in
NumPy / SciPy with no Python loop over points.

Known differences from the public codes (all deliberate): the point itself is always its
own first neighbour (an exact duplicate cannot displace it); ``V`` is kept in float64
(the original stores float16). Neighbour ties (equal distances) are ordered by
``torch.topk``, as unspecified as the original's ``argsort``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

#: float elements of a distance block computed at once in the neighbour search
BLOCK_ELEMENTS = 1 << 24
#: (row, shared neighbour, row) triples handled at once in the Jaccard step
TRIPLE_BLOCK = 1 << 23


def rerank(
    q_feat: Any,
    g_feat: Any,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    *,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """k-reciprocal re-ranked query x gallery distance matrix, float32 ``(Q, G)``.

    ``final = (1 - lambda_value) * jaccard + lambda_value * d`` where ``d`` is the squared
    Euclidean distance normalised by each query's maximum over query + gallery (as in the
    original code). Pass L2-normalised features for the usual cosine setting.
    """
    q, g = _as_features(q_feat, "q_feat"), _as_features(g_feat, "g_feat")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"q_feat has dimension {q.shape[1]} but g_feat has {g.shape[1]}")
    if q.shape[0] == 0 or g.shape[0] == 0:
        raise ValueError(
            f"need at least one query and one gallery feature, got {q.shape[0]} and {g.shape[0]}"
        )
    if not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f"lambda_value must lie in [0, 1], got {lambda_value}")
    feats = torch.cat([q, g]).to(_device(device))
    nq, n = q.shape[0], feats.shape[0]
    v = _kreciprocal_weights(feats, k1 + 1, k1, k2, normalise=True)
    out = np.empty((nq, n - nq), dtype=np.float32)
    for start, stop, s_block in _overlap_blocks(v.v, v.v.tocsc(), nq):
        jac = 1.0 - s_block / (2.0 - s_block)
        d = _sq_dist(feats[start:stop], feats).double().cpu().numpy() / v.row_max[start:stop, None]
        out[start:stop] = ((1.0 - lambda_value) * jac + lambda_value * d)[:, nq:]
    return out


def jaccard_distance(
    feat: Any,
    k1: int = 20,
    k2: int = 6,
    *,
    dense: bool = False,
    device: str | torch.device | None = None,
) -> sp.csr_matrix | np.ndarray:
    """Pairwise k-reciprocal Jaccard distance of one feature set (for DBSCAN).

    ``k1`` counts as in SpCL / OpenUnReID: the k1 nearest points, the point itself among
    them (re-ranking's :func:`rerank` takes the point plus k1 others).

    Returns a ``scipy.sparse.csr_matrix`` (float64, ``N x N``, symmetric up to rounding)
    that stores the distance of every pair sharing at least one neighbour, diagonal
    included (explicit zeros are kept); **pairs not stored are at distance 1.0**, the
    maximum. This is the sparse neighbourhood graph that
    ``sklearn.cluster.DBSCAN(metric="precomputed")`` accepts, for any ``eps < 1``. With
    ``dense=True`` a float32 ``N x N`` array is returned instead (small ``N`` only).
    Features are used as given: L2-normalise them first for the usual ``2 - 2 cos``
    weighting.
    """
    x = _as_features(feat, "feat")
    if x.shape[0] == 0:
        raise ValueError("feat is empty; expected at least one feature vector")
    n = x.shape[0]
    v = _kreciprocal_weights(x.to(_device(device)), k1, k1, k2, normalise=False)
    vc = v.v.tocsc()
    if dense:
        out = np.ones((n, n), dtype=np.float32)
        for start, stop, s_block in _overlap_blocks(v.v, vc, n):
            out[start:stop] = np.maximum(1.0 - s_block / (2.0 - s_block), 0.0)
        return out
    # s > 0 exactly for the pairs sharing a neighbour: keep those, then map s -> distance
    s = sp.vstack([sp.csr_matrix(blk) for _, _, blk in _overlap_blocks(v.v, vc, n)], format="csr")
    s.data = np.maximum(1.0 - s.data / (2.0 - s.data), 0.0)
    return s


# --------------------------------------------------------------------------- the shared core


@dataclass
class _Weights:
    v: sp.csr_matrix  # N x N, rows sum to 1 (after query expansion)
    row_max: np.ndarray  # per-row max squared distance over all N (rerank's normaliser)


def _kreciprocal_weights(
    feats: torch.Tensor, n1: int, k1: int, k2: int, *, normalise: bool
) -> _Weights:
    """``n1``: size of ``R(i)``, the point itself included (k1 + 1 or k1, module docstring)."""
    n = feats.shape[0]
    _check_k(k1, k2, n1)
    kk = min(n1, n)
    ranks, row_max = _knn(feats, kk)  # (N, kk) nearest first, self usually first
    half = min(int(np.around(k1 / 2)) + 1, kk)
    recip = _reciprocal(ranks, kk)  # (N, kk) bool: ranks[i, c] is k1-reciprocal to i
    recip_half = _reciprocal(ranks, half)  # (N, half)
    rows, cols = _expanded_sets(ranks, recip, recip_half, half)
    d = _pair_sq_dist(feats, rows, cols)
    if normalise:
        d = d / row_max[rows]
    w = np.exp(-d)
    w /= np.bincount(rows, weights=w, minlength=n)[rows]
    v = sp.csr_matrix((w, (rows, cols)), shape=(n, n))
    if k2 > 1:
        qe = min(k2, kk)
        a_rows = np.repeat(np.arange(n), qe)
        a = sp.csr_matrix(
            (np.full(n * qe, 1.0 / qe), (a_rows, ranks[:, :qe].reshape(-1))), shape=(n, n)
        )
        v = (a @ v).tocsr()
    v.sort_indices()
    return _Weights(v=v, row_max=row_max)


def _knn(feats: torch.Tensor, kk: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``kk`` nearest points of each point (ascending distance, the point
    itself first) and each row's maximum squared distance, by blocks of rows.

    Ranks by ``|b|^2 - 2 a.b`` (one fused product; the row constant ``|a|^2`` does not
    change a row's order) and adds ``|a|^2`` back only for the row maximum."""
    n = feats.shape[0]
    rows = max(1, BLOCK_ELEMENTS // max(n, 1))
    sq = (feats * feats).sum(1)
    idx = np.empty((n, kk), dtype=np.int64)
    row_max = np.empty(n, dtype=np.float64)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        part = torch.addmm(sq[None, :], feats[start:stop], feats.T, beta=1.0, alpha=-2.0)
        diag = (torch.arange(stop - start), torch.arange(start, stop))
        part[diag] = -math.inf  # the point itself first, even if a duplicate ties with it
        idx[start:stop] = (
            torch.topk(part, kk, dim=1, largest=False, sorted=True).indices.cpu().numpy()
        )
        part[diag] = -sq[start:stop]  # its own distance, 0
        row_max[start:stop] = (part.amax(1) + sq[start:stop]).double().cpu().numpy()
    row_max[row_max <= 0] = 1.0  # all points identical: nothing to normalise
    return idx, row_max


def _reciprocal(ranks: np.ndarray, k: int) -> np.ndarray:
    """``out[i, c]``: is ``i`` among the first ``k`` neighbours of ``ranks[i, c]``?"""
    n = ranks.shape[0]
    top = ranks[:, :k]
    out = np.empty((n, k), dtype=bool)
    step = max(1, (1 << 22) // (k * k))
    for s in range(0, n, step):
        e = min(s + step, n)
        back = top[top[s:e]]  # (b, k, k): neighbours of my neighbours
        out[s:e] = (back == np.arange(s, e)[:, None, None]).any(-1)
    return out


def _expanded_sets(
    ranks: np.ndarray, recip: np.ndarray, recip_half: np.ndarray, half: int
) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) pairs of every point's expanded k-reciprocal set, duplicates removed."""
    n, kk = recip.shape
    # padded sets, -1 where absent
    rset = np.where(recip, ranks, -1)  # (N, kk)
    hset = np.where(recip_half, ranks[:, :half], -1)  # (N, half)
    hsize = recip_half.sum(1)  # |H(c)|
    out_r, out_c = [], []
    step = max(1, (1 << 22) // (kk * half * kk))
    for s in range(0, n, step):
        e = min(s + step, n)
        mine = rset[s:e]  # (b, kk)
        cand = np.where(mine >= 0, mine, 0)
        h = np.where((mine >= 0)[:, :, None], hset[cand], -1)  # (b, kk, half)
        inside = ((h[:, :, :, None] == mine[:, None, None, :]) & (h[:, :, :, None] >= 0)).any(-1)
        overlap = inside.sum(-1)  # |H(c) & R(i)|
        accept = (mine >= 0) & (overlap > (2.0 / 3.0) * hsize[cand])
        h = np.where(accept[:, :, None], h, -1)
        allc = np.concatenate([mine, h.reshape(e - s, -1)], axis=1)
        allc.sort(axis=1)
        keep = allc >= 0
        keep[:, 1:] &= allc[:, 1:] != allc[:, :-1]
        r, c = np.nonzero(keep)
        out_r.append(r + s)
        out_c.append(allc[r, c])
    return np.concatenate(out_r), np.concatenate(out_c)


def _overlap_blocks(v: sp.csr_matrix, vc: sp.csc_matrix, num_rows: int):
    """Yield ``(start, stop, S)`` for blocks of the first ``num_rows`` rows, with the dense
    ``S[i, j] = sum_k min(V[start + i, k], V[j, k])`` of shape ``(stop - start, N)``.

    A block holds at most ``TRIPLE_BLOCK`` (row, neighbour, row) triples and
    ``BLOCK_ELEMENTS`` output elements."""
    n = v.shape[0]
    col_nnz = np.diff(vc.indptr)
    row_cost = np.zeros(n, dtype=np.int64)
    np.add.at(row_cost, np.repeat(np.arange(n), np.diff(v.indptr)), col_nnz[v.indices])
    max_rows = max(1, BLOCK_ELEMENTS // max(n, 1))
    start = 0
    while start < num_rows:
        stop = start + 1
        cost = int(row_cost[start])
        while stop < num_rows and stop - start < max_rows and cost + row_cost[stop] <= TRIPLE_BLOCK:
            cost += int(row_cost[stop])
            stop += 1
        yield start, stop, _overlap(v, vc, col_nnz, start, stop)
        start = stop


def _overlap(
    v: sp.csr_matrix, vc: sp.csc_matrix, col_nnz: np.ndarray, start: int, stop: int
) -> np.ndarray:
    n = v.shape[0]
    lo, hi = v.indptr[start], v.indptr[stop]
    i = np.repeat(np.arange(stop - start), np.diff(v.indptr[start : stop + 1]))
    k = v.indices[lo:hi]  # for every stored V[i, k] ...
    lens = col_nnz[k]  # ... the rows j with V[j, k] != 0
    seg = np.repeat(np.arange(k.size), lens)
    pos = np.arange(seg.size) + (vc.indptr[k] - (np.cumsum(lens) - lens))[seg]
    m = np.minimum(v.data[lo:hi][seg], vc.data[pos])
    flat = (i * n)[seg] + vc.indices[pos]
    return np.bincount(flat, weights=m, minlength=(stop - start) * n).reshape(stop - start, n)


# --------------------------------------------------------------------------- helpers


def _sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    d = (a * a).sum(1, keepdim=True) + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return d.clamp_(min=0.0)


def _pair_sq_dist(feats: torch.Tensor, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    out = np.empty(rows.size, dtype=np.float64)
    step = max(1, BLOCK_ELEMENTS // max(feats.shape[1], 1))
    dev = feats.device
    for s in range(0, rows.size, step):
        r = torch.from_numpy(rows[s : s + step]).to(dev)
        c = torch.from_numpy(cols[s : s + step]).to(dev)
        diff = feats[r] - feats[c]
        out[s : s + step] = (diff * diff).sum(1).double().cpu().numpy()
    return out


def _as_features(x: Any, name: str) -> torch.Tensor:
    t = (
        x.detach() if isinstance(x, torch.Tensor) else torch.from_numpy(np.array(x))
    )  # a copy: features are small
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-D (num x dim), got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite values; expected finite features")
    return t if t.dtype == torch.float64 else t.float()


def _check_k(k1: int, k2: int, n1: int) -> None:
    if not isinstance(k1, int | np.integer) or k1 < 1:
        raise ValueError(f"k1 must be a positive integer, got {k1!r}")
    if not isinstance(k2, int | np.integer) or not 1 <= k2 <= n1:
        raise ValueError(f"k2 must be an integer in [1, {n1}] (k1 = {k1}), got {k2!r}")


def _device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
