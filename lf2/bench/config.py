"""``lf2 bench`` sizes: the sections, the paper's Table II schedule, the scales, and the helpers every section uses."""

from __future__ import annotations

import copy
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lf2.settings import model_settings
from lf2.train.variants import trained_variants

SECTIONS = ("matmul", "flops", "data", "pretrain", "finetune", "extract", "kmeans", "eval")
SAMPLINGS = ("shared", "per_label")

#: the paper's Table II schedule (docs/method.md §3-§5)
PAPER_SCHEDULE = {
    "pretrain_runs": 2, "pretrain_epochs": 80, "pretrain_iters": 200,
    "finetune_epochs": 80, "finetune_iters": 400,
    # rows per direction: Baseline, LF2 w/o FM, LF2 at M_t = 500 / 700 / 900
    "rows": [("baseline", 700), ("no_fm", 700), ("lf2", 500), ("lf2", 700), ("lf2", 900)],
    # target train / query / gallery sizes of the two directions (D-to-M, M-to-D)
    "targets": [
        {"name": "market1501", "train": 12936, "query": 3368, "gallery": 15913},
        {"name": "dukemtmc", "train": 16522, "query": 2228, "gallery": 17661},
    ],
    "num_parts": 2,
}


@dataclass
class BenchConfig:
    """Sizes of one bench run (``scale`` picks defaults; flags override them)."""

    scale: str = "small"
    height: int = 64
    width: int = 32
    pad: int = 4
    arch: str = "resnet18"
    batch_p: int = 4
    batch_k: int = 4
    steps: int = 1
    warmup: int = 1
    step_images: int = 32
    data_images: int = 32
    data_batches: int = 4
    extract_images: int = 32
    extract_batch: int = 16
    kmeans_n: int = 400
    kmeans_ids: int = 20
    kmeans_dims: list[int] = field(default_factory=lambda: [32])
    kmeans_ks: list[int] = field(default_factory=lambda: [20])
    kmeans_iters: int = 5
    kmeans_methods: list[str] = field(
        default_factory=lambda: ["faiss_cpu", "faiss_gpu", "torch", "sklearn", "sklearn_minibatch"]
    )
    eval_query: int = 50
    eval_gallery: int = 200
    eval_ids: int = 20
    eval_dim: int = 32
    matmul_size: int = 256
    variants: list[str] = field(default_factory=trained_variants)
    samplings: list[str] = field(default_factory=lambda: list(SAMPLINGS))
    workers: int = 0


SCALES: dict[str, dict[str, Any]] = {
    "small": {},
    "market": {
        "height": 256, "width": 128, "pad": 10, "arch": "resnet50", "batch_p": 16, "batch_k": 4,
        "steps": 2, "warmup": 1, "step_images": 256, "data_images": 256, "data_batches": 8,
        "extract_images": 256, "extract_batch": 128, "kmeans_n": 12936, "kmeans_ids": 751,
        "kmeans_dims": [2048, 6144], "kmeans_ks": [500, 700, 900], "kmeans_iters": 20,
        "eval_query": 3368, "eval_gallery": 15913, "eval_ids": 751, "eval_dim": 6144,
        "matmul_size": 4096,
    },
}


#: On a GPU a paper-scale step takes tens of milliseconds: time many of them, after enough
#: warm-up for cuDNN's algorithm search and the allocator to settle.
GPU_SCALES: dict[str, dict[str, Any]] = {"market": {"steps": 50, "warmup": 10}}


def make_config(scale: str, device_type: str = "cpu", **overrides: Any) -> BenchConfig:
    """The config of ``scale`` (on a ``device_type``) with the non-None ``overrides`` applied."""
    if scale not in SCALES:
        from lf2.errors import ParamsError

        raise ParamsError(f"--scale {scale!r}: expected one of {', '.join(SCALES)}")
    sizes = {**SCALES[scale], **(GPU_SCALES.get(scale, {}) if device_type == "cuda" else {})}
    cfg = BenchConfig(scale=scale, **sizes)
    for key, value in overrides.items():
        if value is not None:
            setattr(cfg, key, value)
    return cfg


# ----------------------------------------------------------------------------- helpers
def _sync(device: Any) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _timeit(fn: Callable[[], Any], device: Any, repeat: int = 1) -> tuple[float, Any]:
    """Seconds per call of ``fn`` (after one untimed call) and its last result."""
    out = fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    _sync(device)
    return (time.perf_counter() - t0) / repeat, out


def machine_info(device: Any) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        # other processes competing for the cores make every CPU figure slower
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    if torch.device(device).type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = props.name
        info["gpu_memory_bytes"] = props.total_memory
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _params_at_scale(params: dict[str, Any], cfg: BenchConfig) -> dict[str, Any]:
    p = copy.deepcopy(params)
    p["input"].update(height=cfg.height, width=cfg.width, pad=cfg.pad)
    p["model"].update(arch=cfg.arch, pretrained=False)
    for stage in ("pretrain", "finetune"):
        p[stage].update(batch_p=cfg.batch_p, batch_k=cfg.batch_k)
    return p


def _build_model(cfg: BenchConfig, params: dict[str, Any], num_classes: int = 0):
    from lf2.models.net import ReIDNet

    m = model_settings(params)
    return ReIDNet(
        arch=cfg.arch, pretrained=False, last_stride=m.last_stride, num_parts=m.num_parts,
        pooling=m.pooling, num_classes=num_classes, test_feature=m.test_feature,
    )
