"""What each Snakemake job asks a scheduler for, and whether it fits a SLURM partition.

The Snakefile (workflow/rules/resources.smk) takes every rule's threads, memory and
runtime from ``workflow.resources`` in the params file (defaults below) and its GPU count
from ``device`` (:func:`gpu_request`). Before anything is submitted with the SLURM executor,
:func:`check_fit` compares each job with its partition as ``sinfo`` reports it, because
SLURM leaves a job that can never run PENDING for ever (reasons ``PartitionConfig``,
``PartitionTimeLimit``) instead of refusing it.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lf2.layout import DIRECT_ROW

# Snakemake executor plugins that submit to SLURM: the project's profile uses lf2-slurm
# (workflow/executor: upstream's plugin with a capped status-check wait and no srun step
# per rule); upstream's own "slurm" gets the same GPU requests and fit check.
SLURM_EXECUTORS = frozenset({"slurm", "lf2-slurm"})


def is_slurm_executor(name: str | None) -> bool:
    """Whether a Snakemake executor plugin's name is one that submits jobs with sbatch."""
    return name in SLURM_EXECUTORS

# Sized for params/default.yaml (the synthetic benchmark on a CPU). params/paper.yaml
# sets its own; a params file overrides any of them under workflow.resources.<rule>.
# The threads of the torch rules follow the params' ``threads`` when it pins them (> 0):
# a job that runs one torch thread asks for one CPU, so ``-c2`` runs two such jobs at once.
DEFAULT_RESOURCES: dict[str, dict[str, int]] = {
    "prepare": {"threads": 1, "mem_mb": 2000, "runtime": 30},
    "pretrain": {"threads": 4, "mem_mb": 8000, "runtime": 120},
    "finetune": {"threads": 4, "mem_mb": 8000, "runtime": 240},
    "evaluate": {"threads": 2, "mem_mb": 8000, "runtime": 60},
    "table": {"threads": 1, "mem_mb": 2000, "runtime": 10},
    "figures": {"threads": 2, "mem_mb": 4000, "runtime": 30},
}

GPU_RULES = ("pretrain", "finetune", "evaluate")
#: the rules of the DAG, each of which may be a local rule (``workflow.local_rules``)
RULES = tuple(DEFAULT_RESOURCES)

# Cluster job groups (one group job = one cluster job, one Snakemake start-up for it):
# each fine-tuning with the evaluation of its checkpoint, each pre-training with the
# direct-transfer evaluation of its checkpoint, the tables with the figures. Groups span
# connected jobs only (no --group-components), so different rows still run side by side.
FINETUNE_GROUP = "trained"
PRETRAIN_GROUP = "pretrained"
REPORT_GROUP = "report"
_RULE_GROUPS = {"pretrain": PRETRAIN_GROUP, "finetune": FINETUNE_GROUP,
                "table": REPORT_GROUP, "figures": REPORT_GROUP}
#: rules whose command sets torch's thread count from the params' ``threads``
TORCH_RULES = (*GPU_RULES, "figures")


