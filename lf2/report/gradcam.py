"""Fig. 4: Grad-CAM of target query images, Direct transfer / Baseline / LF² (global, fused).

Re-ID has no class score, so the score is the squared L2 norm of the pooled feature of
the visualised map A (B,C,H,W): s = ||pool(A)||². Grad-CAM then weighs channel c by the
spatial mean of ds/dA_c and keeps ReLU(sum_c w_c A_c). With average pooling this is
ReLU(sum_c g_c A_c(h, w)) up to a constant, g = pool(A): where the image's own embedding
is expressed. Maps are computed on:

- the final ResNet map of the source model (Direct transfer, student) or the teacher
  (Baseline, LF² global),
- the fused maps Phi^{P_j} = Z^{P_j} ⊗ Phi^{P_0} of LF² (``FusionModule.fuse_map``), with
  Z^{P_j} from the STUDENT's pooled part j and Phi^{P_0} the TEACHER's map: "g+u" (j = 1,
  upper) and "g+l" (j = 2, lower), as in the paper.

Each map is min-max scaled to [0, 1] per image and overlaid on the input's grey levels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lf2.errors import LF2Error
from lf2.report.plot import (
    figure_checkpoint,
    figure_device,
    load_images,
    new_figure,
    target_manifest,
    to_input,
)
from lf2.settings import input_settings


def grad_cam(activation: Any, pool: Callable[[Any], Any]) -> Any:
    """Grad-CAM (B, H, W) of ``activation`` (B,C,H,W) for s = ||pool(A)||².

    Min-max scaled to [0, 1] per image, as the reference Grad-CAM code does (a constant map
    becomes all zeros)."""
    import torch

    a = activation.detach().float().requires_grad_(True)
    with torch.enable_grad():
        score = pool(a).pow(2).sum()
        (grad,) = torch.autograd.grad(score, a)
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * a.detach()).sum(dim=1))
    flat = cam.flatten(1)
    low = flat.amin(dim=1)[:, None, None]
    span = (flat.amax(dim=1) - flat.amin(dim=1)).clamp_min(1e-12)[:, None, None]
    return (cam - low) / span


def global_cams(model: Any, x: Any) -> Any:
    """Grad-CAM of a model's final feature map (B, H', W')."""
    import torch

    with torch.no_grad():
        fmap = model.feature_map(x)
    return grad_cam(fmap, model.pool)


def fused_cams(student: Any, teacher: Any, fusion: Any, x: Any) -> list[Any]:
    """Grad-CAMs of the K fused maps Z^{P_j}(student part j) ⊗ teacher map, K x (B, H', W')."""
    import torch

    with torch.no_grad():
        parts = student.part_features(student.feature_map(x))
        tmap = teacher.feature_map(x)
        if len(parts) != len(fusion):
            raise LF2Error(f"the Fusion Module has {len(fusion)} parts, the student {len(parts)}")
        fused = [fm.fuse_map(p, tmap) for fm, p in zip(fusion, parts, strict=True)]
    return [grad_cam(f, teacher.pool) for f in fused]


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """uint8 image (H, W, 3) + cam (h, w) in [0, 1] -> float RGB (H, W, 3) in [0, 1].

    The cam (bilinearly upsampled, jet colours) is blended over the image's grey levels, so
    that the heat colours are not confused with the clothes' colours."""
    import torch
    from matplotlib import colormaps

    h, w = image.shape[:2]
    up = torch.nn.functional.interpolate(
        torch.as_tensor(cam, dtype=torch.float32)[None, None], size=(h, w), mode="bilinear",
        align_corners=False,
    )[0, 0].clamp(0, 1).numpy()
    heat = colormaps["jet"](up)[..., :3]
    grey = (image.astype(np.float64) / 255.0) @ np.array([0.299, 0.587, 0.114])
    return (1 - alpha) * grey[..., None] + alpha * heat


@dataclass
class CamGroup:
    """The images of one direction and, per column title, one cam (h, w) per image."""

    direction: str
    images: np.ndarray  # (N, H, W, 3) uint8
    captions: list[str]  # one per image
    columns: dict[str, list[np.ndarray]] = field(default_factory=dict)


def plot_gradcam(groups: list[CamGroup], note: str = "") -> Any:
    """Rows = images (grouped by direction), columns = input then one column per map."""
    if not groups or not any(len(g.images) for g in groups):
        raise LF2Error("no images to draw Grad-CAMs for")
    titles = ["input", *groups[0].columns]
    nrows = sum(len(g.images) for g in groups)
    h, w = groups[0].images.shape[1:3]
    panel_w = 1.1
    fig, axes = new_figure(nrows, len(titles), panel=(panel_w, panel_w * h / w + 0.25))
    r = 0
    for g in groups:
        for i, img in enumerate(g.images):
            cells = [img.astype(np.float64) / 255.0] + [overlay(img, g.columns[t][i]) for t in titles[1:]]
            for c, cell in enumerate(cells):
                ax = axes[r, c]
                ax.imshow(cell)
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0:
                    ax.set_title(titles[c], fontsize=7)
            axes[r, 0].set_ylabel(f"{g.direction}\n{g.captions[i]}", fontsize=7)
            r += 1
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    bar = fig.colorbar(ScalarMappable(Normalize(0, 1), colormaps["jet"]), ax=axes[:, -1].tolist(),
                       shrink=0.3, pad=0.02)
    bar.set_label("Grad-CAM (min-max scaled per image)", fontsize=7)
    bar.ax.tick_params(labelsize=6)
    fig.suptitle("Grad-CAM on target query images (score: ||pooled feature||²)"
                 + (f"\n{note}" if note else ""), fontsize=9)
    return fig


