"""Writing: JPEG encoding, the rendered dataset tree (Market-1501 layout) and contact sheets."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from lf2.data.synthetic.plan import SPLIT_DIRS, ImageSpec, SyntheticConfig, plan_dataset
from lf2.data.synthetic.render import Renderer

JPEG_QUALITY = 95


def encode_jpeg(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0,
                                 optimize=False)
    return buf.getvalue()


def _render_chunk(args: tuple[SyntheticConfig, Sequence[ImageSpec], str]) -> int:
    cfg, specs, out_dir = args
    renderer = Renderer(cfg)
    for spec in specs:
        with open(os.path.join(out_dir, spec.relpath), "wb") as fh:
            fh.write(encode_jpeg(renderer.render(spec)))
    return len(specs)


def render_dataset(cfg: SyntheticConfig, images_dir: Path, *, workers: int = 1) -> list[ImageSpec]:
    """Write every planned image under ``images_dir`` in the Market-1501 layout.

    Files depend only on ``cfg`` (not on ``workers``): each image has its own seed.
    """
    specs = plan_dataset(cfg)
    images_dir = Path(images_dir)
    for sub in SPLIT_DIRS.values():
        (images_dir / sub).mkdir(parents=True, exist_ok=True)
    if workers <= 1 or len(specs) < 512:
        _render_chunk((cfg, specs, str(images_dir)))
    else:
        from concurrent.futures import ProcessPoolExecutor

        chunks = [specs[i : i + 256] for i in range(0, len(specs), 256)]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(_render_chunk, [(cfg, c, str(images_dir)) for c in chunks]))
    return specs


def contact_sheet(cfg: SyntheticConfig, path: Path, *, rows: int = 8, cols: int = 8,
                  zoom: int | None = None) -> Path:
    """A PNG grid: ``rows`` train identities (twins adjacent) x ``cols`` of their images."""
    from lf2.io import atomic_path

    renderer = Renderer(cfg)
    specs = [s for s in plan_dataset(cfg) if s.split == "train"]
    by_pid: dict[int, list[ImageSpec]] = {}
    for s in specs:
        by_pid.setdefault(s.pid, []).append(s)
    pids = sorted(by_pid)[:rows]
    h, w = cfg.height, cfg.width
    zoom = zoom or max(1, 128 // h)
    gap = 2
    sheet = np.full(((h + gap) * len(pids), (w + gap) * cols, 3), 255, np.uint8)
    for i, pid in enumerate(pids):
        for j, spec in enumerate(by_pid[pid][:cols]):
            sheet[i * (h + gap) : i * (h + gap) + h, j * (w + gap) : j * (w + gap) + w] = renderer.render(spec)
    im = Image.fromarray(sheet)
    if zoom > 1:
        im = im.resize((im.width * zoom, im.height * zoom), Image.Resampling.NEAREST)
    with atomic_path(path, suffix=".png") as tmp:
        im.save(tmp, format="PNG")
    return Path(path)
