"""Parsers for the real re-ID datasets: folder tree -> table of (split, path, pid, camid).

Each parser takes the dataset folder (or its parent) and returns a :class:`ParsedDataset`
whose ``path`` column is relative to the dataset folder, ``pid`` is the ORIGINAL identity
and ``camid`` is 0-based. Adding a dataset is adding one function to :data:`PARSERS`
(and its official counts to :data:`OFFICIAL_COUNTS`). No image is opened here: decoding
and validation live in :mod:`lf2.data.prepare`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lf2.data.manifest import COLUMNS, SPLITS
from lf2.errors import DatasetError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
#: Market-1501 / DukeMTMC-reID / CUHK03-NP file names: ``0002_c1s1_000451_03.jpg``
#: PID (an integer, -1 for junk) then _c and the camera number: 0002_c1s1_000451_03.jpg
MARKET_NAME = re.compile(r"(-?\d+)_c(\d+)")

#: Folder of each split in the Market-style layout.
MARKET_SPLIT_DIRS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}

#: (ids, images) per split as printed by every public loader; ids include Market's pid 0.
OFFICIAL_COUNTS: dict[str, dict[str, tuple[int, int]]] = {
    "market1501": {"train": (751, 12936), "query": (750, 3368), "gallery": (751, 15913)},
    "dukemtmc": {"train": (702, 16522), "query": (702, 2228), "gallery": (1110, 17661)},
    # list_val merged into train (30,248 images without it)
    "msmt17": {"train": (1041, 32621), "query": (3060, 11659), "gallery": (3060, 82161)},
    "cuhk03-detected": {"train": (767, 7365), "query": (700, 1400), "gallery": (700, 5332)},
    "cuhk03-labeled": {"train": (767, 7368), "query": (700, 1400), "gallery": (700, 5328)},
}


@dataclass
class ParsedDataset:
    """A dataset as found on disk. ``root`` is the dataset folder (absolute)."""

    name: str
    root: Path
    table: pd.DataFrame
    dropped: dict[str, int]  # reason -> number of image files left out (junk, ...)

    def counts(self) -> dict[str, tuple[int, int, int]]:
        """split -> (ids, images, cameras)."""
        out = {}
        for split in SPLITS:
            rows = self.table[self.table["split"] == split]
            out[split] = (int(rows["pid"].nunique()), len(rows), int(rows["camid"].nunique()))
        return out


def _layout_hint(folder_names: Iterable[str], subdirs: Iterable[str]) -> str:
    names = " or ".join(f"{n}/" for n in folder_names)
    lines = "\n".join(f"    {s}/" for s in subdirs)
    return f"expected layout: ROOT = {names} (or its parent) containing\n{lines}"


def find_dataset_dir(root: Path, folder_names: Iterable[str], required: Iterable[str]) -> Path:
    """Return ``root`` if it holds ``required`` entries, else ``root/<name>`` that does."""
    root = Path(root)
    folder_names, required = list(folder_names), list(required)
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} does not exist or is not a folder; "
                           + _layout_hint(folder_names, required))
    candidates = [root] + [root / n for n in folder_names]
    for cand in candidates:
        if cand.is_dir() and all((cand / r).exists() for r in required):
            return cand.resolve()
    # Say exactly what is missing in the most plausible candidate.
    best = next((c for c in candidates[1:] if c.is_dir()), root)
    missing = [r for r in required if not (best / r).exists()]
    raise DatasetError(
        f"{best}: missing {', '.join(repr(m) for m in missing)}; " + _layout_hint(folder_names, required)
    )


def _image_files(folder: Path) -> list[str]:
    """Image file names in ``folder`` (sorted; Thumbs.db and other non-images ignored)."""
    with os.scandir(folder) as it:
        names = [e.name for e in it if e.is_file() and Path(e.name).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(names)


def parse_market_style(
    dataset_dir: Path, name: str, split_dirs: dict[str, str] | None = None
) -> ParsedDataset:
    """Parse a Market-1501-style tree (also DukeMTMC-reID and each CUHK03-NP variant).

    Junk (pid -1) is dropped; distractors (pid 0) are kept in the gallery only.
    """
    split_dirs = split_dirs or MARKET_SPLIT_DIRS
    rows: list[tuple[str, str, int, int]] = []
    dropped = {"junk (pid -1)": 0, "pid 0 outside the gallery": 0}
    for split in SPLITS:
        sub = split_dirs[split]
        folder = dataset_dir / sub
        if not folder.is_dir():
            raise DatasetError(f"{folder}: folder missing; " + _layout_hint([dataset_dir.name], split_dirs.values()))
        for fname in _image_files(folder):
            m = MARKET_NAME.match(fname)
            if m is None:
                raise DatasetError(
                    f"{folder / fname}: cannot parse identity and camera from the file name; "
                    "expected names like 0002_c1s1_000451_03.jpg or -1_c3s1_000123_01.jpg "
                    f"(pattern {MARKET_NAME.pattern!r}: PID, an integer or -1 for junk, then _cCAM)"
                )
            pid, cam = int(m.group(1)), int(m.group(2))
            if pid == -1:
                dropped["junk (pid -1)"] += 1
                continue
            if pid < -1:
                raise DatasetError(f"{folder / fname}: identity {pid} is invalid; expected -1, 0 or a positive id")
            if pid == 0 and split != "gallery":
                dropped["pid 0 outside the gallery"] += 1
                continue
            if cam < 1:
                raise DatasetError(f"{folder / fname}: camera c{cam} is invalid; cameras are numbered from 1")
            rows.append((split, f"{sub}/{fname}", pid, cam - 1))
    return _finish(name, dataset_dir, rows, dropped)


def _finish(name: str, root: Path, rows: list, dropped: dict[str, int]) -> ParsedDataset:
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table["pid"] = table["pid"].astype("int64")
    table["camid"] = table["camid"].astype("int64")
    for split in SPLITS:
        if not (table["split"] == split).any():
            raise DatasetError(f"{name} at {root}: the {split!r} split has no images")
    if dropped.get("pid 0 outside the gallery"):
        log.warning("%s: %d pid-0 image(s) outside the gallery were left out",
                    name, dropped["pid 0 outside the gallery"])
    return ParsedDataset(name=name, root=Path(root), table=table, dropped={k: v for k, v in dropped.items() if v})


# --------------------------------------------------------------------------- parsers
MARKET_FOLDERS = ("Market-1501-v15.09.15", "Market-1501", "market1501")
DUKE_FOLDERS = ("DukeMTMC-reID", "dukemtmc-reid", "dukemtmcreid")
MSMT_FOLDERS = ("MSMT17_V1", "MSMT17_V2", "MSMT17", "msmt17")
CUHK03_FOLDERS = ("cuhk03-np", "CUHK03-NP", "cuhk03_np")


def parse_market1501(root: Path, **_: object) -> ParsedDataset:
    d = find_dataset_dir(root, MARKET_FOLDERS, MARKET_SPLIT_DIRS.values())
    return parse_market_style(d, "market1501")


def parse_dukemtmc(root: Path, **_: object) -> ParsedDataset:
    d = find_dataset_dir(root, DUKE_FOLDERS, MARKET_SPLIT_DIRS.values())
    return parse_market_style(d, "dukemtmc")


def parse_cuhk03(root: Path, cuhk03_type: str = "detected", **_: object) -> ParsedDataset:
    if cuhk03_type not in ("detected", "labeled"):
        raise DatasetError(f"cuhk03 type {cuhk03_type!r}; expected 'detected' or 'labeled'")
    required = [f"{cuhk03_type}/{s}" for s in MARKET_SPLIT_DIRS.values()]
    d = find_dataset_dir(root, CUHK03_FOLDERS, required)
    parsed = parse_market_style(d, f"cuhk03-{cuhk03_type}",
                                {k: f"{cuhk03_type}/{v}" for k, v in MARKET_SPLIT_DIRS.items()})
    return parsed


MSMT_LISTS = {"train": ("list_train.txt", "list_val.txt"), "query": ("list_query.txt",),
              "gallery": ("list_gallery.txt",)}
#: image folders (train, test) of each MSMT17 release
MSMT_IMAGE_DIRS = (("train", "test"), ("mask_train_v2", "mask_test_v2"),
                   ("mask_train_V2", "mask_test_V2"))


def parse_msmt17(root: Path, **_: object) -> ParsedDataset:
    """MSMT17 V1 (``train/``, ``test/``) or V2 (``mask_train_v2/``, ``mask_test_v2/``).

    The list files hold ``<pid>/<file> <label>``; the camera is the third ``_`` field of
    the file name (1-based). ``list_val.txt`` is merged into train (its ids are train ids).
    """
    lists = [f for fs in MSMT_LISTS.values() for f in fs]
    d = find_dataset_dir(root, MSMT_FOLDERS, lists)
    dirs = next(((tr, te) for tr, te in MSMT_IMAGE_DIRS if (d / tr).is_dir() and (d / te).is_dir()),
                None)
    if dirs is None:
        raise DatasetError(
            f"{d}: no image folders found; expected train/ and test/ (MSMT17_V1) "
            "or mask_train_v2/ and mask_test_v2/ (MSMT17_V2) next to the list_*.txt files"
        )
    rows: list[tuple[str, str, int, int]] = []
    for split, files in MSMT_LISTS.items():
        img_dir = dirs[0] if split == "train" else dirs[1]
        for list_name in files:
            list_path = d / list_name
            for lineno, line in enumerate(list_path.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                parts = line.split()
                try:
                    rel, pid = parts[0], int(parts[1])
                    cam = int(Path(rel).name.split("_")[2])
                except (IndexError, ValueError):
                    raise DatasetError(
                        f"{list_path}:{lineno}: cannot parse {line.strip()!r}; expected "
                        "'PID/PID_IDX_CAM_DATE_FRAME_N.jpg LABEL'"
                    ) from None
                if cam < 1:
                    raise DatasetError(f"{list_path}:{lineno}: camera {cam} invalid; cameras start at 1")
                rows.append((split, f"{img_dir}/{rel}", pid, cam - 1))
    missing = [r[1] for r in rows if not (d / r[1]).is_file()]
    if missing:
        shown = "\n".join(f"  {d / m}" for m in missing[:10])
        more = f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise DatasetError(f"{len(missing)} image(s) listed in {d}/list_*.txt not found:\n{shown}{more}")
    return _finish("msmt17", d, rows, {})


#: dataset name -> parser(root, **options). ``lf2 prepare`` offers exactly these names.
PARSERS: dict[str, Callable[..., ParsedDataset]] = {
    "market1501": parse_market1501,
    "dukemtmc": parse_dukemtmc,
    "msmt17": parse_msmt17,
    "cuhk03": parse_cuhk03,
}


def load_dataset(name: str, root: Path, **options: object) -> ParsedDataset:
    """Parse dataset ``name`` found at ``root`` (the dataset folder or its parent)."""
    if name not in PARSERS:
        raise DatasetError(f"unknown dataset {name!r}; expected one of {', '.join(PARSERS)}")
    return PARSERS[name](Path(root), **options)


def format_counts(parsed: ParsedDataset) -> str:
    """The usual ``split | ids | images | cameras`` table."""
    lines = [f"{parsed.name} ({parsed.root})",
             "  split   |   ids | images | cameras",
             "  --------+-------+--------+--------"]
    for split, (ids, images, cams) in parsed.counts().items():
        lines.append(f"  {split:<7} | {ids:5d} | {images:6d} | {cams:7d}")
    for reason, n in parsed.dropped.items():
        lines.append(f"  left out: {n} {reason}")
    return "\n".join(lines)


def check_official_counts(parsed: ParsedDataset) -> list[str]:
    """Compare with the published counts; log and return a warning per differing split."""
    official = OFFICIAL_COUNTS.get(parsed.name)
    if official is None:
        return []
    warnings = []
    for split, (ids, images, _) in parsed.counts().items():
        want = official[split]
        if (ids, images) != want:
            msg = (f"{parsed.name} {split}: found {ids} ids / {images} images, "
                   f"official {want[0]} / {want[1]}")
            log.warning(msg)
            warnings.append(msg)
    return warnings
