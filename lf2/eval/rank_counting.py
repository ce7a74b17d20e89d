"""The ranks of the true matches of a chunk of queries, summed into AP, INP and CMC
(:class:`RankAccumulator`, used by :mod:`lf2.eval.ranking`).

How it is computed. AP, CMC and INP need only the rank of each true match. For query
``q`` the rank of true match ``m`` is ``1 +`` the number of valid gallery entries that
come before it, where "before" means strictly closer, or equally close and earlier in
gallery order (ties are broken by gallery order, as a stable sort would). Entries farther
than the query's hardest true match never come before any match, so per chunk of queries
only the *candidates* (valid entries no farther than the hardest match) are looked at:
each one gets an exact, unique int64 key ``(row, distance bits, column)``; the keys of the
true matches are sorted (they are few) and one 1-D ``searchsorted`` tells, for every
candidate, how many matches of its row precede it. A histogram and a cumulative sum then
give every match's rank. Cost: a few elementwise passes over the distance matrix plus
``O(c log m)`` for ``c`` candidates and ``m`` matches, instead of an ``O(G log G)`` sort
per query; memory is bounded by the chunk size, never by the full matrix.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


class RankAccumulator:
    """Sums AP, INP and first-match ranks over chunks of queries."""

    def __init__(
        self,
        num_q: int,
        g_pids: torch.Tensor,
        g_cams: torch.Tensor,
        max_rank: int,
        device: torch.device,
    ) -> None:
        if not isinstance(max_rank, int | np.integer) or max_rank < 1:
            raise ValueError(f"max_rank must be a positive integer, got {max_rank!r}")
        self.num_q = num_q
        self.g_pids, self.g_cams = g_pids, g_cams
        self.max_rank = int(max_rank)
        self.col_bits = max(1, math.ceil(math.log2(g_pids.numel() + 1)))
        # gallery indices grouped by pid (ascending within a group): a query's same-pid
        # entries are then found without comparing it with the whole gallery
        self.g_order = torch.sort(g_pids, stable=True).indices
        self.g_uniq, counts = torch.unique_consecutive(g_pids[self.g_order], return_counts=True)
        self.g_count = counts
        self.g_start = torch.cumsum(counts, 0) - counts
        self.ap_sum = 0.0
        self.inp_sum = 0.0
        self.num_valid = 0
        self.first_hist = torch.zeros(self.max_rank + 1, dtype=torch.int64, device=device)

    def add(
        self, dist: torch.Tensor, q_pids: torch.Tensor, q_cams: torch.Tensor, offset: int
    ) -> None:
        if dist.dtype in (torch.float16, torch.bfloat16):
            dist = dist.float()
        elif not dist.is_floating_point():
            dist = dist.double()
        dist = dist.contiguous()
        b, g = dist.shape
        dev = dist.device
        lo, hi = torch.aminmax(dist)  # NaN propagates into both
        if not (math.isfinite(float(lo)) and math.isfinite(float(hi))):
            bad = int((~torch.isfinite(dist)).any(1).nonzero()[0, 0]) + offset
            raise ValueError(
                f"distmat has NaN or infinite values (first in query row {bad}); "
                "expected finite distances"
            )
        # same-pid entries are few: find them once, split into true matches and junk
        s_rows, s_cols = self._same_pid(q_pids)
        same = s_rows * g + s_cols
        junk_sel = q_cams[s_rows] == self.g_cams[s_cols]
        junk = same[junk_sel]
        m_flat = same[~junk_sel]
        m_rows = s_rows[~junk_sel]
        num_match = torch.bincount(m_rows, minlength=b)
        if m_flat.numel() == 0:
            return
        flat_dist = dist.view(-1)
        hardest = torch.full((b,), -math.inf, dtype=dist.dtype, device=dev)
        hardest.scatter_reduce_(0, m_rows, flat_dist[m_flat], reduce="amax")
        cand = dist <= hardest[:, None]
        nonneg = float(lo) >= 0
        n_m = m_flat.numel()
        cand.view(-1)[junk] = False
        hist = self._bin_counts(dist, cand, m_flat, m_rows, n_m, nonneg)
        m_rows = torch.repeat_interleave(torch.arange(b, device=dev), num_match)
        ends = torch.cumsum(num_match, 0)
        starts = ends - num_match
        hist = hist[torch.arange(n_m, device=dev) + m_rows] - 1  # every match counted itself once
        csum = torch.cumsum(hist, 0)
        m_starts = starts[m_rows]
        before = torch.where(m_starts > 0, csum[(m_starts - 1).clamp(min=0)], 0)
        k = torch.arange(n_m, device=dev) - m_starts  # 0-based index among the row's matches
        rank = (k + 1 + csum - before).double()
        prec = (k + 1).double() / rank
        ap = torch.zeros(b, dtype=torch.float64, device=dev).index_add_(0, m_rows, prec)
        has = num_match > 0
        self.ap_sum += float((ap[has] / num_match[has]).sum())
        last_rank = rank[ends[has] - 1]
        self.inp_sum += float((num_match[has].double() / last_rank).sum())
        first_rank = rank[starts[has]].long().clamp(max=self.max_rank + 1) - 1
        self.first_hist += torch.bincount(first_rank, minlength=self.max_rank + 1)[
            : self.max_rank + 1
        ]
        self.num_valid += int(has.sum())

    def _same_pid(self, q_pids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(row, gallery index) of every gallery entry sharing its query's pid, row-major."""
        grp = torch.searchsorted(self.g_uniq, q_pids).clamp(max=max(self.g_uniq.numel() - 1, 0))
        found = self.g_uniq[grp] == q_pids
        lens = torch.where(found, self.g_count[grp], 0)
        rows = torch.repeat_interleave(torch.arange(q_pids.numel(), device=q_pids.device), lens)
        first = torch.cumsum(lens, 0) - lens
        offs = torch.arange(rows.numel(), device=q_pids.device) - first[rows]
        return rows, self.g_order[self.g_start[grp][rows] + offs]

    def _bin_counts(
        self,
        dist: torch.Tensor,
        cand: torch.Tensor,
        m_flat: torch.Tensor,
        m_rows: torch.Tensor,
        n_m: int,
        nonneg: bool,
    ) -> torch.Tensor:
        """For each match (in sorted key order, row by row) how many candidates fall just
        before it; bin ``i + row`` belongs to match ``i``, bin ``end + row`` is the row's
        overflow (never read). Every match is also counted in its own bin."""
        b, g = dist.shape
        flat_dist = dist.view(-1)
        nz = cand.nonzero()
        del cand
        c_rows = nz[:, 0].contiguous()
        keys, uniq = self._keys(
            c_rows, flat_dist[nz[:, 0] * g + nz[:, 1]], nz[:, 1], b, nonneg=nonneg
        )
        del nz
        m_keys, _ = self._keys(
            m_rows, flat_dist[m_flat], m_flat - m_rows * g, b, nonneg=nonneg, uniq=uniq
        )
        m_keys, _ = torch.sort(m_keys)
        # searchsorted counts the matches (of this and earlier rows) with a smaller key;
        # "+ row" gives every row one extra bin, for candidates after its hardest match
        # (as far as it, later in gallery order).
        pos = torch.searchsorted(m_keys, keys)
        del keys
        pos += c_rows
        return torch.bincount(pos, minlength=n_m + b)

    def _keys(
        self,
        rows: torch.Tensor,
        vals: torch.Tensor,
        cols: torch.Tensor,
        b: int,
        *,
        nonneg: bool,
        uniq: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Unique int64 keys ordered like (row, distance, column).

        float32 distances enter by their bit pattern (order-preserving); float64 ones by
        their dense rank among the chunk's candidate values ``uniq`` (computed on the first
        call and returned, so the match keys use the same ranks).
        """
        if vals.dtype == torch.float32:
            if nonneg:
                ordered = vals.view(torch.int32).long()
                ordered &= 0x7FFFFFFF  # -0.0 -> +0.0
            else:
                ordered = _float32_order(vals)
            val_bits = 32
        else:
            if uniq is None:
                uniq, ordered = torch.unique(vals, sorted=True, return_inverse=True)
            else:
                ordered = torch.searchsorted(uniq, vals)
            val_bits = max(1, math.ceil(math.log2(uniq.numel() + 1)))
        row_bits = max(1, math.ceil(math.log2(b + 1)))
        if row_bits + val_bits + self.col_bits > 63:
            raise ValueError(
                f"gallery of {self.g_pids.numel()} entries is too large for int64 keys"
            )
        keys = ordered  # a fresh tensor of the full shape: build the key in place
        keys <<= self.col_bits
        keys |= cols
        keys |= rows.long() << (val_bits + self.col_bits)
        return keys, uniq

    def result(self) -> dict[str, Any]:
        if self.num_valid == 0:
            raise ValueError(
                f"none of the {self.num_q} queries has a true match in the gallery (same pid, "
                "different camera); expected at least one: are query and gallery from the same "
                "dataset?"
            )
        hist = self.first_hist[: self.max_rank].double().cpu().numpy()
        cmc = np.cumsum(hist) / self.num_valid
        return {
            "mAP": self.ap_sum / self.num_valid,
            "cmc": cmc,
            "mINP": self.inp_sum / self.num_valid,
            "num_valid_query": self.num_valid,
            "num_query": self.num_q,
        }


def _float32_order(vals: torch.Tensor) -> torch.Tensor:
    """Map float32 values to int64 in [0, 2**32) preserving their order (-0.0 == +0.0)."""
    bits = (vals + 0.0).view(torch.int32).long()
    bits = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    return bits + (1 << 31)
