"""Typed, frozen settings built once from validated params: the training loops read
attributes (``settings.lr``), not string keys of nested dicts.

Each class mirrors one section of ``lf2/schema/params.schema.json`` field for field;
``tests/test_settings.py`` fails when a section gains a key its class lacks, so a new key is
a schema entry plus a field, and a typo in a loop is an AttributeError at once instead of a
KeyError deep in a run. Lists become tuples (the settings are immutable). A key that is not
a Python name (``evaluate.lambda``) names its field in the field's ``metadata["key"]``.

Validated params hold every key. A section that lacks one (a stage's params stripped to its
tracked keys in ``tests/test_stage_params.py``) still builds, and the field raises
``KeyError`` naming the key when read: a stage fails exactly when it reads a key it does not
track, not because its settings hold the whole section.
"""

from __future__ import annotations

from dataclasses import Field, dataclass, field, fields
from typing import Any, TypeVar

T = TypeVar("T")


class _Unset:
    """The value of a field whose key the section did not hold."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    def __repr__(self) -> str:
        return f"<unset {self.key}>"


class _Settings:
    """Base of the settings classes: reading an :class:`_Unset` field raises ``KeyError``."""

    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        value = object.__getattribute__(self, name)
        if type(value) is _Unset:
            raise KeyError(f"{value.key}: not in the params these settings were built from")
        return value


@dataclass(frozen=True)
class InputSettings(_Settings):
    """``input``: image size and training augmentation, image loading."""

    height: int
    width: int
    pad: int
    flip: bool
    random_erasing: float
    cache: str
    workers: int


@dataclass(frozen=True)
class ModelSettings(_Settings):
    """``model``: the network (docs/method.md §2) and test-time features."""

    arch: str
    pretrained: bool | str
    last_stride: int
    num_parts: int
    pooling: str
    fm_mode: str
    fm_reduction: int
    test_feature: str
    expert: str
    flip_test: bool


@dataclass(frozen=True)
class EvaluateSettings(_Settings):
    """``evaluate``: ranking and (optional) k-reciprocal re-ranking of the test split."""

    rerank: bool
    k1: int
    k2: int
    lambda_: float = field(metadata={"key": "lambda"})
    batch_size: int


@dataclass(frozen=True)
class ClusteringSettings(_Settings):
    """``finetune.clustering``: pseudo labels (docs/method.md §4)."""

    method: str
    kmeans_iters: int
    dbscan_eps: float
    dbscan_min_samples: int
    k1: int
    k2: int


@dataclass(frozen=True)
class PretrainSettings(_Settings):
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
class FinetuneSettings(_Settings):
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
SECTIONS: dict[str, type] = {
    "input": InputSettings, "model": ModelSettings, "pretrain": PretrainSettings,
    "finetune": FinetuneSettings, "evaluate": EvaluateSettings,
}
_NESTED: dict[tuple[type, str], type] = {(FinetuneSettings, "clustering"): ClusteringSettings}


def schema_key(f: Field[Any]) -> str:
    """The params key a settings field holds."""
    return str(f.metadata.get("key", f.name))


def build(cls: type[T], section: dict[str, Any], where: str = "") -> T:
    """``cls`` from one params section; ``where`` is its dotted path (``finetune``), for the
    error of an absent key (see the module docstring)."""
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        key = schema_key(f)
        dotted = f"{where}.{key}" if where else key
        if key not in section:
            values[f.name] = _Unset(dotted)
            continue
        value = section[key]
        nested = _NESTED.get((cls, f.name))
        if nested is not None:
            value = build(nested, value, dotted)
        elif isinstance(value, list):
            value = tuple(value)
        values[f.name] = value
    return cls(**values)


def input_settings(params: dict[str, Any]) -> InputSettings:
    return build(InputSettings, params["input"], "input")


def model_settings(params: dict[str, Any]) -> ModelSettings:
    return build(ModelSettings, params["model"], "model")


def evaluate_settings(params: dict[str, Any]) -> EvaluateSettings:
    return build(EvaluateSettings, params["evaluate"], "evaluate")


def pretrain_settings(params: dict[str, Any]) -> PretrainSettings:
    return build(PretrainSettings, params["pretrain"], "pretrain")


def finetune_settings(params: dict[str, Any]) -> FinetuneSettings:
    return build(FinetuneSettings, params["finetune"], "finetune")


def model_config(params: dict[str, Any], num_classes: int = 0) -> dict[str, Any]:
    """The architecture keys of ``model`` that a checkpoint records (``ReIDNet`` arguments)."""
    m = model_settings(params)
    return {
        "arch": m.arch, "last_stride": m.last_stride, "num_parts": m.num_parts,
        "pooling": m.pooling, "test_feature": m.test_feature, "num_classes": num_classes,
        "expert": m.expert,
    }
