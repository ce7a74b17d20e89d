"""``precision: auto`` follows the hardware: bf16 on a GPU and on a CPU with native bf16
kernels, fp32 on other CPUs, where oneDNN's bf16 fallback made a training step 40x slower
than fp32 (docs/performance.md). ``bf16`` asked for explicitly is kept, with a warning."""

from __future__ import annotations

import logging

import pytest
import torch

from lf2.errors import ParamsError
from lf2.train import runtime

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize("fast, expected", [(True, torch.bfloat16), (False, None)])
def test_auto_on_a_cpu_follows_its_bf16_kernels(monkeypatch, fast, expected) -> None:
    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: fast)
    assert runtime.resolve_precision("auto", CPU) == expected
    assert runtime.resolve_precision(None, CPU) == expected  # absent key = auto


def test_auto_on_a_gpu_is_bf16(monkeypatch) -> None:
    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: False)
    assert runtime.resolve_precision("auto", CUDA) == torch.bfloat16


@pytest.mark.parametrize("fast", [True, False])
def test_explicit_values_are_kept(monkeypatch, fast) -> None:
    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: fast)
    assert runtime.resolve_precision("bf16", CPU) == torch.bfloat16
    assert runtime.resolve_precision("fp32", CPU) is None
    assert runtime.resolve_precision("fp32", CUDA) is None


def test_bf16_on_a_cpu_without_its_kernels_warns(monkeypatch, caplog) -> None:
    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="lf2.train.runtime"):
        runtime.resolve_precision("bf16", CPU)
    assert "precision: bf16" in caplog.text and "auto or fp32" in caplog.text
    caplog.clear()
    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: True)
    with caplog.at_level(logging.WARNING, logger="lf2.train.runtime"):
        runtime.resolve_precision("bf16", CPU)
    assert caplog.text == ""


def test_the_probe_answers_a_bool_and_names_match() -> None:
    assert isinstance(runtime.cpu_has_fast_bf16(), bool)
    assert runtime.precision_name(torch.bfloat16) == "bf16"
    assert runtime.precision_name(None) == "fp32"


def test_unknown_precision_is_named() -> None:
    with pytest.raises(ParamsError, match="fp16"):
        runtime.resolve_precision("fp16", CPU)
