"""The Adam kernels of params ``adam``: fused and foreach compute the same update."""

from __future__ import annotations

import pytest
import torch

from lf2.errors import ParamsError
from lf2.train.common import make_adam


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8),
                               torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 5))


def _train(impl: str, steps: int = 6) -> tuple[list[torch.Tensor], dict]:
    model = _model(0)
    opt = make_adam([model], lr=3.5e-4, weight_decay=5e-4, impl=impl)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(4, 3, 6, 6, generator=gen)
        y = torch.randint(0, 5, (4,), generator=gen)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()], opt.state_dict()


def test_fused_and_foreach_agree_to_rounding() -> None:
    fused, fused_state = _train("fused")
    foreach, foreach_state = _train("foreach")
    start = [p.detach() for p in _model(0).parameters()]
    for a, b, p0 in zip(fused, foreach, start, strict=True):
        moved = (b - p0).abs().max().item()
        assert moved > 1e-4                              # the steps did move the weights
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)  # lr 3.5e-4 x 6 steps; 1e-6 is rounding
    # the same state layout, so a state.pt written with one resumes with the other
    assert fused_state["state"].keys() == foreach_state["state"].keys()
    for k in fused_state["state"]:
        assert fused_state["state"][k].keys() == foreach_state["state"][k].keys()
        assert float(fused_state["state"][k]["step"]) == float(foreach_state["state"][k]["step"]) == 6


def test_kernel_follows_the_argument() -> None:
    model = _model(0)
    assert make_adam([model], 1e-3, 0.0).defaults["fused"] is True
    foreach = make_adam([model], 1e-3, 0.0, impl="foreach").defaults
    assert foreach["foreach"] is True and not foreach["fused"]


def test_unknown_kernel_is_a_params_error() -> None:
    with pytest.raises(ParamsError, match="adam='sgd'"):
        make_adam([_model(0)], 1e-3, 0.0, impl="sgd")