def cam_columns(
    models: list[tuple[str, Any]], fused: tuple[str, Any, Any, Any], x: Any
) -> dict[str, list[np.ndarray]]:
    """The Fig. 4 columns for a batch ``x``: one global map per ``(title, model)`` (DT,
    Baseline, LF² teacher), then ``fused = (prefix, teacher, student, fusion)`` per part."""
    cols = {title: global_cams(model, x) for title, model in models}
    prefix, teacher, student, fusion = fused
    k = len(fusion)
    names = {0: "g+u\n(fused upper)", 1: "g+l\n(fused lower)"} if k == 2 else {
        j: f"g+p{j + 1}\n(fused part {j + 1})" for j in range(k)}
    for j, cam in enumerate(fused_cams(student, teacher, fusion, x)):
        cols[f"{prefix} {names[j]}"] = cam
    return {t: [c.cpu().numpy() for c in cams] for t, cams in cols.items()}


def select_queries(pids: np.ndarray, num: int, seed: int) -> np.ndarray:
    """Indices of ``num`` query images of distinct identities (first image of each), seeded."""
    valid = np.flatnonzero(pids > 0)
    if valid.size == 0:
        raise LF2Error("the target query split has no identities to draw Grad-CAMs for")
    ids = np.unique(pids[valid])
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(ids, size=min(num, ids.size), replace=False))
    return np.asarray([np.flatnonzero(pids == pid)[0] for pid in chosen], dtype=np.int64)


def gradcam_figure(
    params: dict,
    *,
    num_images: int = 3,
    max_directions: int = 2,
    device: str | None = None,
) -> Any:
    """Fig. 4 for the first ``max_directions`` directions, ``num_images`` queries each.

    Columns: a global map per :func:`lf2.config.figure_rows` row (teacher weights where the
    row fine-tunes), then the fused maps of the first figure row whose variant uses FM.
    """
    from lf2.config import figure_rows, row_spec
    from lf2.train.checkpoint import load_fusion, load_model
    from lf2.train.variants import VARIANTS

    dev = figure_device(params, device)
    inp = input_settings(params)
    h, w = inp.height, inp.width
    seed = int(params.get("seed", 0))
    shown = [(row, VARIANTS[row_spec(params, row)["variant"]]) for row in figure_rows(params)]
    fm_rows = [row for row, v in shown if v.uses_fusion]
    if not fm_rows:
        raise LF2Error("no figure row uses the Fusion Module; Grad-CAM needs an LF² row")
    lf2_row, lf2_cls = fm_rows[0], VARIANTS[row_spec(params, fm_rows[0])["variant"]]
    groups: list[CamGroup] = []
    modes: set[str] = set()
    for d in params["directions"][:max_directions]:
        name = d["name"]
        manifest = target_manifest(params, d)
        query = manifest.split("query")
        idx = select_queries(query["pid"].to_numpy(), num_images, seed)
        images = load_images([manifest.resolve(p) for p in query["path"].to_numpy()[idx]], h, w)
        lf2_path = figure_checkpoint(params, name, lf2_row)
        teacher, ckpt = load_model(lf2_path, which="teacher", device=dev)
        fusion = load_fusion(ckpt)
        if fusion is None:
            raise LF2Error(f"checkpoint {lf2_path} has no Fusion Module weights; expected an LF² row")
        fusion = fusion.to(dev).eval()
        student, _ = load_model(lf2_path, which="student", device=dev)
        models = []
        for row, v in shown:
            if row == lf2_row:
                models.append((f"{v.short_label}\n(teacher, global)", teacher))
                continue
            which, what = ("teacher", "teacher") if v.trains else ("auto", "source model")
            model, _ = load_model(figure_checkpoint(params, name, row), which=which, device=dev)
            models.append((f"{v.short_label}\n({what})", model))
        modes.add(str(getattr(fusion, "mode", "?")))
        x = to_input(images, dev)
        captions = [f"query pid {int(p)}" for p in query["pid"].to_numpy()[idx]]
        groups.append(CamGroup(name, images, captions,
                               cam_columns(models, (lf2_cls.short_label, teacher, student, fusion), x)))
    note = f"LF² = row {lf2_row}; FM mode: {', '.join(sorted(modes))}"
    if len(params["directions"]) > max_directions:
        note += f"; first {max_directions} directions only"
    return plot_gradcam(groups, note)
