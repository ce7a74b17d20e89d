"""The per-epoch JSONL log and the resolved params written beside every run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from lf2.io import _json_default, atomic_write_text


def write_epoch_log(path: str | os.PathLike[str], records: list[dict]) -> None:
    """Rewrite the whole log atomically from the records kept in the resume state."""
    text = "".join(json.dumps(r, default=_json_default) + "\n" for r in records)
    atomic_write_text(path, text)


def read_epoch_log(path: str | os.PathLike[str]) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def run_fingerprint(params: dict, run: dict) -> str:
    """Identity of a run's settings: a resume state is only continued under the same one.

    ``paths``, ``device``, ``threads`` and ``workflow`` do not change what is computed, so
    they are left out (a run may resume on another machine or with more threads).
    """
    import hashlib

    kept = {k: v for k, v in params.items() if k not in ("paths", "device", "threads", "workflow")}
    blob = json.dumps({"params": kept, "run": run}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def write_resolved_params(run_dir: str | os.PathLike[str], params: dict, run: dict) -> Path:
    """``params.yaml`` beside the checkpoint: the params the run used plus what the CLI set."""
    path = Path(run_dir) / "params.yaml"
    atomic_write_text(path, yaml.safe_dump({"run": run, **params}, sort_keys=False))
    return path
