"""The paper-style figures of a run, drawn from its artifacts only.

``draw_figures`` writes ``<out>/<name>.png`` and ``<out>/<name>.pdf`` for each of
:data:`FIGURES`. Artifact-based figures (``cmc``, ``training_curves``,
``cluster_consistency``) read metrics JSON and ``epochs.jsonl``; model-based ones
(``gradcam``, ``tsne``) load the checkpoints and the target dataset. Every path comes from
:mod:`lf2.layout`; with several seeds a figure shows the first one's runs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from lf2.errors import LF2Error
from lf2.layout import FIGURE_KINDS as FIGURES
from lf2.report.plot import save_figure

__all__ = ["FIGURES", "draw_figures", "save_figure"]


def draw_figures(
    params: dict,
    out_dir: str | os.PathLike[str],
    which: Sequence[str] | None = None,
    *,
    num_images: int = 3,
    tsne_ids: int = 20,
    device: str | None = None,
) -> list[Path]:
    """Draw the requested figures (all of :data:`FIGURES` by default); return written paths."""
    names = list(which) if which else list(FIGURES)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise LF2Error(f"unknown figure(s) {unknown}; expected some of {', '.join(FIGURES)}")
    written: list[Path] = []
    for name in names:
        if name == "cmc":
            from lf2.report.curves import cmc_figure

            fig = cmc_figure(params)
        elif name == "training_curves":
            from lf2.report.curves import training_curves_figure

            fig = training_curves_figure(params)
        elif name == "cluster_consistency":
            from lf2.report.curves import cluster_consistency_figure

            fig = cluster_consistency_figure(params)
        elif name == "intervals":
            from lf2.report.intervals import intervals_figure

            fig = intervals_figure(params)
        elif name == "tsne":
            from lf2.report.tsne import tsne_figure

            fig = tsne_figure(params, num_ids=tsne_ids, device=device)
        else:
            from lf2.report.gradcam import gradcam_figure

            fig = gradcam_figure(params, num_images=num_images, device=device)
        written += save_figure(fig, out_dir, name)
    return written
