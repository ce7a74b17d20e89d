"""The manifest: the one description of a prepared dataset that later stages read.

A prepared dataset is a folder holding ``manifest.csv`` (columns ``split,path,pid,camid``)
and ``meta.json`` (dataset name, image root, per-split counts). ``path`` is relative to
the image root, or absolute. ``pid`` is the ORIGINAL identity (Market distractors keep
pid 0); ``camid`` is 0-based. ``split`` is one of ``train``, ``query``, ``gallery``.
Downstream stages and DVC consume the manifest, never a folder listing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lf2.errors import DatasetError
from lf2.io import atomic_path, read_json, write_json
from lf2.layout import MANIFEST_FILE as MANIFEST_NAME
from lf2.layout import META_FILE as META_NAME

COLUMNS = ("split", "path", "pid", "camid")
SPLITS = ("train", "query", "gallery")


@dataclass
class Manifest:
    """A loaded manifest. ``root`` is absolute; ``table`` keeps the file's row order."""

    table: pd.DataFrame
    root: Path
    name: str = "dataset"
    meta: dict = field(default_factory=dict)

    def split(self, name: str) -> pd.DataFrame:
        """Rows of one split, in manifest order, with a fresh 0..n-1 index."""
        if name not in SPLITS:
            raise DatasetError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        rows = self.table[self.table["split"] == name].reset_index(drop=True)
        if rows.empty:
            raise DatasetError(f"manifest of {self.name!r} ({self.root}) has no {name!r} images")
        return rows

    def paths(self, name: str) -> list[Path]:
        """Absolute image paths of one split, in manifest order."""
        return [self.resolve(p) for p in self.split(name)["path"]]

    def pids(self, name: str) -> np.ndarray:
        return self.split(name)["pid"].to_numpy(dtype=np.int64)

    def camids(self, name: str) -> np.ndarray:
        return self.split(name)["camid"].to_numpy(dtype=np.int64)

    def resolve(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else self.root / p


def load_manifest(location: str | os.PathLike[str]) -> Manifest:
    """Load a manifest from its folder or from the ``manifest.csv`` path itself."""
    loc = Path(location)
    csv = loc / MANIFEST_NAME if loc.is_dir() else loc
    if not csv.is_file():
        raise DatasetError(
            f"no manifest at {csv}; run `lf2 prepare <dataset> --root DIR --out {csv.parent}` first"
        )
    meta_path = csv.parent / META_NAME
    meta = read_json(meta_path) if meta_path.is_file() else {}
    try:
        table = pd.read_csv(csv, dtype={"split": str, "path": str, "pid": np.int64, "camid": np.int64})
    except (ValueError, pd.errors.ParserError) as exc:
        raise DatasetError(f"{csv}: not a valid manifest ({exc}); expected columns {','.join(COLUMNS)}") from exc
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise DatasetError(f"{csv}: missing column(s) {', '.join(missing)}; expected {','.join(COLUMNS)}")
    bad = sorted(set(table["split"]) - set(SPLITS))
    if bad:
        raise DatasetError(f"{csv}: unknown split value(s) {bad}; expected {', '.join(SPLITS)}")
    root = Path(meta.get("root", "."))
    if not root.is_absolute():
        root = (csv.parent / root).resolve()
    return Manifest(table=table[list(COLUMNS)], root=root, name=meta.get("name", csv.parent.name), meta=meta)


def write_manifest(
    out_dir: str | os.PathLike[str],
    table: pd.DataFrame,
    *,
    root: str | os.PathLike[str],
    name: str,
    extra_meta: dict | None = None,
) -> Path:
    """Write ``manifest.csv`` and ``meta.json`` into ``out_dir``, each atomically.

    ``root`` is stored relative to ``out_dir`` when it lies inside it (so a prepared
    synthetic dataset can be moved or versioned by DVC), absolute otherwise.
    Returns the manifest path.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        if not (table["split"] == split).any():
            raise DatasetError(f"refusing to write a manifest for {name!r} with an empty {split!r} split")
    root_path = Path(root).resolve()
    try:
        stored_root = str(root_path.relative_to(out.resolve())) or "."
    except ValueError:
        stored_root = str(root_path)
    counts = {
        split: {
            "ids": int(table.loc[table["split"] == split, "pid"].nunique()),
            "images": int((table["split"] == split).sum()),
            "cameras": int(table.loc[table["split"] == split, "camid"].nunique()),
        }
        for split in SPLITS
    }
    meta = {"name": name, "root": stored_root, "counts": counts, **(extra_meta or {})}
    csv = out / MANIFEST_NAME
    with atomic_path(csv) as tmp:
        table[list(COLUMNS)].to_csv(tmp, index=False)
    write_json(out / META_NAME, meta)
    return csv
