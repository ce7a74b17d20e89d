"""Find the operations in a training step that would make the host wait for the GPU.

On CUDA the host queues kernels and runs ahead; a step is fastest when the host launches
step n+1 while the GPU still runs step n. Some operations end that overlap because the
host needs a result from the device, or hands it host memory it must copy first:

- reading a value on the host: ``.item()``, ``float(t)``, ``int(t)``, ``bool(t)``, ``if t:``
  (all ``aten._local_scalar_dense``);
- operations whose output size depends on the data: ``nonzero``, boolean-mask indexing
  ``x[mask]``, ``masked_select``, ``unique``;
- tensors made from host data inside the step (``torch.tensor(...)``,
  ``torch.from_numpy(...)``, ``x.new_tensor(...)``: ``aten.lift_fresh``), which reach a
  CUDA device through a pageable copy that first waits for the queue to drain.

:class:`HostSyncRecorder` is a dispatch mode that sees these operations on any device, so
the CPU tests hold the training step to the same rule that
``torch.cuda.set_sync_debug_mode("error")`` enforces on a GPU (the GPU tests do both).
"""

from __future__ import annotations

import collections
import os
import traceback
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

SYNCING_OPS = frozenset({
    "aten._local_scalar_dense.default",
    "aten.nonzero.default",
    "aten.masked_select.default",
    "aten.lift_fresh.default",
    "aten.lift_fresh_copy.default",
    "aten._unique2.default",
    "aten.unique_dim.default",
    "aten.unique_consecutive.default",
    "aten.repeat_interleave.Tensor",
})

#: torch.optim's foreach Adam (params ``adam: foreach``) keeps its step counters on the host
#: and reads them there, so calls from torch.optim are not counted. The default ``adam:
#: fused`` is :class:`lf2.train.adam.FusedAdam`, which lives in lf2 and is counted: the CPU
#: step tests hold its update to the no-sync rule too.
DEFAULT_SKIP = ("torch/optim/",)
_THIS_FILE = os.path.abspath(__file__)


def _is_syncing(name: str, args: tuple) -> bool:
    if name in SYNCING_OPS:
        return True
    if name in ("aten.index.Tensor", "aten.index_put_.default", "aten.index_put.default"):
        return any(t is not None and torch.is_tensor(t) and t.dtype == torch.bool for t in args[1])
    return False


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../lf2


def _where(stack: traceback.StackSummary) -> tuple[str, str]:
    """Innermost frame inside the lf2 package (file:line and code) that led to the operation."""
    prefix = _PACKAGE_DIR + os.sep
    frames = [f for f in stack
              if os.path.abspath(f.filename).startswith(prefix) and os.path.abspath(f.filename) != _THIS_FILE]
    if not frames:
        return "?", ""
    f = frames[-1]
    rel = os.path.relpath(os.path.abspath(f.filename), _PACKAGE_DIR).replace(os.sep, "/")
    return f"{rel}:{f.lineno}", (f.line or "").strip()


class HostSyncRecorder(TorchDispatchMode):
    """Counts syncing operations run inside ``with HostSyncRecorder() as rec:``.

    ``rec.found`` maps (operation, "file:line", code) to how often it ran.
    """

    def __init__(self, skip: tuple[str, ...] = DEFAULT_SKIP) -> None:
        super().__init__()
        self.skip = skip
        self.found: collections.Counter[tuple[str, str, str]] = collections.Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        name = str(func)
        if _is_syncing(name, args):
            stack = traceback.extract_stack()
            if not any(s in f.filename.replace("\\", "/") for f in stack for s in self.skip):
                self.found[(name, *_where(stack))] += 1
        return func(*args, **(kwargs or {}))

    def report(self) -> str:
        return "\n".join(f"{n}x {op} at lf2/{loc}: {code}" for (op, loc, code), n in self.found.most_common())


def host_syncs(fn: Callable[[], Any], skip: tuple[str, ...] = DEFAULT_SKIP) -> collections.Counter:
    """Run ``fn`` once and return the syncing operations it ran (see the module docstring)."""
    with HostSyncRecorder(skip) as rec:
        fn()
    return rec.found


def cuda_sync_warnings(fn: Callable[[], Any]) -> int:
    """Run ``fn`` once under ``torch.cuda.set_sync_debug_mode("warn")``; the number of
    synchronising CUDA calls torch reported (CUDA only)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def sync_report(step: Callable[[], Any], device: torch.device) -> dict[str, Any]:
    """Two more calls of ``step``: the syncing operations this module sees (on any device)
    and, on CUDA, the synchronising calls torch itself reports. For ``lf2 bench``."""
    found = host_syncs(step)
    out: dict[str, Any] = {"host_sync_ops": sum(found.values()),
                           "host_sync_sites": sorted({f"{op} at lf2/{loc}" for op, loc, _ in found})}
    if device.type == "cuda":
        out["cuda_sync_calls"] = cuda_sync_warnings(step)
        torch.cuda.synchronize(device)
    return out
