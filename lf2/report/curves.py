"""Figures drawn from logs and metrics: CMC curves, training losses, cluster consistency.

Each figure has a ``plot_*`` function taking plain data (testable with hand-made numbers)
and a ``*_figure(params, ...)`` function that reads the run's artifacts and calls it.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from lf2 import layout
from lf2.config import trained_rows
from lf2.errors import LF2Error
from lf2.report.plot import (
    figure_epochs,
    integer_epochs,
    label_colours,
    new_figure,
    row_label,
    shared_legend,
)
from lf2.settings import model_settings

#: finetune loss panels: (key in ``losses``, title); lists (per part) are summed over parts
FINETUNE_LOSSES = (
    ("total", "total loss"),
    ("cls", r"$L^t_{cls}$ (global CE)"),
    ("tri", r"$L^t_{tri}$ (global triplet)"),
    ("part_tri", r"$\sum_j L^{P_j}_{tri}$ (part softmax-triplet)"),
    ("fm", r"$\sum_j$ FM loss (fused features)"),
)
PRETRAIN_LOSSES = (("total", "total"), ("cls", r"$L_{cls}$"), ("tri", r"$L_{tri}$"))


# ----------------------------------------------------------------------------- reading


def load_epochs(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Records of an ``epochs.jsonl``, sorted by (stage, epoch).

    A resumed run may log an epoch twice; the LAST record of each (stage, epoch) wins.
    """
    p = Path(path)
    if not p.is_file():
        raise LF2Error(f"epoch log {p} does not exist; it is written by `lf2 pretrain` / `lf2 finetune`")
    by_key: dict[tuple[str, int], dict[str, Any]] = {}
    with open(p, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LF2Error(f"{p}, line {lineno}: not valid JSON ({exc.msg})") from exc
            if not isinstance(rec, dict) or not isinstance(rec.get("epoch"), int):
                raise LF2Error(f"{p}, line {lineno}: expected an object with an integer 'epoch'")
            by_key[(str(rec.get("stage", "")), rec["epoch"])] = rec
    return [by_key[k] for k in sorted(by_key)]


def _loss_value(rec: dict[str, Any], key: str) -> float:
    v = rec.get("losses", {}).get(key)
    if v is None:
        return math.nan
    if isinstance(v, list):
        return float(sum(v)) if v else math.nan
    return float(v)


# ----------------------------------------------------------------------------- CMC


def all_row_colours(params: dict) -> dict[str, Any]:
    """Colours keyed by display name over ALL Table II rows: the same in every figure."""
    from lf2.config import rows_for

    return label_colours([row_label(params, r) for r in rows_for(params)])


def plot_cmc(
    curves: dict[str, dict[str, list[float]]],
    max_rank: int = 50,
    colours: dict[str, Any] | None = None,
) -> Any:
    """One panel per direction; one line per row. ``curves[direction][label]`` = CMC fractions."""
    if not curves:
        raise LF2Error("no CMC curves to plot")
    colours = colours or label_colours([lab for rows in curves.values() for lab in rows])
    fig, axes = new_figure(1, len(curves), panel=(4.8, 3.6))
    for ax, (direction, rows) in zip(axes[0], curves.items(), strict=True):
        for label, cmc in rows.items():
            y = [100.0 * v for v in cmc[:max_rank]]
            x = list(range(1, len(y) + 1))
            ax.plot(x, y, marker="o", markersize=2.5, linewidth=1.2, color=colours[label],
                    label=f"{label} (R1 {y[0]:.1f})")
        ax.set_title(f"CMC, {direction}")
        ax.set_xlabel("rank")
        ax.set_ylabel("matching rate (%)")
        ax.set_xlim(1, max_rank)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("CMC curves on the target test split (last-epoch checkpoints)")
    return fig


def cmc_figure(params: dict) -> Any:
    """CMC of every row from the reference seed's metrics files."""
    from lf2.config import rows_for
    from lf2.report.run_metrics import load_metrics

    seed = layout.reference_seed(params)
    curves: dict[str, dict[str, list[float]]] = {}
    for d in params["directions"]:
        curves[d["name"]] = {}
        for row in rows_for(params):
            path = layout.metrics_path(params, d["name"], row, seed)
            cmc = load_metrics(path).get("cmc")
            if not isinstance(cmc, list) or not cmc:
                raise LF2Error(f"metrics file {path}: key 'cmc' must be a non-empty list of fractions")
            curves[d["name"]][row_label(params, row)] = [float(v) for v in cmc]
    return plot_cmc(curves, colours=all_row_colours(params))


# ----------------------------------------------------------------------------- training curves


def plot_training_curves(
    finetune: dict[str, dict[str, list[dict[str, Any]]]],
    pretrain: dict[str, list[dict[str, Any]]] | None = None,
    colours: dict[str, Any] | None = None,
) -> Any:
    """Rows of panels per direction: pre-training losses, then one panel per fine-tuning loss.

    ``finetune[direction][label]`` and ``pretrain[direction]`` are lists of epoch records.
    A test-mAP panel is added when any fine-tuning record carries an ``eval`` entry
    (monitoring only: never used to pick a model).
    """
    pretrain = pretrain or {}
    directions = list(finetune) or list(pretrain)
    if not directions:
        raise LF2Error("no epoch logs to plot")
    has_eval = any(r.get("eval") for rows in finetune.values() for recs in rows.values() for r in recs)
    labels = list(dict.fromkeys(lab for rows in finetune.values() for lab in rows))
    colours = {lab: c for lab, c in (colours or label_colours(labels)).items() if lab in labels}
    ncols = (1 if pretrain else 0) + len(FINETUNE_LOSSES) + (1 if has_eval else 0)
    fig, axes = new_figure(len(directions), ncols, panel=(3.4, 2.7))
    for i, direction in enumerate(directions):
        col = 0
        if pretrain:
            ax = axes[i, col]
            recs = pretrain.get(direction, [])
            for key, label in PRETRAIN_LOSSES:
                ax.plot([r["epoch"] for r in recs], [_loss_value(r, key) for r in recs],
                        marker=".", label=label)
            ax.set_title(f"{direction}: source pre-training", fontsize=9)
            ax.legend(fontsize=7)
            col += 1
        for key, title in FINETUNE_LOSSES:
            ax = axes[i, col]
            drawn = False
            for label, recs in finetune.get(direction, {}).items():
                ys = [_loss_value(r, key) for r in recs]
                if all(math.isnan(y) for y in ys):
                    continue  # this row does not train that term
                ax.plot([r["epoch"] for r in recs], ys, marker=".", color=colours[label])
                drawn = True
            ax.set_title(f"{direction}: {title}", fontsize=9)
            if not drawn:
                ax.text(0.5, 0.5, "not trained by any row", ha="center", va="center",
                        transform=ax.transAxes, fontsize=8, color="gray")
            col += 1
        if has_eval:
            ax = axes[i, col]
            for label, recs in finetune.get(direction, {}).items():
                pts = [(r["epoch"], 100.0 * r["eval"]["mAP"]) for r in recs if r.get("eval")]
                if pts:
                    ax.plot(*zip(*pts, strict=True), marker=".", color=colours[label])
            ax.set_title(f"{direction}: test mAP (monitoring only)", fontsize=9)
            ax.set_ylabel("mAP (%)")
        for ax in axes[i]:
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
            integer_epochs(ax)
        for ax in axes[i, : ncols - (1 if has_eval else 0)]:
            ax.set_ylabel("loss (epoch mean)")
    if colours:
        shared_legend(fig, colours, "fine-tuning rows")
    fig.suptitle("Training losses per epoch (epoch means)")
    return fig


def training_curves_figure(params: dict) -> Any:
    finetune: dict[str, dict[str, list[dict[str, Any]]]] = {}
    pretrain: dict[str, list[dict[str, Any]]] = {}
    for d in params["directions"]:
        name = d["name"]
        pre = figure_epochs(params, name, layout.PRETRAIN_ROW)
        pretrain[name] = [r for r in load_epochs(pre) if r.get("stage", "pretrain") == "pretrain"]
        finetune[name] = {}
        for row in trained_rows(params):
            log = figure_epochs(params, name, row)
            recs = [r for r in load_epochs(log) if r.get("stage", "finetune") == "finetune"]
            finetune[name][row_label(params, row)] = recs
    return plot_training_curves(finetune, pretrain, colours=all_row_colours(params))


# ----------------------------------------------------------------------------- cluster consistency


def _set_names(recs: list[dict[str, Any]]) -> list[str]:
    for r in recs:
        if r.get("clusters"):
            return [str(c.get("set", f"set{j}")) for j, c in enumerate(r["clusters"])]
    return []


def plot_cluster_consistency(
    logs: dict[str, dict[str, list[dict[str, Any]]]], colours: dict[str, Any] | None = None
) -> Any:
    """Fig. 6 as numbers: per epoch, ARI between the K+1 pseudo-label sets and their purity.

    ``logs[direction][label]`` = fine-tuning records with ``agreement`` (``ari_i_j``) and
    ``clusters`` (one entry per set, with ``purity``). Columns: one per label pair
    (ŷ_i, ŷ_j), then one per set j (purity of ŷ_j against the true target identities).
    """
    pairs: list[str] = []
    nsets = 0
    for rows in logs.values():
        for recs in rows.values():
            for r in recs:
                for k in (r.get("agreement") or {}):
                    if k not in pairs:
                        pairs.append(k)
                nsets = max(nsets, len(r.get("clusters") or []))
    if not pairs and not nsets:
        raise LF2Error("no clustering records (agreement / clusters) in the epoch logs to plot")
    pairs.sort()
    ncols = len(pairs) + nsets
    labels = list(dict.fromkeys(lab for rows in logs.values() for lab in rows))
    colours = {lab: c for lab, c in (colours or label_colours(labels)).items() if lab in labels}
    fig, axes = new_figure(len(logs), ncols, panel=(3.2, 2.7))
    for i, (direction, rows) in enumerate(logs.items()):
        for c, key in enumerate(pairs):
            ax = axes[i, c]
            a, b = key.removeprefix("ari_").split("_")
            for label, recs in rows.items():
                pts = [(r["epoch"], r["agreement"][key]) for r in recs
                       if key in (r.get("agreement") or {})]
                if pts:
                    ax.plot(*zip(*pts, strict=True), marker=".", color=colours[label])
            ax.set_title(rf"{direction}: ARI($\hat y_{a}$, $\hat y_{b}$)", fontsize=9)
            ax.set_ylabel("adjusted Rand index")
            ax.set_ylim(-0.05, 1.05)
        for j in range(nsets):
            ax = axes[i, len(pairs) + j]
            names = set()
            for label, recs in rows.items():
                sets = _set_names(recs)
                if j < len(sets):
                    names.add(sets[j])
                pts = [(r["epoch"], r["clusters"][j].get("purity")) for r in recs
                       if len(r.get("clusters") or []) > j and r["clusters"][j].get("purity") is not None]
                if pts:
                    ax.plot(*zip(*pts, strict=True), marker=".", color=colours[label])
            ax.set_title(rf"{direction}: purity of $\hat y_{j}$ ({' / '.join(sorted(names))})",
                         fontsize=9)
            ax.set_ylabel("pseudo-label purity")
            ax.set_ylim(-0.05, 1.05)
        for ax in axes[i]:
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
            integer_epochs(ax)
    shared_legend(fig, colours, "rows with K+1 pseudo-label sets")
    fig.suptitle("Cluster consistency during fine-tuning: agreement between pseudo-label sets "
                 "and their purity")
    return fig


def cluster_consistency_figure(params: dict) -> Any:
    """From the LF² rows and LF² w/o FM (the rows with K+1 pseudo-label sets)."""
    from lf2.config import row_spec
    from lf2.train.variants import make_variant

    k = model_settings(params).num_parts
    rows = [r for r in trained_rows(params) if make_variant(row_spec(params, r)["variant"], k).num_sets > 1]
    logs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for d in params["directions"]:
        logs[d["name"]] = {}
        for row in rows:
            log = figure_epochs(params, d["name"], row)
            recs = [r for r in load_epochs(log) if r.get("stage", "finetune") == "finetune"]
            logs[d["name"]][row_label(params, row)] = recs
    return plot_cluster_consistency(logs, colours=all_row_colours(params))
