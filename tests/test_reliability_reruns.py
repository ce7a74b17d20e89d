"""A run retrains exactly when what it depends on changed: params, input contents, code."""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_params

from lf2.train.checkpoint import save_checkpoint
from lf2.train.records import code_version, run_fingerprint

ROOT = Path(__file__).resolve().parents[1]


def _run(init: Path | str, target: Path | str) -> dict:
    return {"stage": "finetune", "variant": "lf2", "clusters": 6, "init": str(init), "target": str(target)}


def test_fingerprint_follows_contents_not_path_spelling(tmp_path, monkeypatch, blob_pair):
    params = tiny_params(tmp_path)
    init = tmp_path / "pre" / "model.pt"
    save_checkpoint(init, {"student": {"w": torch.zeros(3)}})
    target = tmp_path / "tgt"
    shutil.copytree(blob_pair[1], target)
    monkeypatch.chdir(tmp_path)
    fp = run_fingerprint(params, _run(init, target))
    assert run_fingerprint(params, _run("pre/model.pt", "tgt")) == fp  # relative spelling, same files
    assert run_fingerprint(params, _run(init, target / "manifest.csv")) == fp
    save_checkpoint(init, {"student": {"w": torch.ones(3)}})  # a new init at the same path
    fp_new_init = run_fingerprint(params, _run(init, target))
    assert fp_new_init != fp
    csv = target / "manifest.csv"
    csv.write_text("".join(csv.read_text().splitlines(keepends=True)[:-1]))  # one image fewer
    assert run_fingerprint(params, _run(init, target)) not in (fp, fp_new_init)


def test_code_version_changes_with_any_package_edit(tmp_path):
    copy = tmp_path / "lf2"
    shutil.copytree(ROOT / "lf2", copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert code_version(str(copy)) == code_version()  # content, not location or git
    edited = tmp_path / "edited" / "lf2"
    shutil.copytree(copy, edited)
    with open(edited / "losses.py", "a", encoding="utf-8") as fh:
        fh.write("# an edit\n")
    assert code_version(str(edited)) != code_version(str(copy))


def _pretrain(params: dict, source, target, out: Path):
    from lf2.train.pretrain import run_pretrain

    return run_pretrain(params, source=Path(source), target=Path(target), out=out)


def _interrupted_pretrain(params, source, target, out, monkeypatch):
    """Pre-training killed inside epoch 2 (2 iterations per epoch): state.pt holds epoch 1."""
    from lf2.train import pretrain as pt_module

    original = pt_module.PretrainTrainer.train_step
    calls = {"n": 0}

    def dying_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pt_module.PretrainTrainer, "train_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        _pretrain(params, source, target, out)
    monkeypatch.setattr(pt_module.PretrainTrainer, "train_step", original)
    assert (out.parent / "state.pt").is_file() and not out.exists()


@pytest.mark.slow
def test_resume_only_with_the_same_inputs(tmp_path, monkeypatch, blob_pair, caplog):
    params = tiny_params(tmp_path, pretrain={"batch_k": 2})
    src = tmp_path / "src"
    shutil.copytree(blob_pair[0], src)
    out = tmp_path / "runs" / "pretrain" / "model.pt"
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO, logger="lf2")

    _interrupted_pretrain(params, src, blob_pair[1], out, monkeypatch)
    caplog.clear()
    _pretrain(params, "src", blob_pair[1], out)  # same files, relative spelling: resumes
    assert "resuming pre-training from epoch 2" in caplog.text
    assert not (out.parent / "state.pt").exists()  # finished: nothing left to resume

    caplog.clear()
    _pretrain(params, src, blob_pair[1], out)  # a forced rerun of a finished run trains
    assert "resuming" not in caplog.text and "epoch 1/2" in caplog.text

    out.unlink()  # as Snakemake and DVC do before they rerun a job
    _interrupted_pretrain(params, src, blob_pair[1], out, monkeypatch)
    csv = src / "manifest.csv"
    csv.write_text("".join(csv.read_text().splitlines(keepends=True)[:-1]))  # the data changed
    caplog.clear()
    _pretrain(params, src, blob_pair[1], out)
    assert "resuming" not in caplog.text and "starting from scratch" in caplog.text
    assert "epoch 1/2" in caplog.text


