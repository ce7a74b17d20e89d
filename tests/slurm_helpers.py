"""What the tests on a real SLURM share: whether a cluster is there, the profile with its
site values filled in, the environment Snakemake runs in, and cleaning up a hung run.

A test module needing the cluster sets ``pytestmark = cluster_marks()``: it is skipped
with the reason when there is none, and fails instead under ``LF2_REQUIRE_SLURM=1`` (CI).
"""

from __future__ import annotations

import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SNAKEMAKE = VENV_BIN / "snakemake"
PROFILE = ROOT / "workflow" / "profiles" / "slurm" / "config.yaml"
PLUGIN_MODULE = "snakemake_executor_plugin_lf2_slurm"  # how Snakemake's registry finds it


def plugin_visible() -> bool:
    """Whether Snakemake's plugin registry (pkgutil.iter_modules) finds the lf2-slurm executor:
    an editable install imports but stays invisible to it."""
    return PLUGIN_MODULE in {m.name for m in pkgutil.iter_modules()}


def no_cluster_reason() -> str | None:
    """Why the SLURM tests cannot run here, or None when they can."""
    if not plugin_visible():
        return (
            f"Snakemake cannot find the lf2-slurm executor ({PLUGIN_MODULE}): install it "
            "non-editable with pip install ./workflow/executor (Snakemake's plugin registry "
            "does not see editable installs)"
        )
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no SLURM client (sinfo/sbatch) on PATH; .ci/slurm/setup.sh stands up a cluster"
    try:
        res = subprocess.run(
            ["sinfo", "-h", "-o", "%P %T"], capture_output=True, text=True, timeout=30, check=False
        )
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 30 s"
    if res.returncode != 0 or "idle" not in res.stdout and "mix" not in res.stdout:
        return f"no idle SLURM node (sinfo: {(res.stdout + res.stderr).strip()[:200]!r})"
    return None


def cluster_marks() -> list:
    """``pytestmark`` of a module that needs the cluster (raises under LF2_REQUIRE_SLURM=1)."""
    reason = no_cluster_reason()
    if reason and os.environ.get("LF2_REQUIRE_SLURM") == "1":
        raise RuntimeError(f"LF2_REQUIRE_SLURM=1 but the SLURM test cannot run: {reason}")
    return [
        pytest.mark.slow,
        pytest.mark.skipif(reason is not None, reason=f"no SLURM cluster: {reason}"),
    ]


def default_partition() -> str:
    out = subprocess.run(
        ["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, check=True
    ).stdout.split()
    return next((p.rstrip("*") for p in out if p.endswith("*")), out[0])


def write_profile(dest: Path, partition: str) -> Path:
    """The project's SLURM profile at ``dest``, its site values (the partitions) filled in."""
    text = PROFILE.read_text()
    assert "<cpu-partition>" in text and "<gpu-partition>" in text, "site placeholders moved"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text.replace("<cpu-partition>", partition).replace("<gpu-partition>", partition))
    return dest


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = os.pathsep.join([str(VENV_BIN), e.get("PATH", "")])
    e.pop("CUDA_VISIBLE_DEVICES", None)
    return e


def cancel_jobs_under(work: Path) -> None:
    """scancel the SLURM jobs whose working directory is ``work`` (a hung run's)."""
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i %Z"], capture_output=True, text=True, check=False
    ).stdout
    jobs = [line.split()[0] for line in out.splitlines() if line.split()[1:] == [str(work)]]
    if jobs:
        subprocess.run(["scancel", *jobs], check=False)
