"""Params inheritance (``extends:``), the params file a Snakemake run uses, and staleness:
an edit to a base file reaches the stages of every file extending it, in Snakemake and DVC."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from lf2.config import load_params
from lf2.dvcgen import dvc_stages, params_files
from lf2.errors import ParamsError
from lf2.params_chain import chain, keys_defined_in, merge, read_merged
from lf2.snakemake_config import params_file_from_config
from tests.test_workflow import DVC, env_with, fake_bin, job_counts, snakemake, workcopy

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_merge_rules() -> None:
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 2, "c": {"k": 1}}
    assert merge(base, {"a": {"y": [3]}, "c": None, "d": 4}) == {"a": {"x": 1, "y": [3]}, "b": 2, "d": 4}
    assert base["a"]["y"] == [1, 2]  # not modified


def test_shipped_presets_extend_and_resolve() -> None:
    smoke = load_params(ROOT / "params" / "smoke.yaml")
    default = load_params(ROOT / "params" / "default.yaml")
    assert [p.name for p in chain(ROOT / "params" / "smoke.yaml")] == ["smoke.yaml", "default.yaml"]
    assert [p.name for p in chain(ROOT / "params" / "msmt.yaml")] == ["msmt.yaml", "paper.yaml"]
    assert "extends" not in smoke
    assert smoke["model"] == {**default["model"], "flip_test": False}
    assert smoke["datasets"]["synth_a"]["seed"] == default["datasets"]["synth_a"]["seed"]
    assert smoke["pretrain"]["epochs"] == 2 and "synth_a_val" not in smoke["datasets"]
    assert [d["name"] for d in smoke["directions"]] == [d["name"] for d in default["directions"]]


def test_extends_errors_name_the_file(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", {"extends": "b.yaml"})
    _write(tmp_path / "b.yaml", {"extends": "a.yaml"})
    with pytest.raises(ParamsError, match="circle"):
        load_params(tmp_path / "a.yaml")
    _write(tmp_path / "c.yaml", {"extends": "missing.yaml"})
    with pytest.raises(ParamsError, match="missing.yaml does not exist"):
        load_params(tmp_path / "c.yaml")
    _write(tmp_path / "d.yaml", {"extends": 3})
    with pytest.raises(ParamsError, match="d.yaml: extends"):
        read_merged(tmp_path / "d.yaml")


def test_null_removes_an_inherited_key(tmp_path: Path) -> None:
    default = yaml.safe_load((ROOT / "params" / "default.yaml").read_text())
    _write(tmp_path / "default.yaml", default)
    child = _write(tmp_path / "child.yaml", {
        "extends": "default.yaml",
        "datasets": {"synth_c": {**default["datasets"]["synth_a"], "seed": 5}, "synth_a": None},
        "directions": [{"name": "C-to-B", "source": "synth_c", "target": "synth_b"}]})
    params = load_params(child)
    assert "synth_a" not in params["datasets"] and {"synth_b", "synth_c"} <= set(params["datasets"])


def test_cli_params_prints_the_resolved_file(capsys) -> None:
    from lf2.cli import main

    assert main(["params", "--params", str(ROOT / "params" / "smoke.yaml")]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == load_params(ROOT / "params" / "smoke.yaml") and "extends" not in printed


def test_dvc_tracks_every_file_of_the_chain() -> None:
    params = load_params(ROOT / "params" / "smoke.yaml")
    stages = dvc_stages(params, "params/smoke.yaml")
    assert params_files("params/smoke.yaml") == ["params/smoke.yaml", "params/default.yaml"]
    ft = stages["finetune--A-to-B--baseline--seed0"]["params"]
    # finetune reads evaluate.batch_size (its test-split monitor), which smoke.yaml sets
    assert ft[0] == {"params/smoke.yaml": ["precision", "model", "finetune", "evaluate.batch_size"]}
    assert "input.random_erasing" in ft[1]["params/default.yaml"]
    assert keys_defined_in(ROOT / "params" / "smoke.yaml", ("input.cache", "input.pad")) == ["input.cache"]


def test_params_file_from_config(tmp_path: Path) -> None:
    work = workcopy(tmp_path)
    smoke = yaml.safe_load((work / "params" / "smoke.yaml").read_text())
    assert params_file_from_config({}, work) == ("params/default.yaml", [])
    assert params_file_from_config({**smoke, "workflow": {"gpu_slot": True}}, work) == (
        "params/smoke.yaml", ["workflow.gpu_slot=True"])
    assert params_file_from_config({"params": "params/paper.yaml"}, work)[0] == "params/paper.yaml"
    with pytest.raises(ParamsError, match="--config seed: only workflow"):
        params_file_from_config({**smoke, "seed": 3}, work)


@pytest.mark.slow
def test_an_edit_to_the_base_file_makes_extending_stages_stale(tmp_path: Path) -> None:
    """Snakemake (params trigger on resolved values) and DVC (params of every file in the
    chain) both rerun the fine-tuning of a smoke run when default.yaml's finetune.lr changes."""
    from lf2.dvcgen import render_dvc_yaml

    work = workcopy(tmp_path, with_dvc=True)
    env = env_with(fake_bin(tmp_path))
    smoke = load_params(work / "params" / "smoke.yaml")
    (work / "dvc.yaml").write_text(render_dvc_yaml(smoke, "params/smoke.yaml"))
    res = snakemake(work, "all", "-c2", "--configfile", "params/smoke.yaml", env=env)
    assert res.returncode == 0, res.stderr

    def dvc(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(DVC), *args], cwd=work, env=env, capture_output=True, text=True,
                              timeout=300)

    assert dvc("commit", "-f").returncode == 0
    assert "up to date" in dvc("status").stdout
    base = work / "params" / "default.yaml"
    text = base.read_text()
    assert "\n  lr: 3.5e-4" in text.split("\nfinetune:\n", 1)[1]
    head, tail = text.split("\nfinetune:\n", 1)
    base.write_text(head + "\nfinetune:\n" + tail.replace("\n  lr: 3.5e-4", "\n  lr: 1.0e-4", 1))
    res = snakemake(work, "-n", "-c2", "--configfile", "params/smoke.yaml", env=env)
    counts = job_counts(res.stdout + res.stderr)
    from lf2.workflow_dag import build_jobs

    finetune_jobs = sum(j.rule == "finetune" for j in build_jobs(smoke, "params/smoke.yaml"))
    assert finetune_jobs > 0
    assert counts["finetune"] == finetune_jobs and "pretrain" not in counts  # every one, no other
    stale = set(yaml.safe_load(dvc("status", "--json").stdout))
    assert stale == {n for n in yaml.safe_load((work / "dvc.yaml").read_text())["stages"]
                     if n.startswith("finetune--")}
