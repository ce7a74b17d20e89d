"""Device, precision, seeding and threading: the few global settings a run needs."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from lf2.errors import ParamsError

log = logging.getLogger(__name__)


def resolve_device(spec: str | None = "auto") -> torch.device:
    """``auto`` -> the first CUDA device when one is present, else the CPU."""
    spec = spec or "auto"
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ParamsError(f"device: {spec!r} was asked for but no CUDA device is available; use 'auto' or 'cpu'")
    try:
        return torch.device(spec)
    except RuntimeError as exc:
        raise ParamsError(f"device: {spec!r} is not a device; expected auto, cpu, cuda or cuda:N") from exc


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU runs bf16 convolutions natively (oneDNN's AVX-512 / AMX bf16 kernels).

    Without them oneDNN falls back to reference kernels: measured on a 2-core AMD EPYC VM
    with AVX2 only, a bf16 training step of the synthetic default took 40x the fp32 step
    (docs/performance.md), where a CPU with avx512_bf16 runs it in about half the fp32 time.
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch without the probe: assume the slow path
        return False


def resolve_precision(spec: str | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for full fp32.

    ``auto`` = bf16 on a GPU and on a CPU with native bf16 kernels (:func:`cpu_has_fast_bf16`),
    fp32 on any other CPU. ``bf16`` is bf16 everywhere, with a warning on a CPU without the
    kernels. Which one a run used is in its log, its checkpoint's ``meta.precision`` and
    its metrics file.
    """
    spec = spec or "auto"
    if spec == "auto":
        if device.type == "cuda" or (device.type == "cpu" and cpu_has_fast_bf16()):
            return torch.bfloat16
        return None
    if spec == "bf16":
        if device.type == "cpu" and not cpu_has_fast_bf16():
            log.warning("precision: bf16 on a CPU without native bf16 kernels (%s): steps run "
                        "tens of times slower than fp32; use precision: auto or fp32",
                        torch.backends.cpu.get_cpu_capability())
        return torch.bfloat16
    if spec == "fp32":
        return None
    raise ParamsError(f"precision: {spec!r}; expected auto, fp32 or bf16")


def precision_name(dtype: torch.dtype | None) -> str:
    """``bf16`` or ``fp32``: the resolved precision, as runs record it."""
    return "bf16" if dtype == torch.bfloat16 else "fp32"


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


COMPILE_MODES = ("none", "default", "max-autotune")


def compile_backbones(models: list[torch.nn.Module], mode: str | None) -> None:
    """``torch.compile`` each model's backbone in place (``params.compile``).

    ``nn.Module.compile`` keeps the state-dict keys, so checkpoints, the EMA update and
    resume are unchanged; the heads stay eager (the classifier is replaced every epoch).
    """
    mode = mode or "none"
    if mode not in COMPILE_MODES:
        raise ParamsError(f"compile: {mode!r}; expected one of {', '.join(COMPILE_MODES)}")
    if mode == "none":
        return
    if torch.are_deterministic_algorithms_enabled():  # inductor's own flag too (see above)
        torch.use_deterministic_algorithms(
            True, warn_only=torch.is_deterministic_algorithms_warn_only_enabled()
        )
    for model in models:
        model.backbone.compile(mode=None if mode == "default" else mode)


def configure_threads(threads: int) -> None:
    if threads and threads > 0:
        torch.set_num_threads(threads)


def derive_seed(*parts: Any) -> int:
    """A 31-bit seed derived from any hashable parts (stable across runs and platforms).

    Every random draw of an epoch is seeded from (run seed, purpose, epoch), so a run resumed
    at an epoch boundary replays exactly what an uninterrupted run would have done.
    """
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def seed_everything(seed: int, deterministic: bool = True) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if deterministic:
        _set_deterministic_algorithms()
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False


def _set_deterministic_algorithms() -> None:
    """``torch.use_deterministic_algorithms(True, warn_only=True)`` without its import of
    ``torch._inductor`` (about 2 s of each job's start-up): that import only sets inductor's
    own flag, which matters once something is compiled, and ``compile_backbones`` sets it
    then. Falls back to the public call if torch's private setter is gone."""
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None or "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        setter(True, warn_only=True)


def rng_state() -> dict:
    """The global RNG states, as lists and tensors only (a checkpoint loads them weights-only)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "numpy": [name, keys.tolist(), pos, has_gauss, cached],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def torch_generator(seed: int, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device if device.type == "cuda" else "cpu")
    gen.manual_seed(seed)
    return gen


def show_progress() -> bool:
    """Progress bars only on an interactive terminal (quiet in CI, Snakemake logs, SLURM)."""
    return sys.stderr.isatty()


@contextlib.contextmanager
def eval_mode(*modules: torch.nn.Module) -> Iterator[None]:
    """Put modules in eval mode for the block and restore their previous modes after."""
    modes = [m.training for m in modules]
    try:
        for m in modules:
            m.eval()
        yield
    finally:
        for m, mode in zip(modules, modes, strict=True):
            m.train(mode)
