"""Decoded training images held as one uint8 tensor on the training device.

Market-1501's 12,936 training images at 256x128 are 12,936 x 3 x 256 x 128 bytes = 1.27 GB
as uint8: they fit in GPU memory next to a ResNet-50, and then a training batch is an index
select plus :class:`~lf2.data.batch_transforms.BatchAugment`, with no JPEG decoding, PIL
work or host-to-device copy per step. :func:`should_cache` decides when that is safe; the
DataLoader path is the fallback.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from lf2.data.batch_transforms import normalize

if TYPE_CHECKING:
    from lf2.data.batch_transforms import BatchAugment

#: share of free memory the cache may take (the rest is for model, activations, features)
GPU_FRACTION = 0.35
CPU_FRACTION = 0.5


def cache_bytes(num_images: int, height: int, width: int) -> int:
    """Bytes of the uint8 cache for ``num_images`` RGB images of height x width."""
    return int(num_images) * 3 * int(height) * int(width)


def _available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 0


def should_cache(
    num_images: int,
    height: int,
    width: int,
    device: str | torch.device,
    limit_bytes: int | None = None,
) -> bool:
    """True when the decoded images fit comfortably on ``device``.

    With ``limit_bytes`` the cache must fit under it; otherwise under a fraction of the
    memory free now (35% of free GPU memory, 50% of available host memory), which leaves
    room for the model, activations and the per-epoch feature matrices.
    """
    need = cache_bytes(num_images, height, width)
    if limit_bytes is not None:
        return need <= int(limit_bytes)
    dev = torch.device(device)
    frac = GPU_FRACTION if dev.type == "cuda" else CPU_FRACTION
    return need <= frac * _available_bytes(dev)


class ImageCache:
    """N decoded images as a uint8 tensor (N, 3, H, W) on ``device``.

    ``images_uint8`` is (N, H, W, 3) (as decoded) or already (N, 3, H, W); numpy or torch.
    """

    def __init__(self, images_uint8: np.ndarray | torch.Tensor, device: str | torch.device):
        t = torch.as_tensor(images_uint8)
        if t.dtype != torch.uint8 or t.ndim != 4:
            raise ValueError(
                f"ImageCache expects uint8 images (N, H, W, 3), got {t.dtype} {tuple(t.shape)}"
            )
        if t.shape[-1] == 3 and t.shape[1] != 3:
            t = t.permute(0, 3, 1, 2)
        elif t.shape[1] != 3:
            raise ValueError(f"ImageCache expects 3 channels, got shape {tuple(t.shape)}")
        self.device = torch.device(device)
        self.images = t.contiguous().to(self.device)

    @classmethod
    def from_paths(
        cls,
        paths: Sequence[str | os.PathLike[str]],
        height: int,
        width: int,
        device: str | torch.device,
        workers: int = 0,
    ) -> ImageCache:
        """Decode and resize every image (``lf2.data.images.decode_all``) and cache them."""
        from lf2.data.images import decode_all

        return cls(decode_all(paths, height, width, workers), device)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def nbytes(self) -> int:
        return self.images.numel() * self.images.element_size()

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return tuple(self.images.shape)  # type: ignore[return-value]

    def batch(
        self,
        indices: Sequence[int] | np.ndarray | torch.Tensor,
        augment: BatchAugment | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Float batch (B, 3, H, W) of the images at ``indices``, augmented when asked."""
        idx = torch.as_tensor(np.asarray(indices) if not torch.is_tensor(indices) else indices)
        idx = idx.to(device=self.device, dtype=torch.long)
        x = self.images.index_select(0, idx)
        if augment is None:
            return normalize(x)
        if generator is None:
            raise ValueError("ImageCache.batch: an augment needs a torch.Generator")
        return augment(x, generator)

    def eval_batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        """Normalised float batches over all images, in order (for feature extraction)."""
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        for start in range(0, len(self), batch_size):
            yield normalize(self.images[start : start + batch_size])

    def __repr__(self) -> str:
        n, c, h, w = self.shape
        return f"ImageCache({n}x{c}x{h}x{w} uint8, {self.nbytes / 2**20:.1f} MiB, {self.device})"
