"""The workflow: job list, Snakemake dry runs, dvc.yaml generation, GPU slots, end to end.

Snakemake runs through the venv's executable in a temporary copy of the workflow files,
so the repository's own ``.snakemake/`` is never touched. ``lf2`` is the real one from
the venv, except in the "fake" runs, where a stand-in writes the declared outputs only:
they test the DAG mechanics (reruns, Snakemake/DVC agreement) in seconds.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
import yaml

from lf2 import layout
from lf2 import slurm as lf2_slurm
from lf2.config import load_params, rows_for
from lf2.dvcgen import dvc_stages, render_dvc_yaml
from lf2.errors import ParamsError
from lf2.layout import FIGURE_KINDS, TABLE_FILES, checkpoint_path, metrics_paths
from lf2.workflow_dag import (
    build_jobs,
    final_targets,
    find_job,
    job_index,
    relative_params_file,
)

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SNAKEMAKE = VENV_BIN / "snakemake"
DVC = VENV_BIN / "dvc"
GPU_SLOT = ROOT / "workflow" / "scripts" / "gpu_slot.py"

FAKE_LF2 = textwrap.dedent(
    '''\
    #!/usr/bin/env python3
    """Stand-in for lf2: writes each command's declared outputs, nothing else."""
    import json, os, sys
    argv = sys.argv[1:]
    cmd, out = argv[0], argv[argv.index("--out") + 1]
    stamp = " ".join(argv) + "\\n"
    def write(path, text=stamp):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w") as fh:
            fh.write(text)
    if cmd == "prepare":
        write(os.path.join(out, "manifest.csv"), "split,path,pid,camid\\n")
        write(os.path.join(out, "meta.json"), json.dumps({"args": argv}))
    elif cmd in ("pretrain", "finetune"):
        write(out)
        write(os.path.join(os.path.dirname(out), "epochs.jsonl"), '{"epoch": 1}\\n')
    elif cmd == "evaluate":
        write(out, json.dumps({"mAP": 0.5, "args": argv}))
    elif cmd == "table":
        for name in TABLE_FILES:
            write(os.path.join(os.path.dirname(out), name))
    elif cmd == "figures":
        for kind in FIGURE_KINDS:
            for ext in ("png", "pdf"):
                write(os.path.join(out, kind + "." + ext))
    else:
        sys.exit("fake lf2: unexpected command " + cmd)
    '''
).replace("FIGURE_KINDS", repr(FIGURE_KINDS)).replace("TABLE_FILES", repr(TABLE_FILES))


# --------------------------------------------------------------------------- helpers


def workcopy(tmp: Path, with_dvc: bool = False) -> Path:
    """A working copy of the workflow files (and, for DVC, the package and a git repo)."""
    work = tmp / "work"
    work.mkdir()
    shutil.copy(ROOT / "Snakefile", work)
    shutil.copytree(ROOT / "workflow", work / "workflow")
    shutil.copytree(ROOT / "params", work / "params")
    if with_dvc:
        shutil.copy(ROOT / "dvc.yaml", work)
        shutil.copy(ROOT / ".dvcignore", work)
        shutil.copy(ROOT / ".gitignore", work)
        (work / ".dvc").mkdir()
        for name in ("config", ".gitignore"):
            shutil.copy(ROOT / ".dvc" / name, work / ".dvc" / name)
        shutil.copytree(ROOT / "lf2", work / "lf2", ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    return work


def env_with(*bins: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([*(str(b) for b in bins), str(VENV_BIN), env.get("PATH", "")])
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


def fake_bin(tmp: Path) -> Path:
    bin_dir = tmp / "fakebin"
    bin_dir.mkdir()
    script = bin_dir / "lf2"
    script.write_text(FAKE_LF2)
    script.chmod(0o755)
    return bin_dir


def snakemake(work: Path, *args: str, env=None, timeout: int = 600):
    return subprocess.run(
        [str(SNAKEMAKE), *args],
        cwd=work,
        env=env or env_with(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def job_counts(output: str) -> Counter:
    """Parse the first "Job stats" table of a Snakemake run."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats"))
    counts: Counter = Counter()
    for line in lines[start + 3 :]:
        parts = line.split()
        if not parts or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def shell_commands(output: str) -> list[str]:
    """Commands of a `snakemake -n -p` run, without the log redirect."""
    cmds = [
        line.split("Shell command: ", 1)[1]
        for line in output.splitlines()
        if "Shell command: " in line
    ]
    return [re.sub(r" > logs/\S+ 2>&1$", "", c) for c in cmds if c != "None"]


# --------------------------------------------------------------------------- job list


@pytest.fixture(scope="module")
def default_params():
    return load_params(ROOT / "params" / "default.yaml")


def test_jobs_cover_every_row_and_direction(default_params):
    jobs = build_jobs(default_params, "params/default.yaml")
    counts = Counter(j.rule for j in jobs)
    n_dir = len(default_params["directions"])
    n_rows = len(rows_for(default_params))
    n_seeds = len(layout.seeds(default_params))
    assert n_seeds == 3  # the default's replicates (rows.seeds)
    assert counts == {
        "prepare": 2,
        "pretrain": n_dir * n_seeds,
        "finetune": n_dir * (n_rows - 1) * n_seeds,
        "evaluate": n_dir * n_rows * n_seeds,
        "table": 1,
        "figures": 1,
    }
    names = [j.name for j in jobs]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", n) for n in names)  # valid DVC stage names


def test_jobs_are_in_topological_order(default_params):
    produced: set[str] = set()
    for job in build_jobs(default_params, "params/default.yaml"):
        for path in job.inputs:
            assert path in produced, f"{job.name} needs {path} before any job makes it"
        produced.update(job.outputs)
    assert set(final_targets(default_params)) <= produced


def test_job_commands_follow_the_contract(default_params):
    index = job_index(build_jobs(default_params, "params/default.yaml"))
    ft = find_job(index, "finetune", {"direction": "A-to-B", "row": "lf2_m48", "seed": "0"})
    assert ft.cmd == (
        "lf2 finetune --params params/default.yaml --set seed=0 --variant lf2 --clusters 48 "
        "--init runs/A-to-B/pretrain/seed0/model.pt --target data/synth_b "
        "--out runs/A-to-B/lf2_m48/seed0/model.pt --row lf2_m48 --resume"
    )
    base = find_job(index, "finetune", {"direction": "B-to-A", "row": "baseline", "seed": "0"})
    assert "--variant baseline --clusters 48" in base.cmd and "--target data/synth_a" in base.cmd
    direct = find_job(index, "evaluate", {"direction": "A-to-B", "row": "direct", "seed": "0"})
    assert direct.cmd == (
        "lf2 evaluate --params params/default.yaml "
        "--checkpoint runs/A-to-B/pretrain/seed0/model.pt "
        "--manifest data/synth_b --out results/metrics/A-to-B/direct/seed0.json"
    )
    pre = find_job(index, "pretrain", {"direction": "B-to-A", "seed": "0"})
    assert pre.cmd.startswith(
        "lf2 pretrain --params params/default.yaml --set seed=0 --source data/synth_b "
    )
    assert pre.outputs == ("runs/B-to-A/pretrain/seed0/model.pt",)
    assert (
        pre.log == "logs/pretrain--B-to-A--seed0.log"
        and pre.benchmark == "logs/benchmarks/pretrain--B-to-A--seed0.tsv"
    )
    prep = find_job(index, "prepare", {"dataset": "synth_a"})
    assert (
        prep.cmd
        == "lf2 prepare synthetic --params params/default.yaml --dataset synth_a --out data/synth_a"
    )
    table = find_job(index, "table", {})
    assert table.cmd == "lf2 table --params params/default.yaml --out results/table2.csv"
    assert len(table.inputs) == 2 * len(rows_for(default_params)) * len(layout.seeds(default_params))
    figures = find_job(index, "figures", {})
    assert figures.cmd == "lf2 figures --params params/default.yaml --out results/figures"
    assert len(figures.outputs) == 2 * len(FIGURE_KINDS)
    with pytest.raises(KeyError):
        find_job(index, "finetune", {"direction": "A-to-B", "row": "direct", "seed": "0"})


def test_every_seed_is_a_job_and_fine_tuning_pairs_with_its_pretraining(default_params):
    params = load_params(ROOT / "params" / "default.yaml", ["rows.seeds=[0, 3]"])
    jobs = build_jobs(params, "params/default.yaml")
    one = load_params(ROOT / "params" / "default.yaml", ["rows.seeds=[0]"])
    single = Counter(j.rule for j in build_jobs(one, "params/default.yaml"))
    counts = Counter(j.rule for j in jobs)
    for rule in ("pretrain", "finetune", "evaluate"):
        assert counts[rule] == 2 * single[rule]
    index = job_index(jobs)
    ft = find_job(index, "finetune", {"direction": "A-to-B", "row": "baseline", "seed": "3"})
    assert "--set seed=3 " in ft.cmd and ft.inputs[0] == "runs/A-to-B/pretrain/seed3/model.pt"
    assert ft.outputs == ("runs/A-to-B/baseline/seed3/model.pt",)
    direct = find_job(index, "evaluate", {"direction": "B-to-A", "row": "direct", "seed": "3"})
    assert direct.inputs[0] == "runs/B-to-A/pretrain/seed3/model.pt"
    assert direct.outputs == ("results/metrics/B-to-A/direct/seed3.json",)
    table = find_job(index, "table", {})
    assert set(metrics_paths(params, "A-to-B", "no_fm")) <= set(table.inputs)
    assert len(table.inputs) == 2 * 2 * len(rows_for(params))


def test_state_file_is_never_an_output(default_params):
    for job in build_jobs(default_params, "params/default.yaml"):
        for path in job.outputs + tuple(p for p, _ in job.dvc_outs):
            assert not path.endswith("state.pt")
            assert not path.startswith("logs/")


def test_real_datasets_take_options_from_params():
    params = load_params(ROOT / "params" / "paper.yaml")
    jobs = build_jobs(params, "params/paper.yaml")
    prep = [j for j in jobs if j.rule == "prepare"]
    assert [j.cmd for j in prep] == [
        "lf2 prepare dukemtmc --params params/paper.yaml --dataset duke --out data/duke",
        "lf2 prepare market1501 --params params/paper.yaml --dataset market --out data/market",
    ]
    assert checkpoint_path(params, "D-to-M", "direct", 0) == "runs/D-to-M/pretrain/seed0/model.pt"
    assert "${" not in render_dvc_yaml(params, "params/paper.yaml")


def test_paths_with_spaces_are_quoted(default_params):
    params = load_params(ROOT / "params" / "default.yaml", ["paths.runs=my runs"])
    job = next(j for j in build_jobs(params, "params/default.yaml") if j.rule == "pretrain")
    assert "--out 'my runs/A-to-B/pretrain/seed0/model.pt'" in job.cmd


def test_relative_params_file(tmp_path):
    assert relative_params_file(tmp_path / "params" / "x.yaml", tmp_path) == "params/x.yaml"
    outside = tmp_path.parent / "elsewhere.yaml"
    assert relative_params_file(outside, tmp_path) == outside.as_posix()


# --------------------------------------------------------------------------- dvc.yaml


def test_committed_dvc_yaml_is_up_to_date(tmp_path, default_params):
    """Regenerate into tmp and compare: fails when the DAG or default.yaml changed."""
    out = tmp_path / "dvc.yaml"
    from lf2.cli import main

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        assert main(["dvc", "--params", "params/default.yaml", "--out", str(out)]) == 0
        assert (
            main(["dvc", "--params", "params/default.yaml", "--out", "dvc.yaml", "--check"]) == 0
        ), "dvc.yaml is stale: run `lf2 dvc --params params/default.yaml --out dvc.yaml`"
    finally:
        os.chdir(cwd)
    assert out.read_text() == (ROOT / "dvc.yaml").read_text()


def test_dvc_check_reports_stale_file(tmp_path, capsys):
    from lf2.cli import main

    stale = tmp_path / "dvc.yaml"
    stale.write_text("stages: {}\n")
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        assert main(["dvc", "--out", str(stale), "--check"]) == 1
    finally:
        os.chdir(cwd)
    assert "stale" in capsys.readouterr().err


def test_dvc_stages_match_jobs(default_params):
    stages = dvc_stages(default_params, "params/default.yaml")
    jobs = build_jobs(default_params, "params/default.yaml")
    assert list(stages) == [j.name for j in jobs]
    ft = stages["finetune--A-to-B--lf2_m48--seed0"]
    assert ft["deps"][-1] == "lf2" and "runs/A-to-B/pretrain/seed0/model.pt" in ft["deps"]
    assert ft["params"] == [
        {
            "params/default.yaml": [
                "seed",
                "precision",
                "threads",
                "compile",
                "adam",
                "input.height",
                "input.width",
                "input.pad",
                "input.flip",
                "input.random_erasing",
                "model",
                "finetune",
                "evaluate.batch_size",
            ]
        }
    ]
    assert (
        "input.random_erasing"
        not in stages["pretrain--A-to-B--seed0"]["params"][0]["params/default.yaml"]
    )
    assert ft["outs"][0] == "runs/A-to-B/lf2_m48/seed0/model.pt"  # cached (DVC default)
    assert ft["outs"][1] == {
        "runs/A-to-B/lf2_m48/seed0/epochs.jsonl": {"cache": False, "persist": True}
    }
    ev = stages["evaluate--B-to-A--direct--seed0"]
    assert ev["metrics"] == [{"results/metrics/B-to-A/direct/seed0.json": {"cache": False}}]
    assert "outs" not in ev
    assert stages["prepare--synth_a"]["outs"] == ["data/synth_a"]
    fig = stages["figures"]
    assert {next(iter(p)) for p in fig["plots"]} == {
        f"results/figures/{k}.png" for k in FIGURE_KINDS
    }
    assert "runs/A-to-B/lf2_m48/seed0/epochs.jsonl" in fig["deps"]
    raw = yaml.safe_load((ROOT / "params" / "default.yaml").read_text())
    for stage in stages.values():  # every tracked key exists in the file (else DVC: missing)
        for key in stage["params"][0]["params/default.yaml"]:
            node = raw
            for part in key.split("."):
                node = node[part]


def test_dvc_refuses_paths_outside_the_repository():
    params = load_params(ROOT / "params" / "default.yaml", ["paths.runs=/scratch/runs"])
    with pytest.raises(ParamsError, match="paths.runs"):
        dvc_stages(params, "params/default.yaml")


def test_dvc_reads_the_generated_pipeline(tmp_path):
    work = workcopy(tmp_path, with_dvc=True)
    res = subprocess.run(
        [str(DVC), "dag", "--md"], cwd=work, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    for name in (
        "prepare--synth_a",
        "finetune--B-to-A--lf2_m64--seed0",
        "evaluate--A-to-B--direct--seed0",
        "figures",
    ):
        assert name in res.stdout


# --------------------------------------------------------------------------- snakemake dry runs


@pytest.fixture(scope="module")
def dry_work(tmp_path_factory):
    return workcopy(tmp_path_factory.mktemp("dry"))


def test_dry_run_default_lists_all_jobs(dry_work, default_params):
    res = snakemake(dry_work, "-n", "-c2", "-p")
    assert res.returncode == 0, res.stderr + res.stdout
    out = res.stdout + res.stderr
    n_seeds = len(layout.seeds(default_params))  # the default's rows.seeds: 3
    assert job_counts(out) == {  # per seed: 5 Table II + 2 supplementary + supervised, + direct
        "prepare": 2,
        "pretrain": 2 * n_seeds,
        "finetune": 16 * n_seeds,
        "evaluate": 18 * n_seeds,
        "table": 1,
        "figures": 1,
        "all": 1,
    }
    # the Snakefile runs exactly the commands dvc.yaml lists (one DAG definition)
    dvc_cmds = {
        s["cmd"] for s in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].values()
    }
    assert set(shell_commands(out)) == dvc_cmds
    assert "logs/finetune--A-to-B--lf2_m64--seed0.log" in out
    assert "logs/benchmarks/evaluate--B-to-A--direct--seed0.tsv" in out


def test_dry_run_smoke_config(dry_work):
    res = snakemake(dry_work, "-n", "-c2", "--configfile", "params/smoke.yaml")
    assert res.returncode == 0, res.stderr + res.stdout
    out = res.stdout + res.stderr
    assert job_counts(out) == {  # the supplementary FM-ablation rows included (2 per direction)
        "prepare": 2,
        "pretrain": 2,
        "finetune": 14,
        "evaluate": 16,
        "table": 1,
        "figures": 1,
        "all": 1,
    }


def test_dry_run_of_one_row_target(dry_work):
    res = snakemake(dry_work, "-n", "-c2", "-p", "results/metrics/B-to-A/lf2_m32/seed0.json")
    assert res.returncode == 0, res.stderr + res.stdout
    out = res.stdout + res.stderr
    assert job_counts(out) == {"prepare": 2, "pretrain": 1, "finetune": 1, "evaluate": 1}
    assert "--params params/default.yaml --set seed=0 --variant lf2 --clusters 32" in out


def test_dry_run_paper_config_resolves_roots(dry_work):
    env = env_with()
    env["LF2_DATA_ROOT"] = "/nonexistent/reid"
    res = snakemake(dry_work, "-n", "-c2", "-p", "--configfile", "params/paper.yaml", env=env)
    assert res.returncode == 0, res.stderr + res.stdout
    out = res.stdout + res.stderr
    assert job_counts(out)["finetune"] == 12
    assert "lf2 prepare market1501 --params params/paper.yaml --dataset market" in out
    assert "results/metrics/M-to-D/lf2_m900/seed0.json" in out


def test_invalid_params_fail_before_any_job(dry_work):
    bad = yaml.safe_load((ROOT / "params" / "default.yaml").read_text())
    bad["finetune"]["sampling"] = "triple"
    (dry_work / "params" / "bad.yaml").write_text(yaml.safe_dump(bad, sort_keys=False))
    res = snakemake(dry_work, "-n", "-c2", "--configfile", "params/bad.yaml")
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "finetune.sampling" in out and "per_label" in out
    assert "Job stats" not in out and "rule prepare" not in out


def test_config_may_set_only_workflow_keys(dry_work):
    res = snakemake(dry_work, "-n", "-c2", "--config", "seed=3")
    assert res.returncode != 0
    assert "only workflow.* keys" in res.stdout + res.stderr


def test_gpu_slot_wraps_gpu_jobs_only(dry_work):
    res = snakemake(
        dry_work, "-n", "-c2", "-p", "results/metrics/A-to-B/direct/seed0.json",
        "--config", "workflow={gpu_slot: true, gpus: 3}",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr + res.stdout
    cmds = shell_commands(res.stdout + res.stderr)
    wrapped = [c for c in cmds if "gpu_slot.py --gpus 3 -- lf2 " in c]
    assert {c.split(" -- lf2 ")[1].split()[0] for c in wrapped} == {"pretrain", "evaluate"}
    assert all(c.startswith("lf2 prepare") for c in cmds if c not in wrapped)


def test_profiles_parse(dry_work):
    res = snakemake(
        dry_work, "-n", "--profile", "workflow/profiles/local-gpus", "results/table2.csv"
    )
    assert res.returncode == 0, res.stderr + res.stdout
    assert "gpu_slot.py --gpus 0 -- lf2 finetune" in res.stdout + res.stderr
    slurm = yaml.safe_load((ROOT / "workflow/profiles/slurm/config.yaml").read_text())
    assert slurm["executor"] == "lf2-slurm" and slurm["jobs"] == 50
    assert lf2_slurm.is_slurm_executor(slurm["executor"])  # GPU requests and the fit check
    assert not any(key.startswith("slurm-") for key in slurm)  # lf2-slurm takes lf2-slurm-*
    assert "slurm_partition" in slurm["default-resources"]
    for rule in ("pretrain", "finetune", "evaluate"):
        assert "gpu" not in slurm["set-resources"][rule]  # GPUs follow `device` (lf2.slurm)


# --------------------------------------------------------------------------- gpu_slot.py


def test_gpu_slot_claims_a_free_gpu(tmp_path):
    lock_dir = tmp_path / "locks"
    lock_dir.mkdir()
    held = os.open(lock_dir / "gpu0.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # someone runs on GPU 0
    try:
        probe = "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])"
        res = subprocess.run(
            [sys.executable, str(GPU_SLOT), "--gpus", "2", "--lock-dir", str(lock_dir), "--",
             sys.executable, "-c", probe],
            capture_output=True, text=True, env=env_with(), timeout=60,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == "1"
        # both busy: gives up after --wait with EX_TEMPFAIL
        held1 = os.open(lock_dir / "gpu1.lock", os.O_RDWR | os.O_CREAT)
        fcntl.flock(held1, fcntl.LOCK_EX | fcntl.LOCK_NB)
        res = subprocess.run(
            [sys.executable, str(GPU_SLOT), "--gpus", "2", "--lock-dir", str(lock_dir),
             "--wait", "0.5", "--poll", "0.1", "--", sys.executable, "-c", probe],
            capture_output=True, text=True, env=env_with(), timeout=60,
        )  # fmt: skip
        assert res.returncode == 75 and "busy" in res.stderr
        os.close(held1)
    finally:
        os.close(held)


def test_gpu_slot_lock_lives_as_long_as_the_command(tmp_path):
    lock_dir = tmp_path / "locks"
    child = subprocess.Popen(
        [sys.executable, str(GPU_SLOT), "--gpus", "1", "--lock-dir", str(lock_dir), "--",
         sys.executable, "-c", "import sys, time; print('up', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_with(),
    )  # fmt: skip
    try:
        assert child.stdout.readline().strip() == "up"
        fd = os.open(lock_dir / "gpu0.lock", os.O_RDWR)
        with pytest.raises(BlockingIOError):  # held by the exec'd command
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        child.kill()
        child.wait(timeout=10)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released with the process
        os.close(fd)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
        child.stdout.close()
        child.stderr.close()


def test_gpu_slot_without_gpus_runs_the_command_unchanged(tmp_path):
    env = env_with()
    env["PATH"] = str(VENV_BIN)  # no nvidia-smi here
    res = subprocess.run(
        [sys.executable, str(GPU_SLOT), "--lock-dir", str(tmp_path), "--",
         sys.executable, "-c", "import os; print(os.environ.get('CUDA_VISIBLE_DEVICES', 'unset'))"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0 and res.stdout.strip() == "unset"
    assert "no GPU" in res.stderr


# --------------------------------------------------------------------------- fake full runs


@pytest.mark.slow
def test_snakemake_then_dvc_agree(tmp_path):
    """Snakemake builds everything; after `dvc commit -f`, DVC finds nothing to do, and a
    params change reruns exactly the jobs that read the changed key."""
    work = workcopy(tmp_path, with_dvc=True)
    env = env_with(fake_bin(tmp_path))
    res = snakemake(work, "-c2", env=env)
    assert res.returncode == 0, res.stderr
    params = load_params(work / "params" / "default.yaml")
    for target in final_targets(params):
        assert (work / target).is_file(), target
    n_jobs = len(build_jobs(params, "params/default.yaml"))  # one log and one .tsv per job
    assert n_jobs > 30
    assert len(list((work / "logs").glob("*.log"))) == n_jobs
    assert len(list((work / "logs" / "benchmarks").glob("*.tsv"))) == n_jobs
    res = snakemake(work, "-n", env=env)
    assert "Nothing to be done" in res.stdout + res.stderr

    def dvc(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(DVC), *args], cwd=work, env=env, capture_output=True, text=True, timeout=300
        )

    assert dvc("commit", "-f").returncode == 0
    status = dvc("status")
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout
    # a params change: Snakemake's params trigger reruns the fine-tuning jobs only
    pfile = work / "params" / "default.yaml"
    text = pfile.read_text()
    head, tail = text.split("\nfinetune:\n", 1)
    old_epochs = load_params(pfile)["finetune"]["epochs"]
    tail = re.sub(r"^  epochs: \d+", f"  epochs: {old_epochs + 1}", tail, count=1, flags=re.M)
    pfile.write_text(head + "\nfinetune:\n" + tail)
    assert load_params(pfile)["finetune"]["epochs"] == old_epochs + 1
    res = snakemake(work, "-n", env=env)
    counts = job_counts(res.stdout + res.stderr)
    n_finetune = sum(j.rule == "finetune" for j in build_jobs(params, "params/default.yaml"))
    assert n_finetune == 16 * len(layout.seeds(params))
    assert counts["finetune"] == n_finetune and "pretrain" not in counts and "prepare" not in counts
    changed = dvc("status", "--json")
    # exactly the stages that track finetune.epochs: every fine-tuning, and the table (leak.csv)
    tracking = {
        j.name
        for j in build_jobs(params, "params/default.yaml")
        if any(k == "finetune.epochs" or "finetune.epochs".startswith(k + ".") for k in j.param_keys)
    }
    assert tracking == {j for j in yaml.safe_load((work / "dvc.yaml").read_text())["stages"]
                        if j.startswith("finetune--")} | {"table"}
    assert set(yaml.safe_load(changed.stdout)) == tracking


@pytest.mark.slow
def test_dvc_then_snakemake_agree(tmp_path):
    """DVC builds everything; Snakemake then finds nothing to do."""
    work = workcopy(tmp_path, with_dvc=True)
    env = env_with(fake_bin(tmp_path))
    res = subprocess.run(
        [str(DVC), "repro"], cwd=work, env=env, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr + res.stdout
    res = snakemake(work, "-n", env=env)
    assert "Nothing to be done" in res.stdout + res.stderr


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_end_to_end_smoke(tmp_path):
    """The real pipeline on params/smoke.yaml: every stage, tables and figures."""
    work = workcopy(tmp_path)
    # targets go BEFORE --configfile, which takes several values
    res = snakemake(work, "all", "-c2", "--configfile", "params/smoke.yaml", timeout=1800)
    logs = ""
    if res.returncode != 0:
        for log in sorted((work / "logs").glob("*.log")):
            logs += f"\n== {log.name}\n" + log.read_text()[-2000:]
    assert res.returncode == 0, res.stderr[-4000:] + logs
    params = load_params(work / "params" / "smoke.yaml")
    for target in final_targets(params):
        assert (work / target).is_file() and (work / target).stat().st_size > 0, target
    table = (work / "results" / "table2.csv").read_text()
    for row in rows_for(params):
        for path in metrics_paths(params, "A-to-B", row):
            assert (work / path).is_file(), path
    assert table.strip()
    res = snakemake(work, "-n", "-c2", "--configfile", "params/smoke.yaml")
    assert "Nothing to be done" in res.stdout + res.stderr


def test_ci_runs_the_readme_test_line_verbatim():
    block = (ROOT / "README.md").read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    test_line = next(line for line in block.splitlines() if "pytest" in line)
    assert test_line in (ROOT / ".ci/run").read_text().splitlines()
    assert "./workflow/executor" in test_line  # the SLURM tests need the lf2-slurm executor
