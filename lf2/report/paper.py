"""The paper's published numbers (Table I and II of Ding & Zhou, ICPR 2022).

They live in one data file, ``paper_values.csv`` next to this module (its source and
layout are described in ``paper_values.md``). This module loads and checks it, and maps
a params direction onto the paper's D-to-M / M-to-D when the datasets are the real ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from lf2.errors import LF2Error

PAPER_VALUES = Path(__file__).with_name("paper_values.csv")
PAPER_CITATION = (
    "Ding & Zhou, \"Learning Feature Fusion for Unsupervised Domain Adaptive Person "
    "Re-identification\", ICPR 2022"
)
PAPER_DIRECTIONS = ("D-to-M", "M-to-D")
METRICS = ("mAP", "rank1", "rank5", "rank10")
COLUMNS = ("table", "row", "category", "method", "venue", "direction", *METRICS)

#: (source kind, target kind) -> the paper's direction name
_KIND_TO_PAPER = {
    ("dukemtmc", "market1501"): "D-to-M",
    ("market1501", "dukemtmc"): "M-to-D",
}


def load_paper_values(path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Load and check the published numbers; one line per (table, method, direction).

    Metric columns are floats in percent (NaN where the paper gives none); ``row``,
    ``category`` and ``venue`` are strings ("" where empty).
    """
    csv = Path(path) if path is not None else PAPER_VALUES
    if not csv.is_file():
        raise LF2Error(f"paper values file {csv} not found")
    try:
        df = pd.read_csv(csv, comment="#", dtype={c: str for c in COLUMNS[:6]}, keep_default_na=True)
    except (ValueError, pd.errors.ParserError) as exc:
        raise LF2Error(f"{csv}: not a valid CSV ({exc}); expected columns {','.join(COLUMNS)}") from exc
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise LF2Error(f"{csv}: missing column(s) {', '.join(missing)}; expected {','.join(COLUMNS)}")
    for col in ("row", "category", "venue"):
        df[col] = df[col].fillna("").astype(str)
    bad_table = sorted(set(df["table"]) - {"I", "II"})
    if bad_table:
        raise LF2Error(f"{csv}: column 'table' has {bad_table}; expected I or II")
    bad_dir = sorted(set(df["direction"]) - set(PAPER_DIRECTIONS))
    if bad_dir:
        raise LF2Error(f"{csv}: column 'direction' has {bad_dir}; expected {', '.join(PAPER_DIRECTIONS)}")
    for col in METRICS:
        try:
            df[col] = pd.to_numeric(df[col], errors="raise").astype(float)
        except (ValueError, TypeError) as exc:
            raise LF2Error(f"{csv}: column {col!r} must hold numbers in percent ({exc})") from exc
        out = df[col].dropna()
        if ((out < 0) | (out > 100)).any():
            raise LF2Error(f"{csv}: column {col!r} has values outside [0, 100] (percent expected)")
    dup = df.duplicated(subset=["table", "method", "direction"])
    if dup.any():
        first = df[dup].iloc[0]
        raise LF2Error(
            f"{csv}: duplicate line for table {first['table']}, {first['method']!r}, {first['direction']}"
        )
    return df.reset_index(drop=True)


def paper_direction(params: dict, direction: dict) -> str | None:
    """The paper's direction name for a params direction, or None when not comparable.

    Only the real datasets map: ``dukemtmc -> market1501`` is D-to-M and
    ``market1501 -> dukemtmc`` is M-to-D. Synthetic or other datasets give None.
    """
    datasets = params.get("datasets", {})
    try:
        src = datasets[direction["source"]].get("kind")
        tgt = datasets[direction["target"]].get("kind")
    except KeyError as exc:
        raise LF2Error(
            f"direction {direction.get('name')!r} names dataset {exc.args[0]!r}, "
            f"which is not under 'datasets' in the params"
        ) from exc
    return _KIND_TO_PAPER.get((src, tgt))


def table2_values(paper: pd.DataFrame, row: str, direction: str) -> dict[str, float] | None:
    """The paper's Table II numbers for one of our row ids in one paper direction (or None)."""
    sel = paper[(paper["table"] == "II") & (paper["row"] == row) & (paper["direction"] == direction)]
    if sel.empty:
        return None
    rec = sel.iloc[0]
    return {m: float(rec[m]) for m in METRICS}


def table1_methods(paper: pd.DataFrame) -> pd.DataFrame:
    """Table I in wide form: one line per method (paper order), 4 metrics per direction."""
    t1 = paper[paper["table"] == "I"]
    methods = list(dict.fromkeys(t1["method"]))
    lines = []
    for method in methods:
        sub = t1[t1["method"] == method]
        first = sub.iloc[0]
        line: dict[str, object] = {
            "Category": first["category"],
            "Method": method,
            "Reference": first["venue"],
        }
        for d in PAPER_DIRECTIONS:
            rec = sub[sub["direction"] == d]
            for m in METRICS:
                line[f"{d} {METRIC_LABELS[m]}"] = float(rec.iloc[0][m]) if not rec.empty else float("nan")
        lines.append(line)
    return pd.DataFrame(lines)


METRIC_LABELS = {"mAP": "mAP", "rank1": "Rank-1", "rank5": "Rank-5", "rank10": "Rank-10"}
