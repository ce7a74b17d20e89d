"""Params files that extend others: ``extends: <path>`` holds only the differences.

A params file may name one base file with the top-level key ``extends`` (a path relative
to the extending file's folder). The base is read the same way (it may extend another),
then the extending file is merged over it:

- mappings merge key by key, recursively;
- any other value (a scalar, a list such as ``directions`` or ``rows.clusters``) replaces
  the base's value;
- ``null`` removes the inherited key (e.g. ``datasets: {synth_a: null}``); no params
  value is null, so this is unambiguous.

``read_merged`` returns the merged mapping (what ``lf2.config.load_params`` validates,
what ``lf2 params`` prints); ``chain`` returns the files it was read from, the extending
file first, so that DVC can track every file whose values reach a stage.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from lf2.errors import ParamsError

EXTENDS_KEY = "extends"


def read_mapping(path: str | os.PathLike[str]) -> dict[str, Any]:
    """One params file as written (its ``extends`` key kept); errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise ParamsError(f"params file {p} does not exist")
    try:
        with open(p, encoding="utf-8") as fh:
            raw = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{p}: not valid YAML: {exc}") from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{p}: expected a mapping of keys at the top level, got {type(raw).__name__}")
    return raw


def chain(path: str | os.PathLike[str]) -> list[Path]:
    """The file and the files it extends, the extending file first."""
    files: list[Path] = []
    current: Path | None = Path(path)
    while current is not None:
        if current.resolve() in [f.resolve() for f in files]:
            names = " -> ".join(str(f) for f in [*files, current])
            raise ParamsError(f"{files[0]}: params files extend each other in a circle: {names}")
        files.append(current)
        base = read_mapping(current).get(EXTENDS_KEY)
        if base is not None and not isinstance(base, str):
            raise ParamsError(f"{current}: {EXTENDS_KEY}: expected the path of a params file, "
                              f"got {base!r}")
        current = current.parent / base if base else None
    return files


def read_merged(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The file merged over its bases (``extends`` removed): the unvalidated params."""
    merged: dict[str, Any] = {}
    for file in reversed(chain(path)):
        raw = read_mapping(file)
        raw.pop(EXTENDS_KEY, None)
        merged = merge(merged, raw)
    return merged


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged into a copy of ``base`` (mappings recursively; ``None`` deletes)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def keys_defined_in(path: str | os.PathLike[str], keys: list[str] | tuple[str, ...]) -> list[str]:
    """Those dotted ``keys`` that ``path`` itself writes (the key or a part of its value):
    what DVC must track in that file for a stage reading ``keys``."""
    raw = read_mapping(path)
    found = []
    for key in keys:
        node: Any = raw
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            found.append(key)
    return found
