"""Drawing helpers every figure module shares (no figure of its own).

Matplotlib is used through its object API (``matplotlib.figure.Figure``): no pyplot, no
global backend state. Figure modules (curves, gradcam, tsne) import from here;
:mod:`lf2.report.figures` dispatches to them, so no module of the package imports one
that imports it back.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lf2 import layout
from lf2.io import atomic_write_bytes

DPI = 150


def new_figure(
    nrows: int, ncols: int, *, panel: tuple[float, float] = (3.6, 2.8), **subplot_kw: Any
) -> tuple[Any, np.ndarray]:
    """A Figure with an (nrows, ncols) array of axes, each about ``panel`` inches."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return fig, axes


def label_colours(labels: Sequence[str]) -> dict[str, Any]:
    """One fixed colour per label (tab10 order), so a row keeps its colour in every panel."""
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {label: cmap(i % 10) for i, label in enumerate(dict.fromkeys(labels))}


def shared_legend(fig: Any, colours: dict[str, Any], title: str | None = None) -> None:
    """One legend for the whole figure, below the panels."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, marker=".", label=lab) for lab, c in colours.items()]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6),
               title=title, fontsize=8)


def integer_epochs(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def save_figure(fig: Any, out_dir: str | os.PathLike[str], name: str) -> list[Path]:
    """Write ``name.png`` and ``name.pdf`` into ``out_dir``, each atomically."""
    paths = []
    for fmt in layout.FIGURE_FORMATS:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=DPI)
        path = layout.figure_path(out_dir, name, fmt)
        atomic_write_bytes(path, buf.getvalue())
        paths.append(path)
    return paths


def row_label(params: dict, row: str) -> str:
    from lf2.config import row_spec

    return str(row_spec(params, row)["display_name"])


def target_manifest(params: dict, direction: dict):
    """The prepared target dataset of a direction (:func:`lf2.layout.data_dir`)."""
    from lf2.data.manifest import load_manifest

    return load_manifest(layout.data_dir(params, direction["target"]))


def figure_checkpoint(params: dict, direction: str, row: str) -> str:
    """The checkpoint a figure shows for a row: the reference seed's (the first replicate)."""
    return layout.checkpoint_path(params, direction, row, layout.reference_seed(params))


def figure_epochs(params: dict, direction: str, row: str) -> str:
    """The epoch log a figure shows for a row (reference seed)."""
    return layout.epochs_path(params, direction, row, layout.reference_seed(params))


def load_images(paths: Sequence[str | os.PathLike[str]], height: int, width: int) -> np.ndarray:
    """uint8 (N, H, W, 3), resized as at test time (``lf2.data.images.decode_all``)."""
    from lf2.data.images import decode_all

    return decode_all(list(paths), height, width)


def to_input(images: np.ndarray, device: Any = "cpu") -> Any:
    """uint8 (N, H, W, 3) -> normalised float (N, 3, H, W) tensor, the test transform's output."""
    import torch

    from lf2.data.batch_transforms import normalize

    t = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(device)
    return normalize(t)


def figure_device(params: dict, device: str | None = None) -> Any:
    from lf2.train.runtime import resolve_device

    return resolve_device(device or params.get("device", "auto"))
