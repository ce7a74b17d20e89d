"""How a fine-tuning step draws its batches from the pseudo-label sets.

``shared`` (default): one P x K batch sampled on y_0; every loss term, including the part
terms on y_1..y_K, is mined inside it — one student (and at most one teacher) forward per
step. ``per_label`` (the released code): one P x K batch per label set, each used only for
the terms of its own set — K+1 forwards per step, three times the cost for K = 2.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch

from lf2.errors import ParamsError

Batch = tuple[np.ndarray, frozenset[int]]
DeviceBatch = tuple[torch.Tensor, frozenset[int]]


class Sampling:
    def __init__(self, label_sets: list[np.ndarray], p: int, k: int, iters: int, seed: int) -> None:
        self.label_sets, self.p, self.k, self.iters, self.seed = label_sets, p, k, iters, seed

    def __iter__(self) -> Iterator[list[Batch]]:
        raise NotImplementedError


class SharedSampling(Sampling):
    def __iter__(self) -> Iterator[list[Batch]]:
        from lf2.data.sampler import PKSampler

        sets = frozenset(range(len(self.label_sets)))
        for idx in PKSampler(self.label_sets[0], self.p, self.k, self.iters, self.seed):
            yield [(np.asarray(idx, dtype=np.int64), sets)]


class PerLabelSampling(Sampling):
    def __iter__(self) -> Iterator[list[Batch]]:
        from lf2.data.sampler import PKSampler

        iters = [
            iter(PKSampler(labels, self.p, self.k, self.iters, self.seed + 7919 * j))
            for j, labels in enumerate(self.label_sets)
        ]
        for _ in range(self.iters):
            yield [(np.asarray(next(it), dtype=np.int64), frozenset({j})) for j, it in enumerate(iters)]


SAMPLINGS = {"shared": SharedSampling, "per_label": PerLabelSampling}


def make_sampling(name: str, label_sets: list[np.ndarray], p: int, k: int, iters: int, seed: int) -> Sampling:
    if name not in SAMPLINGS:
        raise ParamsError(f"finetune.sampling: {name!r}; expected one of {', '.join(SAMPLINGS)}")
    check_batch_p(label_sets, p)
    return SAMPLINGS[name](label_sets, p, k, iters, seed)


def check_batch_p(label_sets: list[np.ndarray], p: int) -> None:
    """Each label set must have at least ``finetune.batch_p`` pseudo identities (outliers,
    label -1, do not count); said right after the clustering, naming the key."""
    for j, labels in enumerate(label_sets):
        n = len(np.unique(labels[labels >= 0]))
        if n < p:
            raise ParamsError(
                f"finetune.batch_p: {p} identities per batch, but the clustering gave only {n} "
                f"pseudo identities in label set {j} ({len(labels)} images); lower finetune.batch_p "
                "or make more clusters (a larger M_t in rows.clusters; for DBSCAN a smaller "
                "finetune.clustering.dbscan_eps or dbscan_min_samples)"
            )


def indices_on_device(arrays: Sequence[np.ndarray], device: torch.device | str) -> list[torch.Tensor]:
    """Index arrays moved to ``device`` in one copy; the results are views of it.

    Copying a host array to the GPU inside a step (``torch.from_numpy(idx).to("cuda")``)
    makes the host wait until the GPU has finished everything queued, so the next step
    could not be launched while the current one runs: an epoch's indices go over at once.
    """
    if not arrays:
        return []
    joined = torch.from_numpy(np.concatenate(arrays).astype(np.int64, copy=False)).to(device)
    return list(torch.split(joined, [len(a) for a in arrays]))


def on_device(steps: Iterable[list[Batch]], device: torch.device | str) -> list[list[DeviceBatch]]:
    """An epoch's batches with their image indices already on ``device`` (one copy)."""
    steps = list(steps)
    pieces = iter(indices_on_device([idx for step in steps for idx, _ in step], device))
    return [[(next(pieces), sets) for _, sets in step] for step in steps]
