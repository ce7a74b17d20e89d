"""``lf2 bench`` sections ``data``, ``pretrain`` / ``finetune`` and ``extract``: the input path, the training steps and the per-epoch extraction."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from lf2.bench.config import BenchConfig, _build_model, _params_at_scale, _sync, _timeit
from lf2.settings import input_settings

log = logging.getLogger(__name__)


def bench_data(cfg: BenchConfig, params: dict[str, Any], device: Any) -> dict[str, Any]:
    """DataLoader + PIL (JPEG decode + per-image transforms) vs cached batch augmentation."""
    import torch
    from PIL import Image

    from lf2.data.batch_transforms import BatchAugment
    from lf2.data.images import ImageDataset
    from lf2.data.tensor_cache import ImageCache
    from lf2.data.transforms import build_train_transform

    n, batch = cfg.data_images, cfg.batch_p * cfg.batch_k
    erasing = float(input_settings(params).random_erasing)
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (n, cfg.height, cfg.width, 3), dtype=np.uint8)
    out: dict[str, Any] = {"images": n, "batch": batch, "workers": cfg.workers}
    with tempfile.TemporaryDirectory(prefix="lf2-bench-") as tmp:
        paths = []
        for i in range(n):
            path = Path(tmp) / f"{i:05d}.jpg"
            Image.fromarray(raw[i]).save(path, quality=90)
            paths.append(path)
        tf = build_train_transform(cfg.height, cfg.width, pad=cfg.pad, flip=True, random_erasing=erasing)
        loader = torch.utils.data.DataLoader(
            ImageDataset(paths, tf), batch_size=batch, shuffle=True, num_workers=cfg.workers,
            drop_last=False, pin_memory=torch.device(device).type == "cuda",
        )

        def run_loader() -> int:
            seen = 0
            for x, _ in loader:
                x = x.to(device, non_blocking=True)
                seen += x.shape[0]
            return seen

        sec, seen = _timeit(run_loader, device)
        out["loader_images_per_s"] = seen / sec
        t0 = time.perf_counter()
        cache = ImageCache.from_paths(paths, cfg.height, cfg.width, device, workers=cfg.workers)
        _sync(device)
        out["cache_build_images_per_s"] = n / (time.perf_counter() - t0)
    aug = BatchAugment(cfg.height, cfg.width, pad=cfg.pad, flip=True, random_erasing=erasing)
    gen = torch.Generator().manual_seed(0)
    idx = [torch.randint(0, n, (batch,), generator=gen) for _ in range(cfg.data_batches)]

    def run_cache() -> int:
        for i in idx:
            cache.batch(i, aug, gen)
        return batch * len(idx)

    sec, seen = _timeit(run_cache, device)
    out["cache_images_per_s"] = seen / sec
    out["speedup_cache_vs_loader"] = out["cache_images_per_s"] / out["loader_images_per_s"]
    return out


def bench_steps(
    kind: str, cfg: BenchConfig, params: dict[str, Any], device: Any
) -> dict[str, Any]:
    """Source (``pretrain``) or fine-tuning (``finetune``) step rates via lf2.train."""
    import importlib

    try:
        mod = importlib.import_module("lf2.train.bench_steps")
        step = getattr(mod, f"{kind}_bench_step")
    except (ImportError, AttributeError) as exc:
        return {"skipped": f"lf2.train.bench_steps.{kind}_bench_step is not available ({exc})"}
    p = _params_at_scale(params, cfg)
    common = {"steps": cfg.steps, "warmup": cfg.warmup, "num_images": cfg.step_images}
    if kind == "pretrain":
        return {"steps": cfg.steps, "warmup": cfg.warmup, **step(p, device, **common)}
    out: dict[str, Any] = {"steps": cfg.steps, "warmup": cfg.warmup, "runs": {}}
    for variant in cfg.variants:
        for sampling in cfg.samplings:
            log.info("bench finetune %s / %s", variant, sampling)
            out["runs"][f"{variant}/{sampling}"] = step(p, variant, sampling, device, **common)
    return out


def bench_extract(cfg: BenchConfig, params: dict[str, Any], device: Any) -> dict[str, Any]:
    """Images/s through the model in eval mode, batches from the image cache."""
    import torch

    from lf2.data.tensor_cache import ImageCache
    from lf2.train import runtime

    model = _build_model(cfg, params).to(device).eval()
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 256, (cfg.extract_images, cfg.height, cfg.width, 3), dtype=np.uint8)
    cache = ImageCache(raw, device)
    dtype = runtime.resolve_precision(params.get("precision", "auto"), torch.device(device))

    def run() -> int:
        with torch.no_grad(), runtime.autocast(torch.device(device), dtype):
            feats = [model(x).float() for x in cache.eval_batches(cfg.extract_batch)]
        return sum(f.shape[0] for f in feats)

    sec, seen = _timeit(run, device)
    return {
        "images": seen, "batch": cfg.extract_batch, "precision": str(dtype or "fp32"),
        "images_per_s": seen / sec, "embedding_dim": model.embedding_dim,
    }
