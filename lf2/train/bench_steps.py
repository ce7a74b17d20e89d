"""Training steps on random data, for ``lf2 bench`` and the host-sync tests: the real
trainers' ``train_step`` on random images and labels, timed after a warm-up, then checked
for host syncs. Kept apart from the training loops, which never use it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from lf2.settings import finetune_settings, input_settings, model_settings, pretrain_settings
from lf2.train import runtime
from lf2.train.sampling import indices_on_device, make_sampling, on_device
from lf2.train.variants import make_variant


class RandomImages:
    """Random uint8 images behind the training-image interface (for ``bench_step``)."""

    def __init__(self, params: dict, device: torch.device, num_images: int, random_erasing: float) -> None:
        from lf2.data.batch_transforms import BatchAugment
        from lf2.data.tensor_cache import ImageCache

        inp = input_settings(params)
        gen = torch.Generator().manual_seed(0)
        raw = torch.randint(0, 256, (num_images, inp.height, inp.width, 3), dtype=torch.uint8, generator=gen)
        self.cache = ImageCache(raw.numpy(), device)
        self.augment = BatchAugment(inp.height, inp.width, pad=inp.pad, flip=inp.flip,
                                    random_erasing=random_erasing)

    def __len__(self) -> int:
        return len(self.cache)

    def batch(self, indices, *, erasing: bool, generator: torch.Generator) -> torch.Tensor:
        return self.cache.batch(indices, self.augment, generator)


def time_steps(step: Callable[[], Tensor], *, warmup: int, steps: int, device: torch.device) -> dict:
    """Seconds for ``steps`` calls of ``step`` after ``warmup`` untimed ones, one host sync at
    the end; peak GPU memory of the timed steps (None on CPU)."""
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    float(loss.detach())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return {"seconds": time.perf_counter() - t0,
            "peak_mem_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None}


def measure_step(step: Callable[[], Tensor], *, warmup: int, steps: int, device: torch.device,
                 images_per_step: int) -> dict:
    """``lf2 bench``'s figures for a training step: rates and peak memory over ``steps`` timed
    calls after ``warmup``, then the host syncs of two more calls (``step`` must allow
    ``warmup + steps + 2`` calls)."""
    from lf2.train.host_sync import sync_report

    timed = time_steps(step, warmup=warmup, steps=steps, device=device)
    dt = timed["seconds"]
    return {"it_per_s": steps / dt, "images_per_s": steps * images_per_step / dt,
            "peak_mem_bytes": timed["peak_mem_bytes"], **sync_report(step, device)}


# --------------------------------------------------------------------------- pre-training


def pretrain_random_step(params: dict, device: torch.device | str, steps: int,
                     num_images: int = 512) -> Callable[[], torch.Tensor]:
    """A source step on random images, callable ``steps`` times; each call returns the loss."""
    from lf2.data.sampler import PKSampler

    device = torch.device(device)
    pt = pretrain_settings(params)
    labels = np.arange(num_images) % max(2, num_images // 8)
    p = {**params, "model": {**params["model"], "pretrained": False}}
    from lf2.train.pretrain import PretrainTrainer

    trainer = PretrainTrainer(p, RandomImages(p, device, num_images, 0.0), labels, device)
    sampler = PKSampler(labels, pt.batch_p, pt.batch_k, steps, 0)
    it = iter(indices_on_device([np.asarray(idx, dtype=np.int64) for idx in sampler], device))
    gen = runtime.torch_generator(0, device)
    return lambda: trainer.train_step(next(it), gen)[0]


def pretrain_bench_step(params: dict, device: torch.device | str, steps: int = 20, warmup: int = 3,
               num_images: int = 512) -> dict:
    """Time the source step on random images (for ``lf2 bench``), then look for host syncs."""
    device = torch.device(device)
    step = pretrain_random_step(params, device, steps + warmup + 2, num_images)
    batch = params["pretrain"]["batch_p"] * params["pretrain"]["batch_k"]
    return {"batch": batch,
            **measure_step(step, warmup=warmup, steps=steps, device=device, images_per_step=batch)}


# --------------------------------------------------------------------------- fine-tuning


def finetune_random_step(params: dict, variant: str, sampling: str, device: torch.device | str, steps: int,
                     num_images: int = 512) -> Callable[[], Tensor]:
    """A fine-tuning step on random images and random pseudo labels, callable ``steps`` times
    (for ``lf2 bench`` and the host-sync tests); each call returns the step's loss."""
    device = torch.device(device)
    p = {**params, "finetune": {**params["finetune"], "sampling": sampling}}
    ft = finetune_settings(p)
    v = make_variant(variant, model_settings(p).num_parts)
    k = max(2, num_images // 8)
    images = RandomImages(p, device, num_images, input_settings(p).random_erasing)
    from lf2.train.finetune import FinetuneTrainer

    trainer = FinetuneTrainer(p, v, k, images, None, device)
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, k, num_images) for _ in v.set_names]
    for y in labels:
        y[:k] = np.arange(k)
    feats = rng.standard_normal((num_images, trainer.student.out_channels)).astype(np.float32)
    trainer.set_labels(labels, feats / np.linalg.norm(feats, axis=1, keepdims=True))
    it = iter(on_device(make_sampling(sampling, trainer.label_sets, ft.batch_p, ft.batch_k, steps, 0),
                        device))
    gen = runtime.torch_generator(0, device)
    return lambda: trainer.train_step(next(it), gen)[0]


def finetune_bench_step(params: dict, variant: str, sampling: str, device: torch.device | str, steps: int = 20,
               warmup: int = 3, num_images: int = 512) -> dict:
    """Time the fine-tuning step on random images and random pseudo labels (for ``lf2 bench``),
    then look for host syncs."""
    device = torch.device(device)
    step = finetune_random_step(params, variant, sampling, device, steps + warmup + 2, num_images)
    batch = params["finetune"]["batch_p"] * params["finetune"]["batch_k"]
    forwards = make_variant(variant, model_settings(params).num_parts).num_sets if sampling == "per_label" else 1
    return {"batch": batch, "forwards_per_step": forwards,
            **measure_step(step, warmup=warmup, steps=steps, device=device, images_per_step=batch * forwards)}
