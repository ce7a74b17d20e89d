"""The SLURM profile on a real cluster: the metrics of a local run, a cancelled job recovered.

Needs a running SLURM (``sinfo`` answers) and the lf2-slurm executor (workflow/executor); on a
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

import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from lf2 import layout
from lf2 import workflow_dag as dag
from lf2.config import load_params
from tests.slurm_helpers import (
    ROOT,
    SNAKEMAKE,
    cancel_jobs_under,
    cluster_marks,
    default_partition,
    env,
    write_profile,
)

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
pytestmark = cluster_marks()


def workcopy(dest: Path, partition: str) -> Path:
    """Workflow files, the reduced params, and the profile with its site values filled in."""
    dest.mkdir()
    shutil.copy(ROOT / "Snakefile", dest)
    shutil.copytree(ROOT / "workflow", dest / "workflow")
    shutil.copytree(ROOT / "params", dest / "params")
    (dest / "params" / "ci.yaml").write_text(CI_PARAMS)
    write_profile(dest / "workflow" / "profiles" / "slurm" / "config.yaml", partition)
    return dest


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
