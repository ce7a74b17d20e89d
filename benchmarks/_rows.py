"""One (direction, row, seed) of a study, run in this process through the DAG's own jobs.

``benchmarks/tune_synthetic.py`` (validation targets) and ``benchmarks/default_study.py``
(test targets) measure the same rows. Each row runs the jobs
:func:`lf2.workflow_dag.build_jobs` gives the Snakemake rules and ``lf2 dvc``: ``lf2
prepare``, ``lf2 pretrain``, ``lf2 finetune`` (every row but ``direct``) and ``lf2
evaluate``, with the same arguments, through :func:`lf2.cli.main`; every path comes from
:mod:`lf2.layout`. A row of a study is a variant (:data:`ROWS`); a variant with a row per
M_t runs at ``rows.ablation_clusters``; ``supervised`` is the DAG's supervised variant
(fine-tuning with the target's true labels).

Only the roots (``paths.data``, ``paths.runs``, ``paths.results``) are this module's: they
lie under the workspace, keyed by the values of the params keys the stages read
(:data:`lf2.workflow_dag.STAGE_PARAMS`), so runs that agree on them share files and a
changed value never finds a stale one. Source pre-training has a root of its own keyed by
the pretrain stage alone (and the target's dataset only with ``pretrain.target_bn``): the
candidates that differ after it, and a direction's validation and test studies, share it;
the row's layout path links to it. A job whose outputs exist is not run again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lf2 import layout
from lf2.config import apply_overrides, dump_params, load_params, row_spec, validate_params
from lf2.errors import LF2Error
from lf2.train.variants import variant_class
from lf2.workflow_dag import STAGE_PARAMS, Job, build_jobs, jobs_for, param_values

#: the rows of the studies, in table order: variant names
ROWS = ("direct", "baseline", "no_fm", "lf2", "supervised")


def dag_row(params: dict[str, Any], name: str) -> str:
    """The DAG's Table II row of study row ``name`` (``lf2`` -> ``lf2_m<rows.ablation_clusters>``);
    ParamsError when these params do not run it."""
    cls = variant_class(name)
    row = cls.row_name(params["rows"]["ablation_clusters"] if cls.per_clusters else None)
    row_spec(params, row)
    return row


def _key(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _stage_values(params: dict[str, Any], stage: str) -> str:
    """What a stage reads, but the seed: the layout puts the seed in the path."""
    return param_values(params, tuple(k for k in STAGE_PARAMS[stage] if k != "seed"))


@dataclass(frozen=True)
class Link:
    """The row's layout path of the pre-training checkpoint, pointing at the shared one."""

    src: str
    dst: str


@dataclass(frozen=True)
class RowPlan:
    steps: tuple[Job | Link, ...]  # in run order
    metrics: str                   # the evaluate job's metrics JSON
    trains: str                    # the job whose time is the row's training time


class Workspace:
    """The roots of a study's datasets, runs and metrics, and the params files of its jobs."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self.root.mkdir(parents=True, exist_ok=True)

    def _params_file(self, params: dict[str, Any]) -> str:
        path = self.root / "params" / f"{_key(params)}.yaml"
        if not path.is_file():
            dump_params(params, path)
        return str(path)

    def plan(self, params: dict[str, Any], direction: str, row: str, seed: int) -> RowPlan:
        """The steps that measure study row ``row`` of ``direction`` at ``seed``."""
        d = next((x for x in params["directions"] if x["name"] == direction), None)
        if d is None:
            raise LF2Error(f"params: no direction {direction!r}; expected one of "
                           f"{', '.join(x['name'] for x in params['directions'])}")
        one = validate_params(apply_overrides({**params, "directions": [d]},
                                              [f"seed={seed}", f"rows.seeds=[{seed}]"]))
        row = dag_row(one, row)
        ds = one["datasets"]
        pre_key = _key([_stage_values(one, "pretrain"), ds[d["source"]],
                        ds[d["target"]] if one["pretrain"]["target_bn"] else None])
        row_key = _key([pre_key, _stage_values(one, "finetune"), _stage_values(one, "evaluate"),
                        ds[d["target"]]])
        data = self.root / "data" / _key([[n, ds[n]] for n in (d["source"], d["target"])])
        pre = layout.with_roots(one, data=data, runs=self.root / "runs" / f"pre-{pre_key}")
        mine = layout.with_roots(one, data=data, runs=self.root / "runs" / row_key,
                                 results=self.root / "results" / row_key)
        shared = layout.checkpoint_path(pre, direction, layout.PRETRAIN_ROW, seed)
        linked = layout.checkpoint_path(mine, direction, layout.PRETRAIN_ROW, seed)
        metrics = layout.metrics_path(mine, direction, row, seed)
        first = jobs_for(build_jobs(pre, self._params_file(pre)), shared)
        rest = [j for j in jobs_for(build_jobs(mine, self._params_file(mine)), metrics)
                if j.rule not in ("prepare", "pretrain")]
        trains = first[-1] if row == layout.DIRECT_ROW else rest[0]
        return RowPlan(steps=(*first, Link(shared, linked), *rest), metrics=metrics, trains=trains.name)


def run_job(job: Job) -> None:
    """Run one DAG job in this process, as its rule's shell command would."""
    from lf2.cli import main

    rc = main([job.rule, *shlex.split(job.args)])
    if rc:
        raise LF2Error(f"{job.cmd}: exit status {rc} (its error is printed above)")


