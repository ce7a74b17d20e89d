"""The SLURM profile on a real cluster: the metrics of a local run, a cancelled job recovered.

Needs a running SLURM (``sinfo`` answers) and snakemake-executor-plugin-slurm; on a
single node, because the test finds a job's SLURM id through /proc. ``.ci/slurm/setup.sh``
stands one up; ``.ci/run`` does so and sets ``LF2_REQUIRE_SLURM=1``, which turns the skip
into a failure, so CI cannot pass without running this. The DAG is the direct-transfer and
baseline metrics of one direction of params/smoke.yaml (6 jobs), run twice from the same
files: locally (``-c2``) and through ``workflow/profiles/slurm`` with only its site values
(the partitions) filled in; the metrics (with the checkpoint's sha256) must be equal.
During the SLURM run one fine-tuning job is cancelled (``scancel``) as soon as its first
resume state exists; Snakemake must notice, resubmit it, and the job must resume.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from lf2 import layout
from lf2 import workflow_dag as dag
from lf2.config import load_params

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SNAKEMAKE = VENV_BIN / "snakemake"
DIRECTION = "A-to-B"
CANCEL_ROW = "baseline"
ROWS = ("direct", CANCEL_ROW)


# the reduced DAG: differences from params/smoke.yaml (lf2.config `extends`)
CI_PARAMS = f"""\
extends: smoke.yaml
threads: 1                # the same arithmetic inside and outside SLURM
directions:
  - {{name: {DIRECTION}, source: synth_a, target: synth_b}}
finetune:
  epochs: 3               # time to cancel after the first resume state
"""


def ci_params() -> dict:
    """The reduced params, resolved (written beside params/smoke.yaml in a temp dir)."""
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(ROOT / "params", Path(tmp) / "params")
        (Path(tmp) / "params" / "ci.yaml").write_text(CI_PARAMS)
        return load_params(Path(tmp) / "params" / "ci.yaml")


CI = ci_params()
SEED = layout.reference_seed(CI)
TARGETS = [layout.metrics_path(CI, DIRECTION, row, SEED) for row in ROWS]
RUN_LIMIT_S = 900  # a SLURM run that takes longer is hanging (the issue: it never ended)


def _no_cluster_reason() -> str | None:
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e .[dev])"
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


_REASON = _no_cluster_reason()
if _REASON and os.environ.get("LF2_REQUIRE_SLURM") == "1":
    raise RuntimeError(f"LF2_REQUIRE_SLURM=1 but the SLURM test cannot run: {_REASON}")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(_REASON is not None, reason=f"no SLURM cluster: {_REASON}"),
]


def default_partition() -> str:
    out = subprocess.run(
        ["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, check=True
    ).stdout.split()
    return next((p.rstrip("*") for p in out if p.endswith("*")), out[0])


def workcopy(dest: Path, partition: str) -> Path:
    """Workflow files, the reduced params, and the profile with its site values filled in."""
    dest.mkdir()
    shutil.copy(ROOT / "Snakefile", dest)
    shutil.copytree(ROOT / "workflow", dest / "workflow")
    shutil.copytree(ROOT / "params", dest / "params")
    (dest / "params" / "ci.yaml").write_text(CI_PARAMS)
    profile = dest / "workflow" / "profiles" / "slurm" / "config.yaml"
    text = profile.read_text()
    assert "<cpu-partition>" in text and "<gpu-partition>" in text, "site placeholders moved"
    text = text.replace("<cpu-partition>", partition).replace("<gpu-partition>", partition)
    profile.write_text(text)
    return dest


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = os.pathsep.join([str(VENV_BIN), e.get("PATH", "")])
    e.pop("CUDA_VISIBLE_DEVICES", None)
    return e


def on_slurm(work: Path, *extra: str, timeout: int) -> subprocess.CompletedProcess:
    """Snakemake on TARGETS through the SLURM profile, in ``work``."""
    cmd = [str(SNAKEMAKE), *TARGETS, "--profile", "workflow/profiles/slurm"]
    cmd += ["--configfile", "params/ci.yaml", *extra]
    return subprocess.run(cmd, cwd=work, env=env(), capture_output=True, text=True, timeout=timeout)


def slurm_job_of(argv_words: list[str]) -> str | None:
    """SLURM_JOB_ID of the running process whose command line holds all of argv_words."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv]
        if all(w in words for w in argv_words):
            for item in environ:
                if item.startswith(b"SLURM_JOB_ID="):
                    return item.split(b"=", 1)[1].decode()
    return None


