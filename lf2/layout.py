"""Where every artifact of the benchmark lives: the one home of every path.

Each path is a function of the params (``paths.data``, ``paths.runs``,
``paths.results``) and of (direction, row, seed)::

    <data>/<dataset>/{manifest.csv,meta.json}
    <runs>/<direction>/<row>/seed<seed>/{model.pt,state.pt,epochs.jsonl,params.yaml}
    <results>/metrics/<direction>/<row>/seed<seed>.json
    <results>/{table2.csv,table2.md,table1.csv}
    <results>/figures/<kind>.{png,pdf}
    logs/<job>.log, logs/benchmarks/<job>.tsv        (per Snakemake job)

``row`` is a Table II row or :data:`PRETRAIN_ROW` (source pre-training); the ``direct``
row has no run of its own: its checkpoint is the pre-training one of the same seed.
Fine-tuning with seed ``s`` starts from pre-training seed ``s`` (paired replicates).
The DAG (:mod:`lf2.workflow_dag`), the training stages, the report and the bench all
ask this module; a new artifact is one new function here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: the row name of source pre-training (a stage, not a Table II row)
PRETRAIN_ROW = "pretrain"
#: the Table II row that evaluates the pre-training checkpoint without fine-tuning
DIRECT_ROW = "direct"

#: files of a prepared dataset folder
MANIFEST_FILE = "manifest.csv"
META_FILE = "meta.json"
#: files of one run folder
MODEL_FILE = "model.pt"
STATE_FILE = "state.pt"
EPOCHS_FILE = "epochs.jsonl"
PARAMS_FILE = "params.yaml"

#: the figure kinds ``lf2 figures`` writes, one file per kind and format
FIGURE_KINDS = ("gradcam", "tsne", "cluster_consistency", "cmc", "training_curves", "intervals")
FIGURE_FORMATS = ("png", "pdf")
TABLE2_CSV, TABLE2_MD, TABLE1_CSV = "table2.csv", "table2.md", "table1.csv"
TABLE2_DIFFS_CSV, LEAK_CSV = "table2_diffs.csv", "leak.csv"
TABLE_FILES = (TABLE2_CSV, TABLE2_MD, TABLE1_CSV, TABLE2_DIFFS_CSV, LEAK_CSV)

#: Snakemake's per-job files, relative to the working directory (never tracked by git)
LOGS_DIR = "logs"
BENCHMARKS_DIR = "logs/benchmarks"


# --------------------------------------------------------------------------- seeds


def seeds(params: dict[str, Any]) -> list[int]:
    """The replicate seeds of every (direction, row): ``rows.seeds``, else ``[seed]``."""
    given = params.get("rows", {}).get("seeds")
    return [int(s) for s in given] if given else [int(params.get("seed", 0))]


def reference_seed(params: dict[str, Any]) -> int:
    """The seed whose runs the figures show (the first replicate)."""
    return seeds(params)[0]


def seed_dir(seed: int | str) -> str:
    """``seed<seed>``; ``seed`` may be a Snakemake wildcard such as ``{seed}``."""
    return f"seed{seed}"


# --------------------------------------------------------------------------- data


def data_dir(params: dict[str, Any], dataset: str) -> str:
    """The prepared dataset folder ``<data>/<dataset>`` (holds manifest.csv, meta.json)."""
    return join(params["paths"]["data"], dataset)


def manifest_path(params: dict[str, Any], dataset: str) -> str:
    return join(data_dir(params, dataset), MANIFEST_FILE)


def meta_path(params: dict[str, Any], dataset: str) -> str:
    return join(data_dir(params, dataset), META_FILE)


# --------------------------------------------------------------------------- runs


def run_row(row: str) -> str:
    """The row whose run folder holds ``row``'s checkpoint (``direct`` -> ``pretrain``)."""
    return PRETRAIN_ROW if row == DIRECT_ROW else row


def run_dir(params: dict[str, Any], direction: str, row: str, seed: int | str) -> str:
    """``<runs>/<direction>/<row>/seed<seed>``; ``row`` may be ``pretrain`` or ``direct``."""
    return join(params["paths"]["runs"], direction, run_row(row), seed_dir(seed))


