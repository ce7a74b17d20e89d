"""Fig. 5: t-SNE of target test features for ~20 identities, Direct transfer / Baseline / LF².

Features are the global pooled feature phi^{P_0} of the model used at test time (the
teacher after fine-tuning, the source model for Direct transfer), summed with the mirrored
image's and L2-normalised, as the paper's Fig. 5 reduces "the global features". The same identities
and images are used for every method of a direction. Each panel also gives the cosine
silhouette score of the features themselves (not of the 2-D embedding): a number, from
the artifacts, that says how compact the identities are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lf2.errors import LF2Error
from lf2.report.plot import (
    figure_checkpoint,
    figure_device,
    load_images,
    new_figure,
    row_label,
    target_manifest,
    to_input,
)
from lf2.settings import evaluate_settings, input_settings, model_settings

MAX_IMAGES_PER_ID = 16


@dataclass
class TsnePanel:
    """One panel: 2-D points, their identity labels, a title and an optional score."""

    title: str
    points: np.ndarray  # (N, 2)
    labels: np.ndarray  # (N,)
    silhouette: float | None = None


def select_identities(
    pids: np.ndarray, num_ids: int, seed: int, min_images: int = 2
) -> np.ndarray:
    """Up to ``num_ids`` identities (sorted), drawn with ``seed`` among those with at least
    ``min_images`` images; distractors/junk (pid <= 0) are never drawn."""
    ids, counts = np.unique(pids[pids > 0], return_counts=True)
    pool = ids[counts >= min_images]
    if pool.size == 0:
        raise LF2Error(f"no identity has {min_images} or more test images to draw a t-SNE from")
    rng = np.random.default_rng(seed)
    take = rng.choice(pool, size=min(num_ids, pool.size), replace=False)
    return np.sort(take)


def select_images(pids: np.ndarray, ids: np.ndarray, per_id: int = MAX_IMAGES_PER_ID) -> np.ndarray:
    """Indices of the first ``per_id`` images of each chosen identity, in data order."""
    keep: list[int] = []
    for pid in ids:
        keep += np.flatnonzero(pids == pid)[:per_id].tolist()
    return np.sort(np.asarray(keep, dtype=np.int64))


def global_features(model: Any, images: np.ndarray, *, flip: bool = True, batch_size: int = 128,
                    device: Any = "cpu") -> np.ndarray:
    """L2-normalised pooled global features (N, C) of uint8 images (N, H, W, 3).

    Runs :func:`lf2.eval.features.extract_features` (flip sum, bf16 autocast on CUDA only)
    on a view of the model that returns pool(feature_map(x)) instead of the full embedding.
    """
    import torch

    from lf2.eval.features import extract_features

    class GlobalFeature(torch.nn.Module):
        def __init__(self, net: Any) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net.pool(self.net.feature_map(x))

    wrapper = GlobalFeature(model).to(device).eval()
    batches = (to_input(images[s:s + batch_size], device) for s in range(0, len(images), batch_size))
    return extract_features(wrapper, batches, flip=flip, device=device, normalize=True,
                            progress=False)


def embed(features: np.ndarray, seed: int) -> np.ndarray:
    """2-D t-SNE (sklearn), perplexity adapted to small sets."""
    from sklearn.manifold import TSNE

    n = features.shape[0]
    if n < 4:
        raise LF2Error(f"t-SNE needs at least 4 images, got {n}")
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3.0)))
    # exact gradients for the few hundred points of a figure: Barnes-Hut's per-iteration
    # overhead (and its OpenMP threads) dominates at this size
    method = "exact" if n <= 500 else "barnes_hut"
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                method=method)
    return tsne.fit_transform(features.astype(np.float64))


def silhouette(features: np.ndarray, labels: np.ndarray) -> float | None:
    from sklearn.metrics import silhouette_score

    if len(np.unique(labels)) < 2 or len(labels) <= len(np.unique(labels)):
        return None
    return float(silhouette_score(features, labels, metric="cosine"))


def plot_tsne(grid: dict[str, list[TsnePanel]]) -> Any:
    """Rows = directions, columns = methods; colour = identity (same colours per row)."""
    from matplotlib import colormaps

    if not grid:
        raise LF2Error("nothing to plot for the t-SNE figure")
    ncols = max(len(p) for p in grid.values())
    fig, axes = new_figure(len(grid), ncols, panel=(3.6, 3.4))
    cmap = colormaps["tab20"]
    for i, (direction, panels) in enumerate(grid.items()):
        for j in range(ncols):
            ax = axes[i, j]
            if j >= len(panels):
                ax.axis("off")
                continue
            p = panels[j]
            ids = np.unique(p.labels)
            for k, pid in enumerate(ids):
                sel = p.labels == pid
                # strong tab20 shades first (0, 2, ..., 18), then the light ones
                shade = (2 * k) % 20 + (k % 20) // 10
                ax.scatter(p.points[sel, 0], p.points[sel, 1], s=14, color=cmap(shade),
                           marker="os^D"[(k // 20) % 4], linewidths=0)
            title = f"{direction}: {p.title}"
            if p.silhouette is not None:
                title += f"\nsilhouette (cosine) = {p.silhouette:.2f}"
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("t-SNE 1")
            ax.set_ylabel("t-SNE 2")
            ax.set_xticks([])
            ax.set_yticks([])
    n_ids = max(len(np.unique(p.labels)) for ps in grid.values() for p in ps)
    fig.suptitle(f"t-SNE of global features of {n_ids} target test identities "
                 "(colour = identity)")
    return fig


def tsne_figure(
    params: dict,
    *,
    num_ids: int = 20,
    device: str | None = None,
) -> Any:
    """The :func:`lf2.config.figure_rows` (Direct transfer, Baseline, LF²) for every direction."""
    from lf2.config import figure_rows
    from lf2.train.checkpoint import load_model

    dev = figure_device(params, device)
    inp, m, ev = input_settings(params), model_settings(params), evaluate_settings(params)
    h, w = inp.height, inp.width
    seed = int(params.get("seed", 0))
    rows = figure_rows(params)
    grid: dict[str, list[TsnePanel]] = {}
    for d in params["directions"]:
        manifest = target_manifest(params, d)
        table = manifest.table[manifest.table["split"].isin(["query", "gallery"])]
        pids = table["pid"].to_numpy()
        ids = select_identities(pids, num_ids, seed)
        idx = select_images(pids, ids)
        images = load_images([manifest.resolve(p) for p in table["path"].to_numpy()[idx]], h, w)
        labels = pids[idx]
        panels = []
        for row in rows:
            model, _ = load_model(figure_checkpoint(params, d["name"], row), which="auto")
            feats = global_features(model, images, flip=bool(m.flip_test), batch_size=int(ev.batch_size),
                                    device=dev)
            panels.append(TsnePanel(row_label(params, row), embed(feats, seed), labels,
                                    silhouette(feats, labels)))
        grid[d["name"]] = panels
    return plot_tsne(grid)
