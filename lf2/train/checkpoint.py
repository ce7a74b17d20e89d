"""Checkpoint files: one format for pre-training, fine-tuning and resume states.

A checkpoint is a single ``torch.save`` file written atomically. Keys:
``format`` (``lf2-checkpoint-v1``), ``stage`` (pretrain | finetune), ``row``,
``model_config`` (``ReIDNet.config()``), ``student``, ``teacher`` (None after pre-training),
``fusion`` (None unless the row uses the Fusion Module), ``params`` (resolved), ``epoch``
(last completed, 1-based), ``meta``. Resume states (``state.pt``) add ``optimizer``,
``ema_step``, ``rng`` and ``records`` (the epoch log so far).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from lf2.errors import CheckpointError
from lf2.io import atomic_path

log = logging.getLogger(__name__)

FORMAT = "lf2-checkpoint-v1"
ARCH_KEYS = ("arch", "last_stride", "num_parts", "pooling")


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write ``payload`` atomically (temporary file in the same folder, then rename)."""
    payload = {"format": FORMAT, **payload}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise CheckpointError(f"checkpoint {p} cannot be read ({type(exc).__name__}: {exc}); "
                              "it may be truncated: delete it and rerun the stage") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not an lf2 checkpoint (expected format {FORMAT!r})")
    return ckpt


def check_architecture(ckpt: dict, model_config: dict, path: str | os.PathLike[str]) -> None:
    """Raise when a checkpoint was made for another architecture than ``model_config``."""
    saved = ckpt["model_config"]
    diffs = [f"{k}: checkpoint has {saved.get(k)!r}, params ask for {model_config.get(k)!r}"
             for k in ARCH_KEYS if saved.get(k) != model_config.get(k)]
    if diffs:
        raise CheckpointError(f"checkpoint {path} is from another architecture: " + "; ".join(diffs))


def build_model(model_config: dict, num_classes: int | None = None, pretrained: bool | str = False):
    """A ``ReIDNet`` from ``ReIDNet.config()`` keys, optionally with another classifier size."""
    from lf2.models.net import ReIDNet

    cfg = dict(model_config)
    if num_classes is not None:
        cfg["num_classes"] = num_classes
    return ReIDNet(pretrained=pretrained, **cfg)


def _state_num_classes(state: dict) -> int:
    w = state.get("classifier.weight")
    return 0 if w is None else int(w.shape[0])


def load_model(path: str | os.PathLike[str], which: str = "auto", device: torch.device | str | None = None,
               test_feature: str | None = None):
    """Load a model from a checkpoint, in eval mode.

    ``which="auto"`` takes the teacher when there is one (the paper infers with the teacher
    only) and the student otherwise (a pre-trained source model). Returns ``(model, ckpt)``.
    """
    if which not in ("auto", "teacher", "student"):
        raise CheckpointError(f"which={which!r}; expected auto, teacher or student")
    ckpt = load_checkpoint(path)
    if which == "auto":
        which = "teacher" if ckpt.get("teacher") is not None else "student"
    state = ckpt.get(which)
    if state is None:
        raise CheckpointError(f"checkpoint {path} has no {which} weights (stage {ckpt.get('stage')!r})")
    cfg = dict(ckpt["model_config"])
    if test_feature is not None:
        cfg["test_feature"] = test_feature
    model = build_model(cfg, num_classes=_state_num_classes(state))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path}: {which} weights do not fit the model ({exc})") from exc
    model.eval()
    if device is not None:
        model.to(device)
    return model, ckpt


def load_fusion(ckpt: dict):
    """The Fusion Module of a fine-tuned LF² checkpoint, or None when the row has none."""
    if ckpt.get("fusion") is None:
        return None
    from lf2.models.fusion import FusionHead

    cfg = ckpt["model_config"]
    fm = ckpt["meta"]["fusion"]
    head = FusionHead(fm["channels"], cfg.get("num_parts", 2), fm["reduction"], fm["mode"])
    head.load_state_dict(ckpt["fusion"])
    head.eval()
    return head


def resumable_state(state_path: str | os.PathLike[str], fingerprint: str) -> dict | None:
    """The resume state at ``state_path`` if it was written by a run with the same settings.

    A state from other params (a sweep changed a value, another row wrote to the same
    folder) is set aside with a warning and the run starts from scratch: continuing it would
    silently mix two configurations.
    """
    if not Path(state_path).is_file():
        return None
    state = load_checkpoint(state_path)
    if state.get("fingerprint") != fingerprint:
        log.warning("%s was written with other params; starting from scratch", state_path)
        return None
    return state