@pytest.mark.slow
def test_new_init_at_the_same_path_is_not_resumed(tmp_path, monkeypatch, blob_pair, pretrained_ckpt, caplog):
    from lf2.train import finetune as ft_module
    from lf2.train.checkpoint import load_checkpoint

    params = tiny_params(tmp_path, finetune={"batch_k": 2})
    init = tmp_path / "pre" / "model.pt"
    init.parent.mkdir()
    shutil.copy(pretrained_ckpt, init)
    out = tmp_path / "ft" / "model.pt"

    def finetune():
        return ft_module.run_finetune(params, variant="baseline", clusters=6, init=init, target=blob_pair[1],
                                      out=out)

    original = ft_module.FinetuneTrainer.train_step
    calls = {"n": 0}

    def dying_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # inside epoch 2: state.pt holds epoch 1
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ft_module.FinetuneTrainer, "train_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        finetune()
    monkeypatch.setattr(ft_module.FinetuneTrainer, "train_step", original)
    assert load_checkpoint(out.parent / "state.pt")["epoch"] == 1

    ckpt = load_checkpoint(init)  # a new pre-trained model written to the same path
    key = next(k for k in ckpt["student"] if k.endswith("weight"))
    ckpt["student"][key] = ckpt["student"][key] + 0.01
    save_checkpoint(init, ckpt)
    caplog.set_level(logging.INFO, logger="lf2")
    finetune()
    assert "starting from scratch" in caplog.text and "resuming" not in caplog.text
    assert not (out.parent / "state.pt").exists()


# ------------------------------------------------------------------ through the workflow managers


def _workcopy(tmp_path: Path, with_dvc: bool = False) -> Path:
    from test_workflow import workcopy

    return workcopy(tmp_path, with_dvc=with_dvc)


@pytest.mark.slow
def test_snakemake_forced_pretrain_retrains(tmp_path):
    from test_workflow import snakemake

    work = _workcopy(tmp_path)
    target = "runs/A-to-B/pretrain/seed0/model.pt"
    res = snakemake(work, target, "-c1", "--configfile", "params/smoke.yaml")
    assert res.returncode == 0, res.stderr[-3000:]
    log = work / "logs" / "pretrain--A-to-B--seed0.log"
    assert "epoch 2/2" in log.read_text()
    res = snakemake(work, target, "-c1", "-R", "pretrain", "--configfile", "params/smoke.yaml")
    assert res.returncode == 0, res.stderr[-3000:]
    text = log.read_text()
    assert "epoch 1/2" in text and "epoch 2/2" in text and "resuming" not in text


@pytest.mark.slow
def test_dvc_repro_after_a_code_edit_retrains(tmp_path):
    from test_workflow import DVC, env_with

    work = _workcopy(tmp_path, with_dvc=True)
    env = env_with()
    env["PYTHONPATH"] = str(work)  # the workspace's own lf2 runs, as in a checkout

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), cwd=work, env=env, capture_output=True, text=True, timeout=600)

    gen = run(str(Path(DVC).parent / "lf2"), "dvc", "--params", "params/smoke.yaml", "--out", "dvc.yaml")
    assert gen.returncode == 0, gen.stderr
    first = run(str(DVC), "repro", "pretrain--A-to-B--seed0")
    assert first.returncode == 0, first.stderr[-3000:] + first.stdout[-3000:]
    assert "epoch 2/2" in first.stdout + first.stderr
    with open(work / "lf2" / "losses.py", "a", encoding="utf-8") as fh:
        fh.write("# a code edit\n")
    second = run(str(DVC), "repro", "--single-item", "pretrain--A-to-B--seed0")  # (prepare would rerun too)
    out = second.stdout + second.stderr
    assert second.returncode == 0, out[-3000:]
    assert "Running stage 'pretrain--A-to-B--seed0'" in out  # DVC watches the package: the stage reruns
    assert "epoch 1/2" in out and "resuming" not in out


SLOW_JOB = '''
if os.environ.get("FAKE_SLOW") and os.environ["FAKE_SLOW"] in out:  # the job that gets killed
    import time
    open(os.environ["FAKE_SLOW_MARK"], "w").write(str(os.getpid()))
    time.sleep(120)
if cmd == "prepare":'''


