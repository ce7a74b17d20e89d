"""Pieces both training stages share: batch-tensor helpers, the optimiser, loss checks."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from lf2.errors import TrainingError


def outputs_to_float(out):
    """Cast every tensor of a TrainOutputs to fp32 so losses are computed in full precision."""
    changes = {}
    for f in dataclasses.fields(out):
        v = getattr(out, f.name)
        if isinstance(v, Tensor):
            changes[f.name] = v.float()
        elif isinstance(v, list):
            changes[f.name] = [t.float() for t in v]
    return dataclasses.replace(out, **changes)


def make_adam(modules: list[torch.nn.Module], lr: float, weight_decay: float,
              previous: torch.optim.Optimizer | None = None) -> torch.optim.Optimizer:
    """Adam over the trainable parameters of ``modules``.

    When ``previous`` is given, the Adam moments of parameters that still exist are carried
    over (used when the classifier is replaced at an epoch boundary but the optimiser is
    not meant to be re-created).
    """
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    kwargs = {"foreach": True} if not torch.cuda.is_available() else {"fused": True}
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, **kwargs)
    if previous is not None:
        for p in params:
            if p in previous.state:
                opt.state[p] = previous.state[p]
    return opt


class LossMonitor:
    """Keeps per-iteration losses on the device and checks them for NaN/inf in bulk.

    Checking every step would force a host sync per step; checking every ``every`` steps
    still stops a diverged run promptly and names the first bad iteration.
    """

    def __init__(self, epoch: int, iters: int, device: torch.device, every: int = 25) -> None:
        self.epoch, self.every = epoch, every
        self.totals = torch.zeros(iters, device=device)
        self.terms: dict[str, Tensor] = {}
        self.counts: dict[str, int] = {}
        self.next_check = 0

    def add(self, it: int, total: Tensor, terms: dict[str, Tensor]) -> None:
        self.totals[it] = total.detach()
        for name, value in terms.items():
            self.terms[name] = self.terms.get(name, 0.0) + value.detach().float()
            self.counts[name] = self.counts.get(name, 0) + 1
        if it + 1 >= self.next_check + self.every:
            self.check(it + 1)

    def check(self, upto: int) -> None:
        window = self.totals[self.next_check:upto]
        bad = (~torch.isfinite(window)).nonzero()
        if bad.numel():
            it = self.next_check + int(bad[0, 0]) + 1
            raise TrainingError(
                f"non-finite loss ({float(window[int(bad[0, 0])])}) at epoch {self.epoch}, "
                f"iteration {it}; the last completed epoch's checkpoint is kept. Lower the learning "
                "rate or check the data."
            )
        self.next_check = upto

    def means(self, upto: int) -> dict[str, float]:
        self.check(upto)
        out = {"total": float(self.totals[:upto].mean()) if upto else 0.0}
        for name, value in self.terms.items():
            out[name] = float(value / self.counts[name])
        return out
