"""P x K identity sampler for triplet-style batches (source labels or pseudo labels)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from lf2.errors import LF2Error


class PKSampler:
    """Yield ``num_batches`` index batches of size ``p * k``: P distinct labels, K indices each.

    Labels < 0 (DBSCAN outliers) are never sampled. A label with fewer than K images
    contributes all of them plus draws with replacement (so singletons repeat K times).
    Labels are visited in a shuffled cycle so every label appears before any repeats.
    The batches depend only on ``(seed, epoch)``; call :meth:`set_epoch` to reseed.
    Usable directly as a ``DataLoader(batch_sampler=...)``.
    """

    def __init__(self, labels: np.ndarray, p: int, k: int, num_batches: int, seed: int = 0):
        labels = np.asarray(labels)
        if labels.ndim != 1:
            raise LF2Error(f"PKSampler: labels must be 1-D, got shape {labels.shape}")
        if p < 1 or k < 1 or num_batches < 0:
            raise LF2Error(f"PKSampler: p={p}, k={k}, num_batches={num_batches}; expected p, k >= 1")
        valid = np.flatnonzero(labels >= 0)
        uniq, inverse = np.unique(labels[valid], return_inverse=True)
        if len(uniq) < p:
            raise LF2Error(
                f"PKSampler: only {len(uniq)} usable label(s) (labels >= 0) among {len(labels)} "
                f"samples, fewer than P={p} identities per batch; lower batch_p or get more clusters"
            )
        order = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(np.bincount(inverse, minlength=len(uniq)))[:-1]
        self._groups = np.split(valid[order], bounds)
        self.labels = labels
        self.p, self.k, self.num_batches, self.seed = p, k, num_batches, seed
        self.epoch = 0

    @property
    def num_labels(self) -> int:
        return len(self._groups)

    @property
    def batch_size(self) -> int:
        return self.p * self.k

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch])
        queue = rng.permutation(self.num_labels)
        pos = 0
        for _ in range(self.num_batches):
            chosen = queue[pos : pos + self.p]
            pos += self.p
            if len(chosen) < self.p:  # cycle: refill with labels not already chosen
                queue = rng.permutation(self.num_labels)
                rest = queue[~np.isin(queue, chosen)][: self.p - len(chosen)]
                chosen = np.concatenate([chosen, rest])
                queue = np.concatenate([rest, queue[~np.isin(queue, rest)]])
                pos = len(rest)
            yield np.concatenate([self._take(self._groups[c], rng) for c in chosen])

    def _take(self, group: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if len(group) >= self.k:
            return rng.choice(group, self.k, replace=False)
        extra = rng.choice(group, self.k - len(group), replace=True)
        return np.concatenate([rng.permutation(group), extra])