def run_plan(plan: RowPlan, runner: Callable[[Job], None] | None = None) -> float:
    """Run the steps whose outputs are missing with ``runner`` (default :func:`run_job`); returns
    the seconds of ``plan.trains`` (0 when it was done before)."""
    runner = runner or run_job
    train_s = 0.0
    for step in plan.steps:
        if isinstance(step, Link):
            dst = Path(step.dst)
            if not dst.is_symlink():
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.symlink_to(step.src)
            continue
        if all(Path(out).is_file() for out in step.outputs):
            continue
        t0 = time.perf_counter()
        runner(step)
        if step.name == plan.trains:
            train_s = time.perf_counter() - t0
    return train_s


def run_row(ws: Workspace, params: dict[str, Any], direction: str, row: str, seed: int,
            runner: Callable[[Job], None] | None = None) -> dict[str, Any]:
    """mAP and Rank-1 (percent), the query count and the training seconds of one row."""
    plan = ws.plan(params, direction, row, seed)
    train_s = run_plan(plan, runner)
    metrics = json.loads(Path(plan.metrics).read_text())
    return {"mAP": 100 * float(metrics["mAP"]), "rank1": 100 * float(metrics["rank1"]),
            "num_query": int(metrics["num_query"]), "train_s": round(train_s, 1)}


# --------------------------------------------------------------------------- the JSON-lines log


def read_log(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []


def is_current(rec: dict[str, Any]) -> bool:
    """False for a supervised record of the old definition (pre-training on the target's
    labelled split, logged without ``dag_row``): a run measures it again."""
    return rec["row"] != "supervised" or "dag_row" in rec


def done_keys(log: Path, fields: Iterable[str] = ()) -> set[tuple]:
    """(*fields, direction, row, seed) of every current record of ``log``."""
    names = (*fields, "direction", "row", "seed")
    return {tuple(r[k] for k in names) for r in read_log(log) if is_current(r)}


def run_seed(ws: Workspace, params: dict[str, Any], seed: int, rows: list[str], log: Path,
             done: set[tuple], directions: list[str] | None = None, fields: dict[str, Any] | None = None,
             key_fields: tuple[str, ...] = (),
             retarget: Callable[[dict, dict], dict] | None = None) -> None:
    """Run every (direction, row) of ``params`` at ``seed`` that ``done`` lacks and append
    one JSON line each to ``log``: ``fields``, then direction, row, dag_row, seed, the results.
    ``retarget(params, direction)`` gives the params a direction runs on (default: ``params``)."""
    fields = fields or {}
    for d in params["directions"]:
        if directions and d["name"] not in directions:
            continue
        todo = [r for r in rows if (*(fields[k] for k in key_fields), d["name"], r, seed) not in done]
        if not todo:
            continue
        p = retarget(params, d) if retarget else params
        for row in todo:
            rec = {**fields, "direction": d["name"], "row": row, "dag_row": dag_row(p, row), "seed": seed,
                   **run_row(ws, p, d["name"], row, seed)}
            with log.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")
            print(json.dumps(rec), flush=True)


def add_study_arguments(ap: argparse.ArgumentParser, log_name: str, set_help: str) -> None:
    """The options both studies take; ``log_name`` is the log's file name under ``--work``
    (:func:`study_args` resolves it)."""
    ap.set_defaults(log_name=log_name)
    root = Path(__file__).resolve().parents[1]
    ap.add_argument("--params", default=str(root / "params/default.yaml"))
    ap.add_argument("--work", default="/tmp/lf2-tune", help="datasets and checkpoints (reused)")
    ap.add_argument("--log", default=None, help=f"JSON lines of results (default: <work>/{log_name})")
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--directions", nargs="*", default=None, help="direction names (default: all)")
    ap.add_argument("--rows", nargs="*", default=list(ROWS), choices=ROWS)
    ap.add_argument("--set", dest="overrides", action="append", default=[], help=set_help)
    ap.add_argument("--summary", action="store_true", help="print the table of --log and exit")


def study_args(ap: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parsed options with ``work`` and ``log`` as paths and, unless ``--summary``, ``base``: the
    params file with the ``--set`` overrides (validated per run, after a candidate's own)."""
    args = ap.parse_args(argv)
    args.work = Path(args.work)
    args.log = Path(args.log) if args.log else args.work / args.log_name
    if not args.summary:
        args.base = apply_overrides(load_params(args.params), args.overrides)
    return args


def stats_cell(values: list[float]) -> str:
    """``mean ± std [Student-t 95%]``, or the mean and why there is no interval."""
    from lf2.report.stats import NO_INTERVAL, summarize

    st = summarize(values)
    if st.n < 2:
        return f"{st.mean:.1f} ({NO_INTERVAL})"
    return f"{st.mean:.1f} ± {st.std:.1f} [{st.ci_low:.1f}, {st.ci_high:.1f}]"
