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

# libyaml's safe loader when PyYAML was built with it (same YAML, ~10x faster to parse):
# every lf2 command and every Snakemake start-up inside a cluster job reads the params.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_mapping(path: str | os.PathLike[str]) -> dict[str, Any]:
    """One params file as written (its ``extends`` key kept); errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise ParamsError(f"params file {p} does not exist")
    try:
        with open(p, encoding="utf-8") as fh:
            raw = yaml.load(fh, Loader=_SAFE_LOADER)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{p}: not valid YAML: {exc}") from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{p}: expected a mapping of keys at the top level, got {type(raw).__name__}")
    return raw


def chain(path: str | os.PathLike[str]) -> list[Path]:
    """The file and the files it extends, the extending file first."""
    return [file for file, _ in _chain_mappings(path)]


def read_merged(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The file merged over its bases (``extends`` removed): the unvalidated params."""
    merged: dict[str, Any] = {}
    for _, raw in reversed(_chain_mappings(path)):
        raw.pop(EXTENDS_KEY, None)
        merged = merge(merged, raw)
    return merged


def _chain_mappings(path: str | os.PathLike[str]) -> list[tuple[Path, dict[str, Any]]]:
    """Each file of the chain with its mapping as written, the extending file first
    (each file read once)."""
    found: list[tuple[Path, dict[str, Any]]] = []
    current: Path | None = Path(path)
    while current is not None:
        files = [f for f, _ in found]
        if current.resolve() in [f.resolve() for f in files]:
            names = " -> ".join(str(f) for f in [*files, current])
            raise ParamsError(f"{files[0]}: params files extend each other in a circle: {names}")
        raw = read_mapping(current)
        found.append((current, raw))
        base = raw.get(EXTENDS_KEY)
        if base is not None and not isinstance(base, str):
            raise ParamsError(f"{current}: {EXTENDS_KEY}: expected the path of a params file, "
                              f"got {base!r}")
        current = current.parent / base if base else None
    return found


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
