"""The pipeline's jobs, computed once from params: the Snakefile and ``lf2 dvc`` both use it.

Every job of the DAG (one dataset preparation per dataset, one pre-training per
direction and seed, one fine-tuning per direction, Table II row and seed, one evaluation
per direction, row and seed, the tables, the figures) is a :class:`Job` with its ``lf2`` command line, its input and
output files and the params keys it reads. The Snakefile's rules look their jobs up
here by wildcard; ``lf2 dvc`` writes one DVC stage per job. Paths and commands
therefore cannot drift between the two workflow managers; every path comes from
:mod:`lf2.layout`.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lf2 import layout
from lf2.config import lookup, row_spec, rows_for, trained_rows
from lf2.layout import PRETRAIN_ROW

_INPUT_KEYS = ("input.height", "input.width", "input.pad", "input.flip")
#: params keys (dotted) each stage reads; DVC tracks them, Snakemake's params trigger too.
#: ``threads`` changes floating-point reduction order (results), ``compile`` and ``adam``
#: the kernels.
#: tests/test_stage_params.py runs each stage on params holding only these keys (plus
#: :data:`UNTRACKED`): a stage that reads another key fails there.
STAGE_PARAMS: dict[str, tuple[str, ...]] = {
    "pretrain": ("seed", "precision", "threads", "compile", "adam", *_INPUT_KEYS, "model", "pretrain"),
    # evaluate.batch_size: the monitoring evaluation (finetune.eval_every) in epochs.jsonl
    "finetune": ("seed", "precision", "threads", "compile", "adam", *_INPUT_KEYS,
                 "input.random_erasing", "model", "finetune", "evaluate.batch_size"),
    "evaluate": (
        "precision",
        "threads",
        "input.height",
        "input.width",
        "model.test_feature",
        "model.flip_test",
        "evaluate",
    ),
    # + datasets.<ds>.kind per job: whether a direction is one of the paper's (real data);
    # seed: the run of each row without rows.seeds; finetune.eval_every / epochs: leak.csv
    "table": ("seed", "directions", "rows", "finetune.eval_every", "finetune.epochs"),
    "figures": ("seed", "threads", "directions", "rows", "input.height", "input.width", "model",
                "evaluate.batch_size"),
}

#: keys a stage may read that change where or how fast it runs, never what it computes
UNTRACKED = ("paths", "device", "input.cache", "input.workers", "workflow")

#: separator of the parts of a job name (DVC stage names allow only [A-Za-z0-9_-])
SEP = "--"
#: the wildcards of each rule, in the order they appear in job names
RULE_WILDCARDS: dict[str, tuple[str, ...]] = {
    "prepare": ("dataset",),
    "pretrain": ("direction", "seed"),
    "finetune": ("direction", "row", "seed"),
    "evaluate": ("direction", "row", "seed"),
    "table": (),
    "figures": (),
}


def name_pattern(rule: str) -> str:
    """Job-name pattern of a rule with Snakemake wildcards: ``finetune--{direction}--{row}--seed{seed}``."""
    parts = (layout.seed_dir("{seed}") if w == "seed" else f"{{{w}}}" for w in RULE_WILDCARDS[rule])
    return SEP.join((rule, *parts))


def log_pattern(rule: str) -> str:
    return layout.log_path(name_pattern(rule))


def benchmark_pattern(rule: str) -> str:
    return layout.benchmark_path(name_pattern(rule))


def job_name(rule: str, **wildcards: str) -> str:
    return name_pattern(rule).format(**wildcards)


@dataclass(frozen=True)
class Job:
    """One job of the DAG; ``name`` is its DVC stage name, log and benchmark file stem."""

    rule: str  # Snakemake rule = lf2 sub-command
    name: str
    args: str  # shell-quoted arguments after `lf2 <rule>`
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]  # the files Snakemake declares
    param_keys: tuple[str, ...]
    dvc_outs: tuple[tuple[str, dict[str, Any]], ...] = ()  # (path, DVC options)
    dvc_metrics: tuple[str, ...] = ()
    dvc_plots: tuple[str, ...] = ()
    dvc_deps: tuple[str, ...] = ()  # extra DVC-only deps (files Snakemake does not track)
    wildcards: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    gpu: bool = False

    @property
    def cmd(self) -> str:
        return f"lf2 {self.rule} {self.args}"

    @property
    def log(self) -> str:
        return log_pattern(self.rule).format(**self.wildcards)

    @property
    def benchmark(self) -> str:
        return benchmark_pattern(self.rule).format(**self.wildcards)


# --------------------------------------------------------------------------- paths


def final_targets(params: dict[str, Any]) -> list[str]:
    """What the ``all`` target builds: the tables and the figures."""
    return layout.table_paths(params) + layout.figure_paths(params)


def output_patterns(params: dict[str, Any]) -> dict[str, str]:
    """Snakemake output patterns per rule (wildcards in braces), from :mod:`lf2.layout`."""
    d, r, s = "{direction}", "{row}", "{seed}"
    return {
        "prepare": layout.manifest_path(params, "{dataset}"),
        "prepare_meta": layout.meta_path(params, "{dataset}"),
        "pretrain": layout.checkpoint_path(params, d, PRETRAIN_ROW, s),
        "finetune": layout.checkpoint_path(params, d, r, s),
        "evaluate": layout.metrics_path(params, d, r, s),
    }


# --------------------------------------------------------------------------- jobs


def used_datasets(params: dict[str, Any]) -> list[str]:
    """Datasets some direction uses, in order of first use."""
    out: list[str] = []
    for d in params["directions"]:
        for name in (d["source"], d["target"]):
            if name not in out:
                out.append(name)
    return out


def finetune_rows(params: dict[str, Any]) -> list[str]:
    """Table II rows that have their own fine-tuning run (all but ``direct``)."""
    return trained_rows(params)


def build_jobs(params: dict[str, Any], params_file: str) -> list[Job]:
    """All jobs of the DAG for target ``all``, in a topological order.

    Every (direction, row, seed) is a job, pre-training included; the job passes its seed
    to the ``lf2`` command (``--set seed=<s>``) so the run's params.yaml records it, and
    fine-tuning seed ``s`` starts from pre-training seed ``s``.
    """
    pf = _q(params_file)
    L = layout
    jobs: list[Job] = [_prepare_job(params, params_file, ds) for ds in used_datasets(params)]
    for d in params["directions"]:
        name, src, tgt = d["name"], d["source"], d["target"]
        tgt_inputs = (L.manifest_path(params, tgt), L.meta_path(params, tgt))
        for seed in L.seeds(params):
            sw = {"direction": name, "seed": str(seed)}
            seed_arg = f"--set seed={seed}"
            ckpt = L.checkpoint_path(params, name, PRETRAIN_ROW, seed)
            jobs.append(
                Job(
                    rule="pretrain",
                    name=job_name("pretrain", **sw),
                    args=f"--params {pf} {seed_arg} --source {_q(L.data_dir(params, src))} "
                    f"--target {_q(L.data_dir(params, tgt))} --out {_q(ckpt)} --resume",
                    inputs=(L.manifest_path(params, src), L.meta_path(params, src), *tgt_inputs),
                    outputs=(ckpt,),
                    param_keys=STAGE_PARAMS["pretrain"],
                    dvc_outs=_run_outs(params, name, PRETRAIN_ROW, seed),
                    wildcards=sw,
                    gpu=True,
                )
            )
            for row in finetune_rows(params):
                spec = row_spec(params, row)
                out = L.checkpoint_path(params, name, row, seed)
                jobs.append(
                    Job(
                        rule="finetune",
                        name=job_name("finetune", row=row, **sw),
                        args=f"--params {pf} {seed_arg} --variant {spec['variant']} "
                        f"--clusters {spec['clusters']} --init {_q(ckpt)} "
                        f"--target {_q(L.data_dir(params, tgt))} --out {_q(out)} "
                        f"--row {row} --resume",
                        inputs=(ckpt, *tgt_inputs),
                        outputs=(out,),
                        param_keys=STAGE_PARAMS["finetune"],
                        dvc_outs=_run_outs(params, name, row, seed),
                        wildcards={**sw, "row": row},
                        gpu=True,
                    )
                )
            for row in rows_for(params):
                ck = L.checkpoint_path(params, name, row, seed)
                met = L.metrics_path(params, name, row, seed)
                jobs.append(
                    Job(
                        rule="evaluate",
                        name=job_name("evaluate", row=row, **sw),
                        args=f"--params {pf} --checkpoint {_q(ck)} "
                        f"--manifest {_q(L.data_dir(params, tgt))} --out {_q(met)}",
                        inputs=(ck, *tgt_inputs),
                        outputs=(met,),
                        param_keys=STAGE_PARAMS["evaluate"],
                        dvc_metrics=(met,),
                        wildcards={**sw, "row": row},
                        gpu=True,
                    )
                )
    metrics = [
        m for d in params["directions"] for r in rows_for(params)
        for m in L.metrics_paths(params, d["name"], r)
    ]
    tables = L.table_paths(params)
    trained = [
        (d["name"], r, s)
        for d in params["directions"]
        for s in L.seeds(params)
        for r in [PRETRAIN_ROW, *finetune_rows(params)]
    ]
    ckpts = [L.checkpoint_path(params, *t) for t in trained]
    epochs = [L.epochs_path(params, *t) for t in trained]
    jobs.append(
        Job(
            rule="table",
            name=job_name("table"),
            args=f"--params {pf} --out {_q(tables[0])}",
            inputs=tuple(metrics),
            outputs=tuple(tables),
            param_keys=(*STAGE_PARAMS["table"],
                        *(f"datasets.{ds}.kind" for ds in used_datasets(params))),
            dvc_outs=tuple((t, {"cache": False}) for t in tables),
            dvc_deps=tuple(e for e, t in zip(epochs, trained, strict=True) if t[1] != PRETRAIN_ROW),  # leak.csv
        )
    )
    manifests = [L.manifest_path(params, ds) for ds in used_datasets(params)]
    figs = L.figure_paths(params)
    jobs.append(
        Job(
            rule="figures",
            name=job_name("figures"),
            args=f"--params {pf} --out {_q(L.figures_dir(params))}",
            inputs=tuple(manifests + ckpts + metrics),
            outputs=tuple(figs),
            param_keys=STAGE_PARAMS["figures"],
            dvc_outs=tuple((f, {"cache": False}) for f in figs if not f.endswith(".png")),
            dvc_plots=tuple(f for f in figs if f.endswith(".png")),
            dvc_deps=tuple(epochs),
        )
    )
    _check_unique(jobs)
    return jobs


def _prepare_job(params: dict[str, Any], params_file: str, ds: str) -> Job:
    kind = params["datasets"][ds]["kind"]
    out = layout.data_dir(params, ds)
    # every option (root with ${VAR} expanded, cuhk03_type, synthetic sizes) comes from
    # datasets.<ds> in the params file: no machine-specific path in dvc.yaml
    args = f"{kind} --params {_q(params_file)} --dataset {_q(ds)} --out {_q(out)}"
    return Job(
        rule="prepare",
        name=job_name("prepare", dataset=ds),
        args=args,
        inputs=(),
        outputs=(layout.manifest_path(params, ds), layout.meta_path(params, ds)),
        param_keys=(f"datasets.{ds}",),
        dvc_outs=((out, {"cache": True}),),
        wildcards={"dataset": ds},
    )


def _run_outs(params: dict[str, Any], direction: str, row: str, seed: int) -> tuple[tuple[str, dict], ...]:
    # epochs.jsonl is appended epoch by epoch and must survive a resumed run: persist
    return (
        (layout.checkpoint_path(params, direction, row, seed), {"cache": True}),
        (layout.epochs_path(params, direction, row, seed), {"cache": False, "persist": True}),
    )


def _check_unique(jobs: list[Job]) -> None:
    seen: dict[str, str] = {}
    for job in jobs:
        for path in (job.name, *job.outputs):
            if path in seen:
                raise ValueError(f"two jobs share {path!r} ({seen[path]} and {job.name})")
            seen[path] = job.name


# --------------------------------------------------------------------------- lookups


def jobs_for(jobs: list[Job], target: str) -> list[Job]:
    """The jobs of ``jobs`` that building ``target`` (an output path) needs, in the order of
    ``jobs`` (topological for :func:`build_jobs`): what Snakemake runs for it on an empty tree."""
    producer = {out: job for job in jobs for out in job.outputs}
    if target not in producer:
        raise KeyError(f"no job writes {target!r}")
    needed: set[str] = set()
    todo = [target]
    while todo:
        job = producer.get(todo.pop())
        if job is not None and job.name not in needed:
            needed.add(job.name)
            todo.extend(job.inputs)
    return [job for job in jobs if job.name in needed]



def job_index(jobs: list[Job]) -> dict[tuple[str, tuple[tuple[str, str], ...]], Job]:
    """Jobs by (rule, sorted wildcards), the key a Snakemake input function has."""
    return {(j.rule, _wkey(j.wildcards)): j for j in jobs}


def find_job(index: dict, rule: str, wildcards: Any) -> Job:
    """The job of ``rule`` for Snakemake ``wildcards`` (a Namedlist or a dict)."""
    items = dict(wildcards.items()) if hasattr(wildcards, "items") else dict(wildcards)
    key = (rule, _wkey(items))
    if key not in index:
        raise KeyError(f"no {rule} job for wildcards {items}")
    return index[key]


def _wkey(w: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(w.items()))


def param_values(params: dict[str, Any], keys: tuple[str, ...]) -> str:
    """The values of ``keys`` as canonical JSON (for Snakemake's params rerun trigger)."""
    return json.dumps({k: lookup(params, k) for k in keys}, sort_keys=True, default=str)


def relative_params_file(path: str | os.PathLike[str], workdir: str | os.PathLike[str]) -> str:
    """``path`` relative to ``workdir`` when it lies inside it, else absolute (POSIX form)."""
    p = Path(path).absolute()
    try:
        return p.relative_to(Path(workdir).absolute()).as_posix()
    except ValueError:
        return p.as_posix()


def _q(value: str) -> str:
    return shlex.quote(str(value))
