"""The Adam kernels of params ``adam``: lf2's FusedAdam is torch's fused Adam bit for bit,
and fused and foreach compute the same update."""

from __future__ import annotations

import copy

import pytest
import torch

from lf2.errors import ParamsError
from lf2.train.adam import FusedAdam
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
    fused = make_adam([model], 1e-3, 0.0, impl="fused")
    assert isinstance(fused, FusedAdam) and fused.defaults["fused"] is True
    foreach = make_adam([model], 1e-3, 0.0, impl="foreach")
    assert isinstance(foreach, torch.optim.Adam)
    assert foreach.defaults["foreach"] is True and not foreach.defaults["fused"]


def _steps(model: torch.nn.Module, opt, n: int, seed: int, lr_at: dict[int, float] | None = None) -> None:
    gen = torch.Generator().manual_seed(seed)
    for i in range(n):
        for group in opt.param_groups:                     # as the stages' lr schedules do
            group["lr"] = (lr_at or {}).get(i, group["lr"])
        x = torch.randn(4, 3, 6, 6, generator=gen)
        y = torch.randint(0, 5, (4,), generator=gen)
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        model[3].bias.grad = None          # a parameter without a gradient this step is skipped
        opt.step()


def test_fused_adam_is_torchs_fused_adam_bit_for_bit() -> None:
    ours_model, torch_model = _model(0), _model(0)
    ours = FusedAdam(ours_model.parameters(), lr=3.5e-4, weight_decay=5e-4)
    ref = torch.optim.Adam(torch_model.parameters(), lr=3.5e-4, weight_decay=5e-4, fused=True)
    schedule = {3: 3.5e-5, 5: 3.5e-6}
    _steps(ours_model, ours, 7, seed=2, lr_at=schedule)
    _steps(torch_model, ref, 7, seed=2, lr_at=schedule)
    for a, b in zip(ours_model.parameters(), torch_model.parameters(), strict=True):
        assert torch.equal(a, b)
    ref_state = ref.state_dict()
    our_state = ours.state_dict()
    assert our_state["param_groups"][0]["params"] == ref_state["param_groups"][0]["params"]
    assert our_state["state"].keys() == ref_state["state"].keys()
    bias_index = len(list(ours_model.parameters())) - 1
    assert bias_index not in our_state["state"]            # never had a gradient: no state
    for k, s in our_state["state"].items():
        for name, value in s.items():
            assert value.dtype == ref_state["state"][k][name].dtype
            assert torch.equal(value, ref_state["state"][k][name])


@pytest.mark.parametrize("first", ["ours", "torch"])
def test_state_dicts_load_into_each_other_and_training_continues_identically(first: str) -> None:
    # a state.pt written by either class (e.g. by lf2 before FusedAdam) resumes with the other
    make = {"ours": lambda m: FusedAdam(m.parameters(), lr=1e-3, weight_decay=5e-4),
            "torch": lambda m: torch.optim.Adam(m.parameters(), lr=1e-3, weight_decay=5e-4, fused=True)}
    second = "torch" if first == "ours" else "ours"
    model = _model(0)
    opt = make[first](model)
    _steps(model, opt, 3, seed=4)
    saved_weights = {k: v.clone() for k, v in model.state_dict().items()}
    saved = copy.deepcopy(opt.state_dict())
    _steps(model, opt, 3, seed=5)                          # the uninterrupted run
    resumed_model = _model(9)
    resumed_model.load_state_dict(saved_weights)
    resumed = make[second](resumed_model)
    resumed.load_state_dict(saved)
    _steps(resumed_model, resumed, 3, seed=5)              # killed after 3 steps, resumed
    for a, b in zip(model.parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_state_of_other_parameters_is_refused() -> None:
    opt = FusedAdam(_model(0).parameters(), lr=1e-3)
    other = torch.optim.Adam(torch.nn.Linear(2, 2).parameters(), lr=1e-3)
    with pytest.raises(ValueError, match="expected one param group of 6 parameters"):
        opt.load_state_dict(other.state_dict())


def test_zero_grad_keeps_or_drops_the_gradients() -> None:
    model = _model(0)
    opt = FusedAdam(model.parameters(), lr=1e-3)
    torch.nn.functional.cross_entropy(model(torch.randn(2, 3, 6, 6)), torch.tensor([0, 1])).backward()
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_unknown_kernel_is_a_params_error() -> None:
    with pytest.raises(ParamsError, match="adam='sgd'"):
        make_adam([_model(0)], 1e-3, 0.0, impl="sgd")
