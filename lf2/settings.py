"""Typed, frozen settings built once from validated params: the training loops read
attributes (``settings.lr``), not string keys of nested dicts.

Each class mirrors one section of ``lf2/schema/params.schema.json`` field for field;
``tests/test_settings.py`` fails when a section gains a key its class lacks, so a new key is
a schema entry plus a field, and a typo in a loop is an AttributeError at once instead of a
KeyError deep in a run. Lists become tuples (the settings are immutable).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class ClusteringSettings:
    """``finetune.clustering``: pseudo labels (docs/method.md §4)."""

    method: str
    kmeans_iters: int
    dbscan_eps: float
    dbscan_min_samples: int
    k1: int
    k2: int


@dataclass(frozen=True)
class PretrainSettings:
    """``pretrain``: supervised source training (docs/method.md §3)."""

    epochs: int
    iters_per_epoch: int
    batch_p: int
    batch_k: int
    lr: float
    weight_decay: float
    milestones: tuple[int, ...]
    warmup_epochs: int
    lambda_tri: float
    margin: float
    label_smoothing: float
    target_bn: bool
    global_triplet: str


@dataclass(frozen=True)
class FinetuneSettings:
    """``finetune``: target fine-tuning (docs/method.md §4)."""

    epochs: int
    iters_per_epoch: int
    batch_p: int
    batch_k: int
    lr: float
    weight_decay: float
    alpha: float
    lambda_tri: float
    gamma: float
    fm_loss_weight: float
    margin: float
    label_smoothing: float
    global_triplet: str
    sampling: str
    ema_omega: float
    ema_warmup: bool
    ema_buffers: bool
    teacher_bn: str
    reinit_classifier: bool
    recreate_optimizer: bool
    eval_every: int
    clustering: ClusteringSettings


#: the settings class of each section, and of the sections nested in it
SECTIONS: dict[str, type] = {"pretrain": PretrainSettings, "finetune": FinetuneSettings}
_NESTED: dict[tuple[type, str], type] = {(FinetuneSettings, "clustering"): ClusteringSettings}


def build(cls: type[T], section: dict[str, Any]) -> T:
    """``cls`` from one params section (already validated: every field is present)."""
    values = {}
    for f in fields(cls):  # type: ignore[arg-type]
        value = section[f.name]
        nested = _NESTED.get((cls, f.name))
        if nested is not None:
            value = build(nested, value)
        elif isinstance(value, list):
            value = tuple(value)
        values[f.name] = value
    return cls(**values)


def pretrain_settings(params: dict[str, Any]) -> PretrainSettings:
    return build(PretrainSettings, params["pretrain"])


def finetune_settings(params: dict[str, Any]) -> FinetuneSettings:
    return build(FinetuneSettings, params["finetune"])


def model_config(params: dict[str, Any], num_classes: int = 0) -> dict[str, Any]:
    """The architecture keys of ``model`` that a checkpoint records (``ReIDNet`` arguments)."""
    m = params["model"]
    return {
        "arch": m["arch"], "last_stride": m["last_stride"], "num_parts": m["num_parts"],
        "pooling": m["pooling"], "test_feature": m["test_feature"], "num_classes": num_classes,
        "expert": m["expert"],
    }
