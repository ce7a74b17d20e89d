"""Test-time feature extraction: a model over ordered image batches -> (N, D) float32.

Flip augmentation follows the released code (and fast-reid / MMT): the embeddings of the
image and of its horizontal mirror are summed, then L2-normalised.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch


def extract_features(
    model: Callable[[torch.Tensor], torch.Tensor],
    batches: Iterable[Any],
    *,
    flip: bool = True,
    device: str | torch.device | None = None,
    amp: bool | None = None,
    normalize: bool = True,
    progress: bool | str | None = None,
) -> np.ndarray:
    """Embed every image of ``batches``; return a float32 ``(N, D)`` array in input order.

    ``model`` maps a float batch ``(B, 3, H, W)`` to ``(B, D)`` (an ``nn.Module`` is run in
    eval mode for the call and its mode restored after). ``batches`` yields image tensors,
    or ``(tensor, index)`` tuples as :class:`lf2.data.images.ImageDataset` does: with
    indices, row ``index`` of the output holds that image, whatever order the batches
    come in (the indices must cover ``0..N-1`` exactly once). ``device`` defaults to the
    model's; ``amp`` (bf16 autocast) defaults to on for CUDA and is never used on the
    CPU. ``flip`` adds the mirrored image's embedding; ``normalize`` L2-normalises the
    result. ``progress``: None = a tqdm bar only when stderr is a terminal, a string =
    always, with that label.
    """
    dev = _model_device(model) if device is None else torch.device(device)
    use_amp = dev.type == "cuda" and (amp is None or amp)
    module = model if isinstance(model, torch.nn.Module) else None
    was_training = module.training if module is not None else False
    if module is not None:
        module.eval()
    chunks: list[torch.Tensor] = []
    indices: list[torch.Tensor] = []
    try:
        with torch.inference_mode():
            for item in _progress(batches, progress):
                images, index = _split(item)
                images = images.to(dev, non_blocking=True).float()
                with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_amp):
                    emb = _embed(model, images).float()  # sum in fp32, not bf16
                    if flip:
                        emb = emb + _embed(model, torch.flip(images, dims=[3])).float()
                if normalize:
                    emb = torch.nn.functional.normalize(emb, dim=1)
                chunks.append(emb.cpu())
                if index is not None:
                    indices.append(torch.as_tensor(index).reshape(-1).long().cpu())
                elif indices:
                    raise ValueError(
                        "some batches carry indices and some do not; expected all or none"
                    )
    finally:
        if module is not None:
            module.train(was_training)
    if not chunks:
        raise ValueError("no batches to extract features from; expected at least one image")
    feats = torch.cat(chunks).numpy().astype(np.float32, copy=False)
    if not indices:
        return feats
    if len(indices) != len(chunks):
        raise ValueError("some batches carry indices and some do not; expected all or none")
    return _reorder(feats, torch.cat(indices).numpy())


def iter_eval_batches(
    paths: Sequence[str | os.PathLike[str]],
    height: int,
    width: int,
    batch_size: int,
    workers: int = 0,
) -> Any:
    """A DataLoader over ``paths`` in order, test transform, yielding ``(images, indices)``."""
    from torch.utils.data import DataLoader

    from lf2.data.images import ImageDataset
    from lf2.data.transforms import build_test_transform

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    dataset = ImageDataset(list(paths), build_test_transform(height, width))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=max(0, workers),
        pin_memory=torch.cuda.is_available(),
        drop_last=False,
    )


def _embed(model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    out = model(images)
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != images.shape[0]:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"model returned {shape} for a batch of {images.shape[0]} images; "
            "expected a (batch, dim) tensor"
        )
    return out


def _split(item: Any) -> tuple[torch.Tensor, Any]:
    if isinstance(item, torch.Tensor):
        images, index = item, None
    elif isinstance(item, list | tuple) and len(item) == 2:
        images, index = item
    else:
        raise ValueError(
            "a batch must be an image tensor or an (images, indices) pair, "
            f"got {type(item).__name__}"
        )
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a (B, 3, H, W) tensor, got {shape}")
    return images, index


def _reorder(feats: np.ndarray, index: np.ndarray) -> np.ndarray:
    n = feats.shape[0]
    if index.size != n or not np.array_equal(np.sort(index), np.arange(n)):
        raise ValueError(
            f"batch indices must cover 0..{n - 1} exactly once; got {index.size} "
            f"indices ranging {index.min()}..{index.max()}"
        )
    out = np.empty_like(feats)
    out[index] = feats
    return out


def _model_device(model: Any) -> torch.device:
    if isinstance(model, torch.nn.Module):
        for p in model.parameters():
            return p.device
        for b in model.buffers():
            return b.device
    return torch.device("cpu")


def _progress(batches: Iterable[Any], progress: bool | str | None) -> Iterable[Any]:
    show = sys.stderr.isatty() if progress is None else bool(progress)
    if not show:
        return batches
    from tqdm import tqdm

    label = progress if isinstance(progress, str) else "features"
    total = len(batches) if hasattr(batches, "__len__") else None
    return tqdm(batches, total=total, desc=label, unit="batch", leave=False)
