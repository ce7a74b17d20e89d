"""Failed, timed-out and out-of-memory SLURM jobs are noticed and retried by the profile.

A throw-away Snakefile of three shell rules (no lf2 code, almost no CPU) runs through the
project's ``workflow/profiles/slurm`` with only its partitions filled in. Each rule's
first attempt goes wrong in one way, and the next attempt works:

- ``fail_once`` exits 3: SLURM state FAILED;
- ``time_out_once`` sleeps past its ``runtime`` of 1 minute: TIMEOUT;
- ``oom_once`` writes 1500 MB under ``mem_mb=600`` and asks for 3000 MB on a retry; the
  CI node's ``task/cgroup`` (.ci/slurm/setup.sh) kills it: OUT_OF_MEMORY. The lf2-slurm
  executor runs the rule in the job's batch step, so the job itself is OUT_OF_MEMORY (with
  upstream's srun step per rule, ``lf2-slurm-job-steps: true``, only that step is, and the
  job reads FAILED). The job's SLURM log says so too (``oom-kill event``).

Snakemake must name each state, resubmit each job once, and end with exit 0 by itself.
Same cluster needs and skip/require rule as tests/test_slurm.py (tests/slurm_helpers.py).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from tests.slurm_helpers import (
    SNAKEMAKE,
    cancel_jobs_under,
    cluster_marks,
    default_partition,
    env,
    write_profile,
)

pytestmark = cluster_marks()

# the whole run took 90-135 s on the CI node: the timed-out attempt lives a minute and
# more (the pause between status checks is at most 5 s with lf2-slurm, 180 s upstream)
RUN_LIMIT_S = 480
EXPECTED = {"fail_once": "FAILED", "time_out_once": "TIMEOUT", "oom_once": "OUT_OF_MEMORY"}

# each attempt appends a line to tries/<rule>: the first attempt is the one with one line
SNAKEFILE = f"""\
PY = {sys.executable!r}

rule all:
    input: expand("done/{{rule}}", rule={sorted(EXPECTED)!r})

rule fail_once:
    output: "done/fail_once"
    resources: mem_mb=1000, runtime=5
    shell: "echo x >> tries/fail_once; [ $(wc -l < tries/fail_once) -gt 1 ] || exit 3; touch {{output}}"

rule time_out_once:
    output: "done/time_out_once"
    resources: mem_mb=1000, runtime=1
    shell: "echo x >> tries/time_out_once; [ $(wc -l < tries/time_out_once) -gt 1 ] || sleep 600; touch {{output}}"

rule oom_once:
    output: "done/oom_once"
    params: py=PY
    resources: mem_mb=lambda wildcards, attempt: 600 if attempt == 1 else 3000, runtime=5
    shell: "echo x >> tries/oom_once; {{params.py}} -c 'b = b\\"x\\" * (1500 << 20)'; touch {{output}}"
"""


def error_blocks(log: str) -> dict[str, list[str]]:
    """Rule -> its ``Error in rule`` blocks in Snakemake's log, in order."""
    blocks: dict[str, list[str]] = {}
    for block in re.split(r"\n(?=Error in rule )", log)[1:]:
        rule = re.match(r"Error in rule (\w+):", block)
        if rule:
            blocks.setdefault(rule.group(1), []).append(block)
    return blocks


def slurm_state(block: str) -> str | None:
    """The SLURM state an error block names (the plugin's message), or None."""
    found = re.search(r"SLURM status is: '(\w+)'", block)
    return found.group(1) if found else None


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(work dir, Snakemake's result, seconds it took)."""
    work = tmp_path_factory.mktemp("slurm_failures")
    (work / "Snakefile").write_text(SNAKEFILE)
    (work / "tries").mkdir()
    write_profile(work / "profile" / "config.yaml", default_partition())
    start = time.monotonic()
    try:
        res = subprocess.run(
            [str(SNAKEMAKE), "--profile", "profile"],
            cwd=work, env=env(), capture_output=True, text=True, timeout=RUN_LIMIT_S,
        )
    except subprocess.TimeoutExpired as exc:
        cancel_jobs_under(work)
        pytest.fail(
            f"the SLURM run did not end by itself within {RUN_LIMIT_S} s:\n"
            f"{(exc.stderr or b'')[-3000:]!r}"
        )
    seconds = time.monotonic() - start
    (work / "snakemake.log").write_text(res.stdout + res.stderr)  # kept for a look afterwards
    return work, res, seconds


def test_each_failure_is_named_retried_once_and_the_run_ends(run):
    work, res, seconds = run
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    states = {rule: [slurm_state(b) for b in blocks] for rule, blocks in error_blocks(out).items()}
    assert states == {rule: [state] for rule, state in EXPECTED.items()}, out[-4000:]
    assert out.count("Trying to restart job") == len(EXPECTED), out[-4000:]
    for rule in EXPECTED:
        assert (work / "done" / rule).exists(), rule
        assert len((work / "tries" / rule).read_text().splitlines()) == 2, rule
    assert seconds < RUN_LIMIT_S


def test_the_out_of_memory_job_says_so_in_its_slurm_log(run):
    work, res, _ = run
    (block,) = error_blocks(res.stdout + res.stderr)["oom_once"]
    log = re.search(r"log: (\S+\.log)", block)
    assert log, block
    text = (work / log.group(1)).read_text()
    assert "oom-kill event" in text, text[-2000:]
