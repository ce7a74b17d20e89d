"""Training augmentation on a whole batch of decoded uint8 images, on their device.

The per-image PIL/torchvision pipeline (``lf2.data.transforms.build_train_transform``) is
flip -> zero pad + random crop -> to float -> ImageNet normalise -> random erasing. This
module draws the same distributions for a batch (B, 3, H, W) at once, with no Python loop
over samples, so that a GPU (or the CPU) is not starved by per-image decoding.

All random numbers come from one ``torch.Generator`` and are drawn on the generator's
device, then moved to the images' device, so a seed gives the same augmentation on CPU
and GPU.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

try:  # the per-image pipeline owns the constants; keep one definition
    from lf2.data.transforms import IMAGENET_MEAN, IMAGENET_STD
except ImportError:  # pragma: no cover - only while the sibling module is missing
    IMAGENET_MEAN = (0.485, 0.456, 0.406)
    IMAGENET_STD = (0.229, 0.224, 0.225)

#: torchvision.transforms.RandomErasing defaults (the paper's fine-tuning stage uses them)
ERASE_SCALE = (0.02, 0.33)
ERASE_RATIO = (0.3, 3.3)
ERASE_ATTEMPTS = 10


def normalize(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float32, ``ToTensor`` then ``Normalize`` (same operation order)."""
    x = images_uint8.to(torch.float32).div_(255.0)
    mean, std = _mean_std(x.device)
    return x.sub_(mean).div_(std)


@functools.cache
def _mean_std(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    # made once per device: building them per batch would copy from the host every step
    def shaped(v: tuple[float, ...]) -> torch.Tensor:
        return torch.tensor(v, dtype=torch.float32, device=device).view(1, 3, 1, 1)

    return shaped(IMAGENET_MEAN), shaped(IMAGENET_STD)


def _uniform(n: int, generator: torch.Generator, shape: tuple[int, ...] = ()) -> torch.Tensor:
    return torch.rand((n, *shape), generator=generator, device=generator.device)


def flip_crop_indices(
    batch: int, height: int, width: int, pad: int, flip: bool, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw per-sample flips and crop offsets; return (rows, cols, flipped, offsets).

    ``rows`` (B, H) and ``cols`` (B, W) index the zero-padded image; ``offsets`` (B, 2) holds
    (top, left), each uniform over 0..2*pad like ``RandomCrop(padding=pad)``. A flip is
    folded into ``cols``: flipping, padding, then cropping at ``left`` reads padded column
    ``Wp - 1 - (left + c)``.
    """
    if flip:
        flipped = _uniform(batch, generator) < 0.5
    else:
        flipped = torch.zeros(batch, dtype=torch.bool, device=generator.device)
    if pad > 0:
        offsets = torch.randint(
            0, 2 * pad + 1, (batch, 2), generator=generator, device=generator.device
        )
    else:
        offsets = torch.zeros(batch, 2, dtype=torch.long, device=generator.device)
    ar_h = torch.arange(height, device=generator.device)
    ar_w = torch.arange(width, device=generator.device)
    rows = offsets[:, :1] + ar_h
    cols = offsets[:, 1:] + ar_w
    cols = torch.where(flipped[:, None], width + 2 * pad - 1 - cols, cols)
    return rows, cols, flipped, offsets


def erase_boxes(
    batch: int,
    height: int,
    width: int,
    p: float,
    generator: torch.Generator,
    scale: tuple[float, float] = ERASE_SCALE,
    ratio: tuple[float, float] = ERASE_RATIO,
    attempts: int = ERASE_ATTEMPTS,
) -> torch.Tensor:
    """Draw RandomErasing boxes for a batch: long tensor (B, 4) = (top, left, h, w).

    Same distribution as ``torchvision.transforms.RandomErasing.get_params``: with
    probability ``p`` try up to ``attempts`` (area, log-uniform aspect) draws and keep the
    first whose rounded box fits strictly inside the image; position uniform. A sample that
    is not erased (or whose attempts all fail) gets h = w = 0.
    """
    dev = generator.device
    apply = _uniform(batch, generator) < p
    area = height * width
    target = area * (scale[0] + (scale[1] - scale[0]) * _uniform(batch, generator, (attempts,)))
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(lo + (hi - lo) * _uniform(batch, generator, (attempts,)))
    # float64 so that rounding of sqrt matches Python's round() on float math
    target, aspect = target.double(), aspect.double()
    h = torch.round(torch.sqrt(target * aspect)).long()
    w = torch.round(torch.sqrt(target / aspect)).long()
    ok = (h < height) & (w < width)
    first = torch.argmax(ok.to(torch.int8), dim=1)  # first fitting attempt (0 if none)
    found = ok.any(dim=1) & apply
    h = torch.where(found, h.gather(1, first[:, None]).squeeze(1), 0)
    w = torch.where(found, w.gather(1, first[:, None]).squeeze(1), 0)
    u = _uniform(batch, generator, (2,))
    top = torch.floor(u[:, 0] * (height - h + 1).to(u.dtype)).long().clamp_max(height - h)
    left = torch.floor(u[:, 1] * (width - w + 1).to(u.dtype)).long().clamp_max(width - w)
    return torch.stack([top, left, h, w], dim=1).to(dev)


def apply_erasing(images: torch.Tensor, boxes: torch.Tensor, value: float = 0.0) -> torch.Tensor:
    """Set each image's box (top, left, h, w) to ``value`` in place; h = 0 leaves it alone."""
    _, _, height, width = images.shape
    boxes = boxes.to(images.device)
    r = torch.arange(height, device=images.device)
    c = torch.arange(width, device=images.device)
    top, left, h, w = boxes.unbind(1)
    in_r = (r >= top[:, None]) & (r < (top + h)[:, None])  # (B, H)
    in_c = (c >= left[:, None]) & (c < (left + w)[:, None])  # (B, W)
    mask = (in_r[:, :, None] & in_c[:, None, :])[:, None]  # (B, 1, H, W)
    return images.masked_fill_(mask, value)


@dataclass(frozen=True)
class BatchAugment:
    """Flip, pad + crop, normalise and random-erase a uint8 batch (B, 3, H, W).

    ``random_erasing`` is the erasing probability (0 disables it, as in pre-training).
    """

    height: int
    width: int
    pad: int = 10
    flip: bool = True
    random_erasing: float = 0.0

    def __call__(self, images_uint8: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if images_uint8.dtype != torch.uint8 or images_uint8.ndim != 4:
            raise ValueError(
                f"BatchAugment expects uint8 images (B, 3, H, W), got {images_uint8.dtype} "
                f"{tuple(images_uint8.shape)}"
            )
        b, ch, h, w = images_uint8.shape
        if (h, w) != (self.height, self.width):
            raise ValueError(
                f"BatchAugment built for {self.height}x{self.width}, images are {h}x{w}"
            )
        dev = images_uint8.device
        rows, cols, _, _ = flip_crop_indices(b, h, w, self.pad, self.flip, generator)
        x = images_uint8
        if self.pad > 0:
            x = torch.nn.functional.pad(x, (self.pad, self.pad, self.pad, self.pad))
        # gather rows then columns: two cheap index ops on uint8 instead of one 4-D gather
        rows, cols = rows.to(dev), cols.to(dev)
        wp = x.shape[3]
        x = x.gather(2, rows[:, None, :, None].expand(b, ch, h, wp))
        x = x.gather(3, cols[:, None, None, :].expand(b, ch, h, w))
        out = normalize(x)
        if self.random_erasing > 0:
            boxes = erase_boxes(b, h, w, self.random_erasing, generator)
            apply_erasing(out, boxes)
        return out
