"""Training images served as augmented batches by index.

Two paths behind one interface: the decoded images held as one uint8 tensor (on the GPU
when training there) and augmented per batch with tensor ops — the default whenever the
data fits — and a per-image PIL/torchvision path for data larger than memory.
Both draw their randomness from the generator passed in, so a run is reproducible by seed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from lf2.errors import ParamsError


class TrainImages:
    def __init__(
        self,
        paths: Sequence[Path],
        *,
        height: int,
        width: int,
        pad: int,
        flip: bool,
        random_erasing: float,
        cache: str,
        device: torch.device,
        workers: int = 0,
    ) -> None:
        from lf2.data.tensor_cache import ImageCache, should_cache

        if cache not in ("auto", "memory", "loader"):
            raise ParamsError(f"input.cache: {cache!r}; expected auto, memory or loader")
        self.paths = list(paths)
        self.height, self.width, self.device = height, width, device
        self.pad, self.flip, self.random_erasing, self.workers = pad, flip, random_erasing, workers
        use_cache = cache == "memory" or (
            cache == "auto" and should_cache(len(self.paths), height, width, device)
        )
        self.mode = "memory" if use_cache else "loader"
        self._cache = ImageCache.from_paths(self.paths, height, width, device, workers=workers) if use_cache else None
        self._augment: dict[bool, object] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def _batch_augment(self, erasing: bool):
        from lf2.data.batch_transforms import BatchAugment

        if erasing not in self._augment:
            self._augment[erasing] = BatchAugment(
                self.height, self.width, pad=self.pad, flip=self.flip,
                random_erasing=self.random_erasing if erasing else 0.0,
            )
        return self._augment[erasing]

    def batch(self, indices: np.ndarray | torch.Tensor, *, erasing: bool, generator: torch.Generator) -> torch.Tensor:
        """Augmented, normalised float batch (B, 3, H, W) on the training device.

        ``indices`` already on the training device cost no copy on the cached path; the
        loader path reads them back to the host (it decodes files, a copy is nothing there).
        """
        if self._cache is not None:
            return self._cache.batch(indices, self._batch_augment(erasing), generator)
        if torch.is_tensor(indices):
            indices = indices.cpu().numpy()
        return self._loader_batch(indices, erasing, generator)

    def _loader_batch(self, indices: np.ndarray, erasing: bool, generator: torch.Generator) -> torch.Tensor:
        from lf2.data.images import load_rgb
        from lf2.data.transforms import build_train_transform

        key = ("pil", erasing)
        if key not in self._augment:
            self._augment[key] = build_train_transform(
                self.height, self.width, pad=self.pad, flip=self.flip,
                random_erasing=self.random_erasing if erasing else 0.0,
            )
        transform = self._augment[key]
        # torchvision's per-image transforms draw from torch's global RNG: seed it from our
        # generator so this path is reproducible too.
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device).item())
        state = torch.get_rng_state()
        torch.manual_seed(seed)
        try:
            imgs = [transform(load_rgb(self.paths[i])) for i in indices]
        finally:
            torch.set_rng_state(state)
        return torch.stack(imgs).to(self.device, non_blocking=True)

    def eval_batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        """Normalised, un-augmented batches in path order (for feature extraction)."""
        if self._cache is not None:
            yield from self._cache.eval_batches(batch_size)
            return
        from lf2.eval.features import iter_eval_batches

        for batch in iter_eval_batches(self.paths, self.height, self.width, batch_size, workers=self.workers):
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            yield x.to(self.device, non_blocking=True)
