"""The fused Adam update without ``torch.optim.Optimizer``'s machinery.

``torch.optim.Adam(fused=True)`` runs one kernel (``torch._fused_adam_``) over all parameters.
Its base class imports ``torch._dynamo`` on the first ``add_param_group`` and on every
``step`` (graph-break bookkeeping for ``torch.compile``), about 1.6 s of CPU per process on
the 2-core EPYC (docs/performance.md); the default suite has 54 training processes, each of
which builds an optimiser. :class:`FusedAdam` calls the same kernel with the same arguments
(``tests/test_adam.py`` checks the weights bit for bit against torch's class, and that the
state dicts load into each other), so it is the params' ``adam: fused`` on every device.

It is an optimiser for plain Adam with L2 weight decay, as both training stages use it: no
AMSGrad, no maximise, no grad scaler, no param groups beyond one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor


class FusedAdam:
    """Adam (L2 weight decay, one param group) with the fused kernel.

    Duck-types the parts of ``torch.optim.Optimizer`` lf2 uses: ``param_groups`` (a list of
    one dict whose ``lr`` may be changed between steps), ``state`` (per-parameter
    ``step``/``exp_avg``/``exp_avg_sq``, as torch's Adam keeps them), ``defaults``,
    ``step()``, ``zero_grad()``, ``state_dict()`` and ``load_state_dict()`` in torch's format.
    """

    def __init__(self, params: Iterable[Tensor], lr: float, weight_decay: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        params = list(params)
        if not params:
            raise ValueError("FusedAdam got an empty parameter list")
        self.defaults: dict[str, Any] = {
            "lr": float(lr), "betas": (float(betas[0]), float(betas[1])), "eps": float(eps),
            "weight_decay": float(weight_decay), "amsgrad": False, "maximize": False,
            "foreach": None, "capturable": False, "differentiable": False, "fused": True,
            "decoupled_weight_decay": False,
        }
        self.param_groups: list[dict[str, Any]] = [{**self.defaults, "params": params}]
        self.state: dict[Tensor, dict[str, Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.param_groups[0]["params"]:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_()
                p.grad.zero_()

    def _init_state(self, p: Tensor) -> dict[str, Tensor]:
        state = self.state.get(p)
        if state is None:
            # as torch.optim.Adam(fused=True): a float32 step counter on the parameter's device
            state = {"step": torch.zeros((), dtype=torch.float32, device=p.device),
                     "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                     "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
            self.state[p] = state
        return state

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        by_device: dict[tuple[torch.device, torch.dtype], list[list[Tensor]]] = {}
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError("FusedAdam does not support sparse gradients")
            state = self._init_state(p)
            lists = by_device.setdefault((p.device, p.dtype), [[], [], [], [], []])
            for lst, t in zip(lists, (p, p.grad, state["exp_avg"], state["exp_avg_sq"], state["step"]),
                              strict=True):
                lst.append(t)
        beta1, beta2 = group["betas"]
        for params, grads, exp_avgs, exp_avg_sqs, steps in by_device.values():
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(
                params, grads, exp_avgs, exp_avg_sqs, [], steps,
                amsgrad=False, lr=float(group["lr"]), beta1=beta1, beta2=beta2,
                weight_decay=group["weight_decay"], eps=group["eps"], maximize=False,
                grad_scale=None, found_inf=None,
            )

    def state_dict(self) -> dict[str, Any]:
        """torch.optim's layout: parameters numbered in order, state keyed by those numbers."""
        params = self.param_groups[0]["params"]
        index = {id(p): i for i, p in enumerate(params)}
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        group["params"] = list(range(len(params)))
        return {"state": {index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index},
                "param_groups": [group]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict of this class or of ``torch.optim.Adam`` (one group, same params)."""
        groups = state_dict.get("param_groups")
        params = self.param_groups[0]["params"]
        if not isinstance(groups, list) or len(groups) != 1 or len(groups[0].get("params", ())) != len(params):
            raise ValueError(
                "optimizer state does not match: expected one param group of "
                f"{len(params)} parameters, got "
                f"{[len(g.get('params', ())) for g in groups] if isinstance(groups, list) else groups!r}"
            )
        by_saved_id = dict(zip(groups[0]["params"], params, strict=True))
        self.state = {}
        for saved_id, saved in state_dict.get("state", {}).items():
            p = by_saved_id[saved_id]
            self.state[p] = {
                k: (v.to(dtype=torch.float32, device=p.device) if k == "step"
                    else v.to(dtype=p.dtype, device=p.device))
                for k, v in saved.items()
            }
        for key in ("lr", "betas", "eps", "weight_decay"):
            if key in groups[0]:
                self.param_groups[0][key] = groups[0][key]
