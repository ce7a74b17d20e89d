"""The metrics JSON files of a run, read per seed and averaged over seeds, and the Table II
rows they belong to: what :mod:`lf2.report.tables` (CSV) and :mod:`lf2.report.tables_md`
(markdown) both tabulate.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from lf2 import layout
from lf2.errors import LF2Error
from lf2.report.paper import METRICS
from lf2.rows import reference_row, row_spec, rows_for

# ----------------------------------------------------------------------------- rows


def display_name(params: dict, row: str) -> str:
    """The Table II name of a row, with this run's M_t (e.g. ``LF² (M_t = 48)``)."""
    return str(row_spec(params, row)["display_name"])


def reference_lf2_row(params: dict) -> str:
    """The LF² row of our Table I line (:func:`lf2.rows.reference_row` of ``lf2``)."""
    return reference_row(params, "lf2")


SeedMetrics = dict[tuple[str, str, int], dict[str, Any]]


def is_supplementary(params: dict, row: str) -> bool:
    from lf2.train.variants import VARIANTS

    return VARIANTS[row_spec(params, row)["variant"]].supplementary


def table2_rows(params: dict) -> list[str]:
    """Table II proper: supplementary rows are tabled apart (:mod:`lf2.report.tables_md`)."""
    return [r for r in rows_for(params) if not is_supplementary(params, r)]


# ----------------------------------------------------------------------------- reading metrics


def load_metrics(path: str | os.PathLike[str]) -> dict[str, Any]:
    """One metrics JSON; checks that mAP and Rank-1/5/10 are fractions in [0, 1]."""
    p = Path(path)
    if not p.is_file():
        raise LF2Error(
            f"metrics file {p} does not exist; run `lf2 evaluate ... --out {p}` for that row first"
        )
    try:
        with open(p, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise LF2Error(f"metrics file {p} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise LF2Error(f"metrics file {p}: expected a JSON object, got {type(data).__name__}")
    for key in METRICS:
        value = data.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
            raise LF2Error(
                f"metrics file {p}: key {key!r} is {value!r}; expected a fraction in [0, 1]"
            )
    return data


def collect_seed_metrics(params: dict) -> SeedMetrics:
    """``{(direction, row, seed): metrics}``; a missing seed's file is an error naming it."""
    seeds = layout.seeds(params)
    return {(d["name"], row, s): load_metrics(path)
            for d in params["directions"] for row in rows_for(params)
            for s, path in zip(seeds, layout.metrics_paths(params, d["name"], row), strict=True)}


def seed_means(params: dict, per_seed: SeedMetrics) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(direction, row): metrics}`` with mAP / Rank-k the means over seeds; the other keys
    (``rerank``, ``checkpoint``) from the first seed."""
    seeds = layout.seeds(params)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for d in params["directions"]:
        for row in rows_for(params):
            runs = [per_seed[(d["name"], row, s)] for s in seeds]
            out[(d["name"], row)] = {**runs[0], **{k: math.fsum(r[k] for r in runs) / len(runs) for k in METRICS}}
    return out


def collect_metrics(params: dict) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(direction, row): metrics}`` (seed means) for every direction and Table II row."""
    return seed_means(params, collect_seed_metrics(params))


def pct(value: float) -> float:
    """Fraction -> percent with one decimal, rounding halves away from zero."""
    x = 100.0 * float(value)
    return math.floor(x * 10.0 + 0.5 + 1e-9) / 10.0
