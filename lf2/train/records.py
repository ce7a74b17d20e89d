"""The per-epoch JSONL log and the resolved params written beside every run."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import yaml

from lf2.io import _json_default, atomic_write_text, sha256_file
from lf2.layout import MANIFEST_FILE, META_FILE


def write_epoch_log(path: str | os.PathLike[str], records: list[dict]) -> None:
    """Rewrite the whole log atomically from the records kept in the resume state."""
    text = "".join(json.dumps(r, default=_json_default) + "\n" for r in records)
    atomic_write_text(path, text)


def read_epoch_log(path: str | os.PathLike[str]) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


#: run-info keys that name input files; the fingerprint holds their contents' sha256
INPUT_KEYS = ("source", "target", "init")


def input_digest(path: str | os.PathLike[str] | None) -> str | None:
    """sha256 of an input: a checkpoint file, or a prepared dataset (its ``manifest.csv`` and
    ``meta.json``, given as the folder or the csv). How the path is spelled does not matter."""
    if path is None:
        return None
    p = Path(path)
    files = [p]
    if p.is_dir() or p.suffix == ".csv":
        csv = p / MANIFEST_FILE if p.is_dir() else p
        files = [csv, csv.parent / META_FILE]
    h = hashlib.sha256()
    for f in files:
        h.update((sha256_file(f) if f.is_file() else f"missing {f.name}").encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=4)
def code_version(package_dir: str | None = None) -> str:
    """sha256 over the lf2 package's source files (``*.py``, ``*.json``), by relative path.

    Works without git (an installed copy, a DVC workspace); any edit to the package, even a
    comment, gives another version, so a resume state from older code is not continued.
    """
    root = Path(package_dir) if package_dir else Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted(root.rglob("*")):
        if f.suffix in (".py", ".json") and f.is_file() and "__pycache__" not in f.parts:
            h.update(f.relative_to(root).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def run_fingerprint(params: dict, run: dict) -> str:
    """Identity of a run: a resume state is only continued under the same one.

    It covers the params, the run's settings, the CONTENT of its inputs (``INPUT_KEYS``: a new
    init checkpoint or a changed manifest at the same path is another run; the same file
    spelled relative or absolute is the same run) and the code version. ``paths``, ``device``,
    ``threads`` and ``workflow`` do not change what is computed, so they are left out (a run
    may resume on another machine or with more threads).
    """
    kept = {k: v for k, v in params.items() if k not in ("paths", "device", "threads", "workflow")}
    identity = {k: (input_digest(v) if k in INPUT_KEYS else v) for k, v in run.items()}
    blob = json.dumps({"params": kept, "run": identity, "code": code_version()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def write_resolved_params(path: str | os.PathLike[str], params: dict, run: dict) -> Path:
    """``params.yaml`` beside the checkpoint (:func:`lf2.layout.run_files`): the params the run
    used plus what the CLI set."""
    path = Path(path)
    atomic_write_text(path, yaml.safe_dump({"run": run, **params}, sort_keys=False))
    return path
