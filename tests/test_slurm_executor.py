"""The lf2-slurm executor (workflow/executor) without a cluster: its two settings, the cap
on the wait between status checks, what a SLURM job runs its rules with, and the deferred
import of upstream's efficiency report.

Upstream's submission and status parsing are exercised on a real cluster by
tests/test_slurm.py and tests/test_slurm_failures.py (in CI)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
import yaml

from tests.slurm_helpers import PLUGIN_MODULE, PROFILE, plugin_visible

lf2_slurm_executor = pytest.importorskip(
    PLUGIN_MODULE, reason="the lf2-slurm executor is not installed (pip install ./workflow/executor)"
)
upstream = pytest.importorskip("snakemake_executor_plugin_slurm")


def test_snakemake_registry_can_find_the_plugin():
    assert plugin_visible()


def test_settings_extend_upstreams():
    settings = lf2_slurm_executor.ExecutorSettings()
    assert isinstance(settings, upstream.ExecutorSettings)
    assert settings.max_seconds_between_status_checks == 5
    assert settings.job_steps is False
    assert settings.status_command == upstream.ExecutorSettings().status_command


@pytest.mark.parametrize("bad", [0, -3])
def test_a_cap_below_one_second_is_refused_with_the_setting_named(bad):
    with pytest.raises(ValueError, match="lf2-slurm-max-seconds-between-status-checks"):
        lf2_slurm_executor.ExecutorSettings(max_seconds_between_status_checks=bad)


def executor_with(**settings) -> lf2_slurm_executor.Executor:
    """An Executor whose __init__ (which talks to SLURM) is skipped: only its settings."""
    ex = object.__new__(lf2_slurm_executor.Executor)
    ex.workflow = SimpleNamespace(executor_settings=lf2_slurm_executor.ExecutorSettings(**settings))
    return ex


def test_a_slurm_job_runs_its_rules_in_its_own_snakemake_process():
    assert executor_with().additional_general_args() == "--executor local --jobs 1"


def test_job_steps_restore_upstreams_srun_step_per_rule():
    args = executor_with(job_steps=True).additional_general_args()
    assert args.startswith("--executor slurm-jobstep --jobs 1")


def run_check(ex, upstream_wait: int, jobs: list) -> list:
    """check_active_jobs with upstream's replaced by one that sets its next wait."""

    async def fake_upstream(self, active_jobs):
        self.next_seconds_between_status_checks = upstream_wait
        for job in active_jobs:
            yield job

    async def collect():
        return [job async for job in ex.check_active_jobs(jobs)]

    original = upstream.Executor.check_active_jobs
    upstream.Executor.check_active_jobs = fake_upstream
    try:
        return asyncio.run(collect())
    finally:
        upstream.Executor.check_active_jobs = original


@pytest.mark.parametrize(
    ("cap", "upstream_wait", "expected"),
    [(5, 180, 5), (5, 40, 5), (5, 3, 3), (30, 50, 30), (30, 11, 11)],
)
def test_the_wait_between_status_checks_is_capped(cap, upstream_wait, expected):
    ex = executor_with(max_seconds_between_status_checks=cap)
    still_running = run_check(ex, upstream_wait, ["job-a", "job-b"])
    assert still_running == ["job-a", "job-b"]  # upstream's answer passes through unchanged
    assert ex.next_seconds_between_status_checks == expected


def test_the_profile_uses_lf2_slurm_with_its_prefixed_settings():
    profile = yaml.safe_load(PROFILE.read_text())
    assert profile["executor"] == "lf2-slurm"
    fields = set(lf2_slurm_executor.ExecutorSettings.__dataclass_fields__)
    for key in (k for k in profile if k.startswith("lf2-slurm-")):
        assert key.removeprefix("lf2-slurm-").replace("-", "_") in fields, key
    assert profile["lf2-slurm-status-command"] == "squeue"


def test_the_efficiency_report_and_pandas_load_only_when_a_report_is_written():
    # in a fresh interpreter: this one may have imported upstream (and pandas) already
    code = textwrap.dedent(
        f"""
        import sys
        import {PLUGIN_MODULE} as lf2_slurm
        import snakemake_executor_plugin_slurm as upstream
        assert "pandas" not in sys.modules, "pandas imported at start-up"
        assert upstream.create_efficiency_report is lf2_slurm.create_efficiency_report
        real = lf2_slurm.efficiency_report_module()
        assert "pandas" in sys.modules and hasattr(real, "parse_sacct_data"), real
        assert sys.modules[lf2_slurm.EFFICIENCY_REPORT] is real
        assert lf2_slurm.efficiency_report_module() is real  # imported once
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr


def test_upstream_loaded_first_keeps_its_own_report():
    code = textwrap.dedent(
        f"""
        import snakemake_executor_plugin_slurm as upstream
        import snakemake_executor_plugin_slurm.efficiency_report as real
        import {PLUGIN_MODULE} as lf2_slurm
        assert upstream.create_efficiency_report is real.create_efficiency_report
        assert lf2_slurm.efficiency_report_module() is real
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