def checkpoint_path(params: dict[str, Any], direction: str, row: str, seed: int | str) -> str:
    """Final checkpoint of a run; the ``direct`` row evaluates the pre-training one."""
    return join(run_dir(params, direction, row, seed), MODEL_FILE)


def state_path(params: dict[str, Any], direction: str, row: str, seed: int | str) -> str:
    return join(run_dir(params, direction, row, seed), STATE_FILE)


def epochs_path(params: dict[str, Any], direction: str, row: str, seed: int | str) -> str:
    return join(run_dir(params, direction, row, seed), EPOCHS_FILE)


def resolved_params_path(params: dict[str, Any], direction: str, row: str, seed: int | str) -> str:
    return join(run_dir(params, direction, row, seed), PARAMS_FILE)


def run_files(out: str | os.PathLike[str]) -> dict[str, Path]:
    """The files of the run whose final checkpoint is ``out`` (they live beside it)."""
    folder = Path(out).parent
    return {"dir": folder, "state": folder / STATE_FILE, "epochs": folder / EPOCHS_FILE,
            "params": folder / PARAMS_FILE}


# --------------------------------------------------------------------------- results


def metrics_dir(params: dict[str, Any]) -> str:
    return join(params["paths"]["results"], "metrics")


def metrics_path(params: dict[str, Any], direction: str, row: str, seed: int | str) -> str:
    """``<results>/metrics/<direction>/<row>/seed<seed>.json``."""
    return join(metrics_dir(params), direction, row, f"{seed_dir(seed)}.json")


def metrics_paths(params: dict[str, Any], direction: str, row: str) -> list[str]:
    """The metrics files of one (direction, row), one per seed, in :func:`seeds` order."""
    return [metrics_path(params, direction, row, s) for s in seeds(params)]


def table_paths(params: dict[str, Any]) -> list[str]:
    """``table2.csv`` (the one ``lf2 table --out`` names), ``table2.md``, ``table1.csv``,
    ``table2_diffs.csv`` and ``leak.csv``."""
    return [join(params["paths"]["results"], f) for f in TABLE_FILES]


def figures_dir(params: dict[str, Any]) -> str:
    return join(params["paths"]["results"], "figures")


def figure_paths(params: dict[str, Any]) -> list[str]:
    return [join(figures_dir(params), f"{k}.{ext}") for k in FIGURE_KINDS for ext in FIGURE_FORMATS]


def figure_path(out_dir: str | os.PathLike[str], kind: str, fmt: str) -> Path:
    return Path(out_dir) / f"{kind}.{fmt}"


# --------------------------------------------------------------------------- per-job files


def log_path(job: str) -> str:
    """Snakemake log of a job (``job`` is its name or a name pattern with wildcards)."""
    return join(LOGS_DIR, f"{job}.log")


def benchmark_path(job: str) -> str:
    """Snakemake's ``benchmark:`` file of a job (timings, memory), beside the logs."""
    return join(BENCHMARKS_DIR, f"{job}.tsv")


def bench_files(out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """What ``lf2 bench --out DIR`` writes: the results, their markdown, the partial file."""
    out = Path(out_dir)
    return {"json": out / "bench.json", "md": out / "bench.md", "partial": out / "bench.partial.json"}


# --------------------------------------------------------------------------- roots


def with_roots(params: dict[str, Any], *, data: str | os.PathLike[str] | None = None,
               runs: str | os.PathLike[str] | None = None,
               results: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """A shallow copy of ``params`` whose ``paths`` point at other roots (CLI overrides)."""
    paths = dict(params["paths"])
    for key, value in (("data", data), ("runs", runs), ("results", results)):
        if value is not None:
            paths[key] = str(value)
    return {**params, "paths": paths}


def join(*parts: str | int) -> str:
    """POSIX join that drops empty and ``.`` parts and trailing slashes (stable DAG paths)."""
    return "/".join(str(s).rstrip("/") for s in parts if str(s) not in ("", "."))
