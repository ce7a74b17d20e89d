"""Image decoding: one loader for every stage, with errors that name the file.

``decode_all`` resizes exactly as :func:`lf2.data.transforms.build_test_transform` does
(PIL bilinear to (H, W), which is what torchvision's ``Resize`` runs on a PIL image), so
the in-memory cache and the per-image loader see the same pixels. Decoding runs on a
thread pool: Pillow releases the GIL while decoding and resizing, and threads keep the
order deterministic without forking a process that may hold torch state.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lf2.errors import DatasetError

log = logging.getLogger(__name__)

RESAMPLE = Image.Resampling.BILINEAR


def load_rgb(path: str | os.PathLike[str]) -> Image.Image:
    """Open, fully decode and convert an image to RGB; DatasetError naming ``path`` if it fails."""
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except FileNotFoundError:
        raise DatasetError(f"{path}: image file not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"{path}: cannot decode image ({exc})") from None


def check_image(path: str | os.PathLike[str]) -> str | None:
    """Decode ``path`` fully; return None if it is a valid image, else the reason."""
    try:
        load_rgb(path)
    except DatasetError as exc:
        return str(exc)
    return None


def resolve_workers(workers: int) -> int:
    """0 or negative: one worker per CPU core this process may use."""
    if workers > 0:
        return workers
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def parallel_map(fn: Callable[[Any], Any], items: Sequence[Any], workers: int) -> list[Any]:
    """``[fn(x) for x in items]`` on a thread pool; results in input order."""
    workers = resolve_workers(workers)
    if workers == 1 or len(items) < 64:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items, chunksize=64))


def _check_chunk(paths: Sequence[str]) -> list[str | None]:
    return [check_image(p) for p in paths]


def find_corrupt(
    paths: Sequence[str | os.PathLike[str]], workers: int = 0, *, chunk: int = 512
) -> list[tuple[int, str]]:
    """Decode every image; return ``(index, reason)`` for those that fail, in input order.

    Large lists are checked on a process pool (``forkserver``: safe even when the caller
    has imported torch); results keep the input order.
    """
    items = [str(p) for p in paths]
    workers = resolve_workers(workers)
    if workers > 1 and len(items) >= 4 * chunk:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
        try:
            with ProcessPoolExecutor(workers, mp_context=mp.get_context("forkserver")) as pool:
                results = [r for part in pool.map(_check_chunk, chunks) for r in part]
        except BrokenProcessPool:  # e.g. a __main__ the workers cannot re-import
            log.warning("image check: process pool failed; checking %d images serially", len(items))
            results = _check_chunk(items)
    else:
        results = _check_chunk(items)
    return [(i, r) for i, r in enumerate(results) if r is not None]


def decode_resized(path: str | os.PathLike[str], height: int, width: int) -> np.ndarray:
    """One image as uint8 (H, W, 3), resized like the transforms."""
    img = load_rgb(path)
    if img.size != (width, height):
        img = img.resize((width, height), RESAMPLE)
    return np.asarray(img, dtype=np.uint8)


def decode_all(
    paths: Sequence[str | os.PathLike[str]], height: int, width: int, workers: int = 0
) -> np.ndarray:
    """Decode and resize every image into one uint8 array (N, H, W, 3), in ``paths`` order."""
    out = np.empty((len(paths), height, width, 3), dtype=np.uint8)

    def fill(i: int) -> None:
        out[i] = decode_resized(paths[i], height, width)

    parallel_map(fill, range(len(paths)), workers)
    return out


class ImageDataset:
    """Map-style dataset over image files: item ``i`` is ``(transform(image_i), i)``.

    Duck-typed for ``torch.utils.data.DataLoader`` (``__len__`` + ``__getitem__``) so
    that importing it does not import torch.
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]], transform: Callable | None = None):
        self.paths = [Path(p) for p in paths]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        img = load_rgb(self.paths[index])
        return (self.transform(img) if self.transform is not None else img), index