def cancel_after_first_state(work: Path, done: threading.Event, record: dict) -> None:
    """scancel the fine-tuning job of CANCEL_ROW once its state.pt exists (once only)."""
    state = work / layout.state_path(CI, DIRECTION, CANCEL_ROW, SEED)
    while not done.is_set():
        if state.exists():
            job = slurm_job_of(["finetune", "--row", CANCEL_ROW])
            if job:
                subprocess.run(["scancel", job], check=True)
                record["job"] = job
                record["epochs_before"] = _epochs(work)
                return
        time.sleep(0.1)


def cancel_jobs_under(work: Path) -> None:
    """scancel the SLURM jobs whose working directory is ``work`` (a hung run's)."""
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i %Z"], capture_output=True, text=True, check=False
    ).stdout
    jobs = [line.split()[0] for line in out.splitlines() if line.split()[1:] == [str(work)]]
    if jobs:
        subprocess.run(["scancel", *jobs], check=False)


def _epochs(work: Path) -> int:
    log = work / layout.epochs_path(CI, DIRECTION, CANCEL_ROW, SEED)
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(local work dir, SLURM work dir, SLURM result, cancel record, SLURM seconds)."""
    base = tmp_path_factory.mktemp("slurm")
    partition = default_partition()
    local = workcopy(base / "local", partition)
    res = subprocess.run(
        [str(SNAKEMAKE), *TARGETS, "-c2", "--configfile", "params/ci.yaml"],
        cwd=local,
        env=env(),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert res.returncode == 0, res.stderr[-3000:]

    work = workcopy(base / "slurm", partition)
    done, record = threading.Event(), {}
    canceller = threading.Thread(target=cancel_after_first_state, args=(work, done, record))
    canceller.start()
    start = time.monotonic()
    try:
        res = on_slurm(work, timeout=RUN_LIMIT_S)
    except subprocess.TimeoutExpired as exc:
        cancel_jobs_under(work)
        pytest.fail(
            f"the SLURM run did not end by itself within {RUN_LIMIT_S} s:\n"
            f"{(exc.stderr or b'')[-3000:]!r}"
        )
    finally:
        done.set()
        canceller.join()
    return local, work, res, record, time.monotonic() - start


def metrics(work: Path, row: str) -> dict:
    """A row's metrics without their timings (the checkpoint's sha256 stays in)."""
    data = json.loads((work / layout.metrics_path(CI, DIRECTION, row, SEED)).read_text())
    data.pop("timings")
    return data


def test_slurm_run_gives_the_local_metrics(runs):
    local, work, res, _, _ = runs
    assert res.returncode == 0, res.stderr[-4000:]
    assert "--gpus" not in res.stdout + res.stderr  # device: cpu asks for no GPU
    for row in ROWS:
        assert metrics(work, row) == metrics(local, row), row


def test_cancelled_job_is_retried_and_resumed(runs):
    _, work, res, record, seconds = runs
    assert "job" in record, "the fine-tuning job finished before its state.pt was seen"
    out = res.stdout + res.stderr
    # a group job's error names its SLURM log, <jobid>.log; then Snakemake resubmits it
    assert re.search(rf"Error in group trained\n\s+log: \S+/{record['job']}\.log", out), out[-3000:]
    assert "Trying to restart job" in out, out[-3000:]
    assert res.returncode == 0, out[-3000:]
    name = dag.job_name("finetune", direction=DIRECTION, row=CANCEL_ROW, seed=str(SEED))
    log = (work / layout.log_path(name)).read_text()
    assert f"resuming {CANCEL_ROW} from epoch" in log, log[-2000:]
    assert _epochs(work) == 3  # every epoch once, the resumed ones not duplicated
    assert seconds < RUN_LIMIT_S


def test_job_that_cannot_fit_stops_before_submission(tmp_path):
    work = workcopy(tmp_path / "w", default_partition())
    res = on_slurm(work, "--set-threads", "pretrain=4096", timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "can never run on their SLURM partition" in out, out[-3000:]
    assert "pretrain" in out and "4096 threads" in out
    assert "has been submitted with SLURM jobid" not in out