@pytest.mark.slow
def test_interrupted_snakemake_run_then_dvc_agree(tmp_path):
    """docs/workflow.md's recovery recipe on the smoke DAG (stand-in lf2): kill Snakemake
    during a fine-tuning job, record what is done, finish, commit; then both tools agree."""
    import os
    import signal
    import time

    from test_workflow import DVC, VENV_BIN, env_with, fake_bin, snakemake

    work = _workcopy(tmp_path, with_dvc=True)
    bins = fake_bin(tmp_path)
    fake = bins / "lf2"
    fake.write_text(fake.read_text().replace('\nif cmd == "prepare":', SLOW_JOB, 1))
    env = env_with(bins)
    cfg = ("--configfile", "params/smoke.yaml")

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), cwd=work, env=env, capture_output=True, text=True, timeout=600)

    lf2 = str(VENV_BIN / "lf2")  # the real one (the stand-in shadows it on PATH)
    assert run(lf2, "dvc", "--params", "params/smoke.yaml", "--out", "dvc.yaml").returncode == 0
    mark = tmp_path / "started"
    killed_env = {**env, "FAKE_SLOW": "A-to-B/lf2_m6/", "FAKE_SLOW_MARK": str(mark)}
    proc = subprocess.Popen([str(VENV_BIN / "snakemake"), "-c1", *cfg], cwd=work, env=killed_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not mark.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert mark.exists(), "the slow job never started"
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGKILL)  # the machine went down: no clean-up at all
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, ValueError, FileNotFoundError):
            os.kill(int(mark.read_text()), signal.SIGKILL)

    # record what is done (optional), then finish with Snakemake and commit the rest
    done = run(lf2, "dvc", "--params", "params/smoke.yaml", "--done").stdout.split()
    assert "prepare--synth_a" in done and "finetune--A-to-B--lf2_m6--seed0" not in done
    assert run(str(DVC), "commit", "-f", *done).returncode == 0
    assert run(str(VENV_BIN / "snakemake"), "--unlock", *cfg).returncode == 0
    res = snakemake(work, "-c1", "--rerun-incomplete", *cfg, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    commit = run(str(DVC), "commit", "-f")
    assert commit.returncode == 0, commit.stderr
    res = snakemake(work, "-n", *cfg, env=env)
    assert "Nothing to be done" in res.stdout + res.stderr, res.stdout[-3000:]
    status = run(str(DVC), "status")
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout


def test_done_stages_need_every_output_and_no_incomplete_mark(tmp_path):
    from base64 import urlsafe_b64encode

    from lf2.config import load_params
    from lf2.dvcgen import done_stages

    params = load_params(ROOT / "params" / "smoke.yaml")
    assert done_stages(params, "params/smoke.yaml", str(tmp_path)) == []
    for name in ("manifest.csv", "meta.json"):
        (tmp_path / "data" / "synth_a").mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / "synth_a" / name).write_text("x")
    assert done_stages(params, "params/smoke.yaml", str(tmp_path)) == ["prepare--synth_a"]
    marks = tmp_path / ".snakemake" / "incomplete"
    marks.mkdir(parents=True)
    (marks / urlsafe_b64encode(b"data/synth_a/meta.json").decode()).write_text("{}")
    assert done_stages(params, "params/smoke.yaml", str(tmp_path)) == []


def test_resume_state_keeps_the_pseudo_labels(tmp_path):
    """reinit_classifier false matches each epoch's clusters to the previous epoch's: a resumed
    run needs those labels, so the state carries them (through a weights-only save and load)."""
    from lf2.train.bench_steps import RandomImages
    from lf2.train.checkpoint import load_checkpoint
    from lf2.train.finetune import FinetuneTrainer
    from lf2.train.variants import make_variant

    params = tiny_params(tmp_path, finetune={"reinit_classifier": False})
    device = torch.device("cpu")

    def trainer():
        images = RandomImages(params, device, 32, 0.0)
        return FinetuneTrainer(params, make_variant("baseline", 2), 6, images, None, device)

    first = trainer()
    labels = [np.arange(32) % 6]
    first.set_labels(labels, np.eye(32, first.student.out_channels, dtype=np.float32))
    save_checkpoint(tmp_path / "state.pt", {"trainer": first.state_dict()})
    resumed = trainer()
    resumed.load_state_dict(load_checkpoint(tmp_path / "state.pt")["trainer"])
    assert [y.tolist() for y in resumed.label_sets] == [y.tolist() for y in labels]
