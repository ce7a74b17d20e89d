"""lf2-slurm: Snakemake's SLURM executor (snakemake-executor-plugin-slurm 2.8.0) with three
changes for a DAG of many short jobs. Everything else (submission, resources, status
commands, cancellation, logs, every ``slurm-*`` setting under the ``lf2-slurm-`` prefix) is
the upstream plugin's.

1. Status checks at most ``lf2-slurm-max-seconds-between-status-checks`` apart (default 5).
   Upstream adds 10 s to the wait after each check that saw no job finish, up to 180 s, so a
   job that ends while others run is noticed up to minutes late; every stage of the DAG
   waits for that.
2. Inside a SLURM job, the rules of the job run under Snakemake's local executor, in the one
   Snakemake process the job starts. Upstream runs each rule through ``srun`` and a further
   Snakemake process (its ``slurm-jobstep`` executor): about 1.8 s of start-up per rule, more
   than the evaluation it wraps. The job's CPUs, memory and GPUs are still those of its
   sbatch allocation (its cgroup); what is lost is one accounting step per rule in sacct.
   ``lf2-slurm-job-steps: true`` restores upstream's behaviour.
3. Upstream's efficiency report (``--lf2-slurm-efficiency-report``) is imported when it is
   written, not at start-up: its module imports pandas, 0.4 to 0.5 s of every Snakemake
   start-up (the one that submits and the one inside every SLURM job), because Snakemake
   imports every installed executor plugin to build its command line.

Measured in docs/performance.md ("SLURM overhead"); why and how to install in
docs/workflow.md ("Running on SLURM").
"""

import importlib
import sys
import types
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

UPSTREAM = "snakemake_executor_plugin_slurm"
EFFICIENCY_REPORT = f"{UPSTREAM}.efficiency_report"


def efficiency_report_module() -> types.ModuleType:
    """Upstream's efficiency-report module, imported now if only the stand-in is loaded."""
    module = sys.modules.get(EFFICIENCY_REPORT)
    if module is None or getattr(module, "lf2_stand_in", False):
        sys.modules.pop(EFFICIENCY_REPORT, None)
        module = importlib.import_module(EFFICIENCY_REPORT)
    return module


def create_efficiency_report(*args, **kwargs):
    """Upstream's ``create_efficiency_report``, its module (and pandas) imported on first use."""
    return efficiency_report_module().create_efficiency_report(*args, **kwargs)


def defer_efficiency_report() -> None:
    """Put a stand-in for upstream's efficiency-report module in ``sys.modules`` before
    upstream is imported (Snakemake imports plugins in name order, so lf2_slurm comes first):
    upstream's ``from .efficiency_report import create_efficiency_report`` then binds the
    forwarding function above instead of importing pandas. Nothing to do once upstream is
    loaded."""
    if UPSTREAM in sys.modules or EFFICIENCY_REPORT in sys.modules:
        return
    stand_in = types.ModuleType(EFFICIENCY_REPORT, "lf2-slurm's stand-in: imports on first use")
    stand_in.lf2_stand_in = True
    stand_in.create_efficiency_report = create_efficiency_report
    sys.modules[EFFICIENCY_REPORT] = stand_in


defer_efficiency_report()

from snakemake_executor_plugin_slurm import Executor as SlurmExecutor  # noqa: E402
from snakemake_executor_plugin_slurm import ExecutorSettings as SlurmExecutorSettings  # noqa: E402
from snakemake_executor_plugin_slurm import common_settings  # noqa: E402
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo  # noqa: E402

__all__ = ["Executor", "ExecutorSettings", "common_settings"]


@dataclass
class ExecutorSettings(SlurmExecutorSettings):
    max_seconds_between_status_checks: int = field(
        default=5,
        metadata={
            "help": "Longest wait in seconds between two status queries (squeue or "
            "sacct) of the active jobs. Upstream's wait grows by 10 s per query that "
            "saw no job finish, up to 180 s; this caps it.",
            "env_var": False,
            "required": False,
        },
    )
    job_steps: bool = field(
        default=False,
        metadata={
            "help": "Run each rule of a SLURM job as its own srun step with its own "
            "Snakemake process (upstream's slurm-jobstep executor) instead of all of "
            "them under the job's one Snakemake process.",
            "env_var": False,
            "required": False,
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_seconds_between_status_checks < 1:
            raise ValueError(
                "lf2-slurm-max-seconds-between-status-checks must be an integer >= 1, "
                f"got {self.max_seconds_between_status_checks!r}"
            )


class Executor(SlurmExecutor):
    def additional_general_args(self) -> str:
        if self.workflow.executor_settings.job_steps:
            return super().additional_general_args()
        return "--executor local --jobs 1"

    async def check_active_jobs(
        self, active_jobs: list[SubmittedJobInfo]
    ) -> AsyncGenerator[SubmittedJobInfo, None]:
        async for job in super().check_active_jobs(active_jobs):
            yield job
        cap = self.workflow.executor_settings.max_seconds_between_status_checks
        current = self.next_seconds_between_status_checks
        if current is not None and current > cap:
            self.next_seconds_between_status_checks = cap
