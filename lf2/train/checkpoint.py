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
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lf2.errors import CheckpointDamaged, CheckpointError, CheckpointRefused
from lf2.io import atomic_path

log = logging.getLogger(__name__)

FORMAT = "lf2-checkpoint-v1"
ARCH_KEYS = ("arch", "last_stride", "num_parts", "pooling", "expert")
_ARCH_DEFAULTS = {"expert": "fc_bn"}  # checkpoints written before the key existed

#: Globals a checkpoint may reference beyond what ``torch.load(weights_only=True)`` allows by
#: itself (tensors, dtypes, ``torch.Size``, ``OrderedDict`` and plain containers, numbers,
#: strings, None). lf2 stores nothing else: :func:`plain` turns numpy values into Python
#: numbers and tensors before saving, and RNG states are kept as lists and tensors
#: (``runtime.rng_state``). Anything outside this list is refused, never unpickled.
ALLOWED_GLOBALS: list = []


def plain(obj: Any) -> Any:
    """``obj`` with numpy values turned into Python numbers / tensors and paths into strings,
    so that the saved file holds only what a weights-only load accepts."""
    if isinstance(obj, dict):
        return type(obj)((k, plain(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write ``payload`` atomically (temporary file in the same folder, then rename).

    ``torch.save`` is given an open file, not the temporary's name: given a name it calls the
    archive's root folder after it (``.model.pt.k3j9x_a1/data.pkl``), so the bytes, and the
    sha256 DVC records, would change with every write. Through a file handle the root is
    always ``archive/`` and the same payload gives the same bytes.
    """
    payload = plain({"format": FORMAT, **payload})
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(payload, fh)
        fh.flush()
        os.fsync(fh.fileno())


def verify_archive(path: str | os.PathLike[str]) -> None:
    """Check every member of the checkpoint's zip archive against its stored CRC-32.

    ``torch.load`` does not: flipped bytes inside a tensor load silently. Raises
    :class:`CheckpointDamaged` naming the file and the damaged member.
    """
    p = Path(path)
    try:
        with zipfile.ZipFile(p) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise CheckpointDamaged(f"checkpoint {p} cannot be read ({type(exc).__name__}: {exc}); "
                                "it may be truncated or not an lf2 checkpoint: delete it and rerun "
                                "the stage that writes it") from exc
    if bad is not None:
        raise CheckpointDamaged(f"checkpoint {p} is damaged: archive member {bad!r} fails its CRC "
                                "check (bit rot or an interrupted copy); restore it (dvc checkout, "
                                "dvc pull) or rerun the stage that writes it")


def _unpickler_detail(message: str) -> str:
    """The one useful line of torch's weights-only refusal (``Unsupported global: GLOBAL io.open``)."""
    m = re.search(r"Unsupported global: GLOBAL (\S+)", message)
    if m:
        return f"a reference to {m.group(1)}"
    m = re.search(r"WeightsUnpickler error: ([^\n]+)", message)
    return m.group(1).strip() if m else "content a weights-only load does not accept"


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Verify and load an lf2 checkpoint; a file holding anything but tensors and plain data is
    refused without running any of it (``weights_only=True``)."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist")
    verify_archive(p)
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = _unpickler_detail(str(exc))
        raise CheckpointRefused(
            f"refusing to load {p}: it holds objects an lf2 checkpoint never contains ({detail}); "
            "it was written by other software, altered, or (a state.pt) by an older lf2 whose "
            "resume states held numpy objects; unpickling it could run code from the file. "
            "Rebuild it with the lf2 stage that writes it (an old state.pt: delete it and the run "
            "starts over), or fetch it from a source you trust") from exc
    except Exception as exc:  # noqa: BLE001 - any other failure means a corrupt file
        raise CheckpointDamaged(f"checkpoint {p} cannot be read ({type(exc).__name__}: {exc}); "
                                "it may be truncated: delete it and rerun the stage") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not an lf2 checkpoint (expected format {FORMAT!r})")
    return ckpt


def check_architecture(ckpt: dict, model_config: dict, path: str | os.PathLike[str]) -> None:
    """Raise when a checkpoint was made for another architecture than ``model_config``."""
    saved = ckpt["model_config"]
    def get(cfg: dict, k: str):
        return cfg.get(k, _ARCH_DEFAULTS.get(k))

    diffs = [f"{k}: checkpoint has {get(saved, k)!r}, params ask for {get(model_config, k)!r}"
             for k in ARCH_KEYS if get(saved, k) != get(model_config, k)]
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
    """The resume state at ``state_path`` if it is intact and was written by a run with the
    same fingerprint (params, input contents, code version: ``records.run_fingerprint``).

    A state from another fingerprint (a sweep changed a value, a new init checkpoint, a code
    edit) is not continued: the run starts from scratch, saying why. A damaged or refused
    state is set aside as ``state.pt.damaged`` (kept for inspection) and the run starts from
    scratch: only one state is kept, so there is no older good one to fall back to.
    """
    p = Path(state_path)
    if not p.is_file():
        return None
    try:
        state = load_checkpoint(p)
    except CheckpointError as exc:
        aside = p.with_name(p.name + ".damaged")
        os.replace(p, aside)
        log.warning("%s; set aside as %s; starting from scratch (epoch 1)", exc, aside)
        return None
    if state.get("fingerprint") != fingerprint:
        log.warning("%s was written with other params, inputs or code (fingerprint %s, now %s); "
                    "starting from scratch", p, state.get("fingerprint"), fingerprint)
        return None
    return state


def discard_state(state_path: str | os.PathLike[str]) -> None:
    """Remove a finished run's resume state once its final checkpoint is written, so that a
    forced rerun (``snakemake -R``, ``dvc repro``) trains instead of re-emitting the old model."""
    Path(state_path).unlink(missing_ok=True)
