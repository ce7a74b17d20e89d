"""The paper-style figures of a run, drawn from its artifacts only.

``draw_figures`` writes ``<out>/<name>.png`` and ``<out>/<name>.pdf`` for each of
:data:`FIGURES`. Artifact-based figures (``cmc``, ``training_curves``,
``cluster_consistency``) read metrics JSON and ``epochs.jsonl``; model-based ones
(``gradcam``, ``tsne``) load the checkpoints and the target dataset. Matplotlib is used
through its object API (``matplotlib.figure.Figure``): no pyplot, no global backend state.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lf2.errors import LF2Error
from lf2.io import atomic_write_bytes

FIGURES = ("gradcam", "tsne", "cluster_consistency", "cmc", "training_curves")
FORMATS = ("png", "pdf")
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
    out = Path(out_dir)
    paths = []
    for fmt in FORMATS:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=DPI)
        path = out / f"{name}.{fmt}"
        atomic_write_bytes(path, buf.getvalue())
        paths.append(path)
    return paths


def row_label(params: dict, row: str) -> str:
    from lf2.config import row_spec

    return str(row_spec(params, row)["display_name"])


def run_dir(params: dict, direction: str, row: str, runs_dir: str | os.PathLike[str] | None = None) -> Path:
    return Path(runs_dir if runs_dir is not None else params["paths"]["runs"]) / direction / row


def checkpoint_path(params: dict, direction: str, row: str,
                    runs_dir: str | os.PathLike[str] | None = None) -> Path:
    """``model.pt`` of a row; Direct transfer is the pre-training checkpoint."""
    return run_dir(params, direction, "pretrain" if row == "direct" else row, runs_dir) / "model.pt"


def target_manifest(params: dict, direction: dict, data_dir: str | os.PathLike[str] | None = None):
    """The prepared target dataset of a direction (``<paths.data>/<target>``)."""
    from lf2.data.manifest import load_manifest

    return load_manifest(Path(data_dir if data_dir is not None else params["paths"]["data"])
                         / direction["target"])


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


def draw_figures(
    params: dict,
    out_dir: str | os.PathLike[str],
    which: Sequence[str] | None = None,
    *,
    runs_dir: str | os.PathLike[str] | None = None,
    metrics_dir: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    num_images: int = 3,
    tsne_ids: int = 20,
    device: str | None = None,
) -> list[Path]:
    """Draw the requested figures (all of :data:`FIGURES` by default); return written paths."""
    names = list(which) if which else list(FIGURES)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise LF2Error(f"unknown figure(s) {unknown}; expected some of {', '.join(FIGURES)}")
    results = Path(params["paths"]["results"])
    mdir = Path(metrics_dir) if metrics_dir is not None else results / "metrics"
    written: list[Path] = []
    for name in names:
        if name == "cmc":
            from lf2.report.curves import cmc_figure

            fig = cmc_figure(params, mdir)
        elif name == "training_curves":
            from lf2.report.curves import training_curves_figure

            fig = training_curves_figure(params, runs_dir)
        elif name == "cluster_consistency":
            from lf2.report.curves import cluster_consistency_figure

            fig = cluster_consistency_figure(params, runs_dir)
        elif name == "tsne":
            from lf2.report.tsne import tsne_figure

            fig = tsne_figure(params, runs_dir=runs_dir, data_dir=data_dir,
                              num_ids=tsne_ids, device=device)
        else:
            from lf2.report.gradcam import gradcam_figure

            fig = gradcam_figure(params, runs_dir=runs_dir, data_dir=data_dir,
                                 num_images=num_images, device=device)
        written += save_figure(fig, out_dir, name)
    return written
