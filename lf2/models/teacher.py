"""Mean teacher (Eq. 4): theta_t <- w * theta_t + (1 - w) * theta_s after every optimiser step.

The update is one fused ``torch._foreach_lerp_`` over all parameters (no Python loop per
tensor), so it stays cheap for ResNet-50's ~160 parameter tensors on GPU and CPU alike.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from lf2.errors import CheckpointError, LF2Error


class MeanTeacher:
    """A temporal average of a student network.

    ``model`` is a deep copy of the student, kept in eval mode with ``requires_grad`` False.
    ``warmup``: w_t = min(1 - 1/(t+1), omega) with t the number of updates so far (the released
    code); otherwise w = omega. BN running statistics: ``own_buffers`` leaves them alone,
    they are the teacher's own (recomputed by :func:`recompute_bn_stats`, or updated by
    train-mode teacher forwards as in the released code, MMT and MEB-Net, which average
    parameters only); otherwise ``average_buffers`` averages the student's like parameters,
    and by default they are copied from the student (statistics of other weights).
    Integer buffers (``num_batches_tracked``) are copied unless ``own_buffers``.
    """

    def __init__(
        self,
        student: nn.Module,
        omega: float = 0.999,
        warmup: bool = False,
        average_buffers: bool = False,
        own_buffers: bool = False,
    ) -> None:
        if not 0.0 <= omega <= 1.0:
            raise LF2Error(f"finetune.ema_omega must be in [0, 1], got {omega!r}")
        if average_buffers and own_buffers:
            raise LF2Error(
                "finetune.ema_buffers: true averages the student's BN statistics into the "
                "teacher; it cannot be combined with finetune.teacher_bn own/own_step "
                "(the teacher's own statistics); set teacher_bn: student or ema_buffers: false"
            )
        self.omega = float(omega)
        self.warmup = bool(warmup)
        self.average_buffers = bool(average_buffers)
        self.own_buffers = bool(own_buffers)
        self.step = 0
        self.model = copy.deepcopy(student)
        self.model.requires_grad_(False)
        self.model.eval()
        for p in self.model.parameters():
            p.grad = None

    def weight(self) -> float:
        """The w the next ``update`` will use."""
        if self.warmup:
            return min(1.0 - 1.0 / (self.step + 1), self.omega)
        return self.omega

    @torch.no_grad()
    def update(self, student: nn.Module) -> None:
        """One EMA step from ``student`` (same architecture as the teacher)."""
        w = self.weight()
        # Tensor lists are collected on every call (cheap) so that a classifier replaced on
        # both models between epochs is picked up without any extra call.
        t_params, s_params = list(self.model.parameters()), list(student.parameters())
        t_float, t_other = _split_buffers(self.model)
        s_float, s_other = _split_buffers(student)
        if (len(t_params), len(t_float), len(t_other)) != (
            len(s_params),
            len(s_float),
            len(s_other),
        ):
            raise LF2Error(
                "MeanTeacher.update: the student's parameters/buffers do not match the "
                "teacher's; give both the same architecture (and the same classifier size)"
            )
        try:
            if t_params:
                torch._foreach_lerp_(t_params, s_params, 1.0 - w)
            if t_float and not self.own_buffers:
                if self.average_buffers:
                    torch._foreach_lerp_(t_float, s_float, 1.0 - w)
                else:
                    torch._foreach_copy_(t_float, s_float)
            if t_other and not self.own_buffers:
                torch._foreach_copy_(t_other, s_other)
        except RuntimeError as exc:
            raise LF2Error(
                f"MeanTeacher.update: student and teacher tensors differ in shape or dtype "
                f"(same architecture and classifier size expected): {exc}"
            ) from exc
        self.step += 1

    def refresh_bn(self, batches: Iterable[Tensor], forward: Callable[[Tensor], Any] | None = None) -> int:
        """The teacher's own BN statistics from ``batches`` (:func:`recompute_bn_stats`)."""
        return recompute_bn_stats(self.model, batches, forward)

    def reset_classifier(self, num_classes: int, weight: Tensor | None = None) -> None:
        """Replace the teacher's classifier (``ReIDNet.reset_classifier``), kept frozen.

        Reset the student's classifier to the same size too, or ``update`` will refuse.
        """
        self.model.reset_classifier(num_classes, weight)
        self.model.requires_grad_(False)

    @torch.no_grad()
    def forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Any:
        """Run the teacher without recording a graph.

        ``torch.no_grad()`` rather than ``torch.inference_mode()`` on purpose: the teacher's
        outputs are used as constants inside the student's graph (e.g. the fused feature
        Z * phi0 with Z trainable), and inference tensors cannot be saved for backward, so
        ``inference_mode`` outputs would break such a loss. Pure extraction loops may wrap
        their own code in ``inference_mode``.
        """
        return self.model(x, *args, **kwargs)

    __call__ = forward

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "step": self.step,
            "omega": self.omega,
            "warmup": self.warmup,
            "average_buffers": self.average_buffers,
            "own_buffers": self.own_buffers,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load ``state_dict()`` output (step count included); hyper-parameters stay as built."""
        if not isinstance(state, dict) or "model" not in state or "step" not in state:
            raise CheckpointError("mean-teacher state must be a dict with keys 'model' and 'step'")
        self.model.load_state_dict(state["model"])
        self.step = int(state["step"])


@torch.no_grad()
def recompute_bn_stats(
    model: nn.Module, batches: Iterable[Tensor], forward: Callable[[Tensor], Any] | None = None
) -> int:
    """Precise BN (fast-reid's ``PreciseBN``): every BN layer's running mean and variance
    become the plain average, over ``batches``, of the batch statistics that ``model``'s
    own weights produce; returns the number of batches used.

    ``forward(x)`` must reach every BN layer whose statistics matter (default
    ``model.forward_train`` when the model has one, else ``model(x)``); BN layers it does
    not reach keep their statistics. The model's train/eval mode and the layers' momenta
    are restored afterwards. With no batch at all nothing changes.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if forward is None:
        forward = getattr(model, "forward_train", model)
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone(), m.momentum)
             for m in bns]
    was_training = model.training
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: the mean over the batches seen
    count = 0
    model.train()
    try:
        for x in batches:
            forward(x)
            count += 1
    finally:
        model.train(was_training)
        for m, (mean, var, nbt, momentum) in zip(bns, saved, strict=True):
            m.momentum = momentum
            if count == 0 or int(m.num_batches_tracked) == 0:  # nothing seen: keep the old ones
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(nbt)
    return count


def _split_buffers(module: nn.Module) -> tuple[list[Tensor], list[Tensor]]:
    """Floating-point buffers (running stats) and the others (``num_batches_tracked``)."""
    floats: list[Tensor] = []
    others: list[Tensor] = []
    for b in module.buffers():
        (floats if b.is_floating_point() else others).append(b)
    return floats, others