def job_requests(params: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Per rule: threads, mem_mb, runtime.

    The defaults, with the torch rules' threads taken from the params' ``threads`` when it
    is > 0 (0 leaves torch its own default, so the job asks for the default count), then
    overlaid with ``workflow.resources.<rule>``, which wins.
    """
    given = (params.get("workflow") or {}).get("resources") or {}
    pinned = int(params.get("threads") or 0)
    requests = {}
    for rule, base in DEFAULT_RESOURCES.items():
        own = {"threads": pinned} if pinned > 0 and rule in TORCH_RULES else {}
        requests[rule] = {**base, **own, **given.get(rule, {})}
    return requests


def job_group(rule: str, row: str | None, local_rules: Iterable[str]) -> str | None:
    """The cluster job group of a job of ``rule`` (``row``: its Table II row, for evaluate);
    None for a local rule (Snakemake runs a grouped rule as a cluster job) and for prepare.

    Both members of a group must be cluster jobs, or the group would hold one job and cost
    a cluster job anyway: an evaluation joins its training job's group only when neither
    rule is local.
    """
    local = set(local_rules)
    if rule in local:
        return None
    if rule == "evaluate":
        trained_by = "pretrain" if row == DIRECT_ROW else "finetune"
        return None if trained_by in local else _RULE_GROUPS[trained_by]
    if rule in ("table", "figures") and {"table", "figures"} & local:
        return None
    return _RULE_GROUPS.get(rule)


@functools.cache
def cluster_has_gpus() -> bool:
    """True when ``sinfo`` lists a GPU GRES on any partition (False without sinfo)."""
    if shutil.which("sinfo") is None:
        return False
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%G"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "gpu" in out


def gpu_request(device: str, executor: str | None = None) -> int:
    """GPUs a training/evaluation job asks for: ``cpu`` 0, ``cuda``/``cuda:N`` 1.

    ``auto``: with a SLURM executor (:data:`SLURM_EXECUTORS`), 1 only when the cluster has
    GPUs at all (so a CPU-only cluster runs it unedited); otherwise 1, the unit the ``gpu``
    resource counts when a local run bounds its concurrent GPU jobs (``--resources gpu=N``).
    """
    if device == "cpu":
        return 0
    if device == "auto" and is_slurm_executor(executor):
        return int(cluster_has_gpus())
    return 1


@dataclass(frozen=True)
class Partition:
    """What one SLURM partition offers a single job (from sinfo)."""

    name: str
    cpus: int
    mem_mb: int
    max_minutes: int | None  # None: no limit
    gpus: int
    default: bool = False


def parse_time_limit(text: str) -> int | None:
    """sinfo's %l (``infinite``, ``30``, ``1:00:00``, ``2-12:00:00``) in minutes."""
    text = text.strip()
    if text in ("infinite", "UNLIMITED", "n/a", ""):
        return None
    days, _, rest = text.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    if len(parts) == 1:  # minutes
        h, m, s = 0, parts[0], 0
    elif len(parts) == 2:  # minutes:seconds
        h, m, s = 0, parts[0], parts[1]
    else:
        h, m, s = parts[-3], parts[-2], parts[-1]
    return (int(days) if days else 0) * 1440 + h * 60 + m + (1 if s else 0)


def _gres_gpus(gres: str) -> int:
    """GPU count in a GRES string like ``gpu:a100:4(S:0-1),shard:8`` (0 when none)."""
    total = 0
    for item in gres.split(","):
        fields = item.split("(")[0].split(":")
        if fields[0] == "gpu":
            last = fields[-1]
            total += int(last) if len(fields) > 1 and last.isdigit() else 1
    return total


def parse_sinfo(text: str) -> dict[str, Partition]:
    """Partitions from ``sinfo -h -o '%P|%c|%m|%l|%G'``; a partition's largest node counts."""
    parts: dict[str, Partition] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, cpus, mem, limit, gres = (f.strip() for f in line.split("|"))
        default = name.endswith("*")
        name = name.rstrip("*")
        new = Partition(
            name,
            int(cpus.rstrip("+")),
            int(mem.rstrip("+")),
            parse_time_limit(limit),
            _gres_gpus(gres),
            default,
        )
        old = parts.get(name)
        if old is not None:
            new = Partition(
                name,
                max(old.cpus, new.cpus),
                max(old.mem_mb, new.mem_mb),
                old.max_minutes,
                max(old.gpus, new.gpus),
                old.default or default,
            )
        parts[name] = new
    return parts


def read_partitions() -> dict[str, Partition]:
    """The cluster's partitions, as ``sinfo`` reports them now."""
    out = subprocess.run(
        ["sinfo", "-h", "-o", "%P|%c|%m|%l|%G"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return parse_sinfo(out)


@dataclass(frozen=True)
class Request:
    """One job's request, as the SLURM executor will pass it to sbatch."""

    job: str
    partition: str | None
    threads: int
    mem_mb: int | None
    runtime: int | None
    gpus: int


def _job_name(job: Any) -> str:
    """The DAG's name of a Snakemake job (``finetune--A-to-B--lf2_m48--seed0``)."""
    from lf2.workflow_dag import job_name

    items = getattr(job.wildcards, "items", None)
    if items is not None:
        try:
            return job_name(job.rule.name, **dict(items()))
        except KeyError:  # a rule the DAG does not know (or other wildcards): plain join
            pass
    return "--".join([job.rule.name, *map(str, job.wildcards)])


def _request(name: str, job: Any) -> Request:
    res = job.resources
    return Request(
        name,
        res.get("slurm_partition"),
        int(job.threads),
        res.get("mem_mb"),
        res.get("runtime"),
        int(res.get("gpu", 0) or 0),
    )


def dag_requests(jobs: Iterable[Any], group_of: Any) -> list[Request]:
    """Requests of Snakemake's jobs as sbatch will get them: a group job once, with the
    group's resources (threads and memory of parallel members add up, runtimes of
    sequential ones too). ``group_of(job)`` is Snakemake's ``dag.get_job_group``."""
    out: list[Request] = []
    seen: set[int] = set()
    for job in jobs:
        if job.is_local:
            continue
        group = group_of(job)
        if group is None:
            out.append(_request(_job_name(job), job))
        elif id(group) not in seen:
            seen.add(id(group))
            members = ", ".join(sorted(_job_name(j) for j in group.jobs))
            out.append(_request(f"group {group.groupid} ({members})", group))
    return out


def misfits(requests: Iterable[Request], partitions: Mapping[str, Partition]) -> list[str]:
    """One line per request that its partition can never run (empty when all fit)."""
    default = next((p for p in partitions.values() if p.default), None)
    problems = []
    for r in requests:
        part = partitions.get(r.partition) if r.partition else default
        if part is None:
            known = ", ".join(sorted(partitions)) or "none"
            where = f"partition {r.partition!r}" if r.partition else "a default partition"
            problems.append(f"{r.job}: asks for {where}, which sinfo does not list ({known})")
            continue
        if r.threads > part.cpus:
            problems.append(
                f"{r.job}: {r.threads} threads > {part.cpus} CPUs per node in {part.name!r}"
            )
        if r.mem_mb is not None and r.mem_mb > part.mem_mb:
            problems.append(
                f"{r.job}: mem_mb={r.mem_mb} > {part.mem_mb} MB per node in {part.name!r}"
            )
        if r.runtime is not None and part.max_minutes is not None and r.runtime > part.max_minutes:
            problems.append(
                f"{r.job}: runtime={r.runtime} min > MaxTime {part.max_minutes} min of {part.name!r}"
            )
        if r.gpus > part.gpus:
            problems.append(f"{r.job}: {r.gpus} GPU(s) > {part.gpus} per node in {part.name!r}")
    return problems


def fit_report(problems: list[str]) -> str:
    """The error text for jobs that cannot fit (SLURM would leave them PENDING for ever)."""
    return (
        "these jobs can never run on their SLURM partition (SLURM would leave them PENDING "
        "for ever); lower workflow.resources.<rule> in the params file or pick a partition "
        "in workflow/profiles/slurm/config.yaml:\n  " + "\n  ".join(problems)
    )
