"""benchmarks/_rows.py: a study row runs the DAG's own jobs at layout paths (no training:
the jobs are planned, or run by a stand-in that writes their outputs)."""

from __future__ import annotations

import importlib.util
import json
import shlex
import sys
from pathlib import Path

import pytest

from lf2 import layout
from lf2.config import apply_overrides, load_params
from lf2.errors import ParamsError
from lf2.workflow_dag import build_jobs
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def rows():
    spec = importlib.util.spec_from_file_location("_rows", ROOT / "benchmarks" / "_rows.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def smoke() -> dict:
    return load_params(ROOT / "params" / "smoke.yaml")


def _params_file(job) -> str:
    args = shlex.split(job.args)
    return args[args.index("--params") + 1]


def _jobs(plan, rows) -> list:
    return [s for s in plan.steps if not isinstance(s, rows.Link)]


def test_every_step_is_a_dag_job_of_the_params_it_names(rows, smoke, tmp_path) -> None:
    ws = rows.Workspace(tmp_path)
    for row in rows.ROWS:
        plan = ws.plan(smoke, "A-to-B", row, 1)
        for job in _jobs(plan, rows):
            pf = _params_file(job)
            assert Path(pf).parent.parent == tmp_path
            assert job in build_jobs(load_params(pf), pf), job.cmd
        evaluate = _jobs(plan, rows)[-1]
        assert evaluate.rule == "evaluate"
        mine = load_params(_params_file(evaluate))
        assert plan.metrics == layout.metrics_path(mine, "A-to-B", rows.dag_row(smoke, row), 1)
        assert mine["paths"]["results"].startswith(str(tmp_path))


def test_rows_map_to_the_dags_variants(rows, smoke, tmp_path) -> None:
    ws = rows.Workspace(tmp_path)
    m = smoke["rows"]["ablation_clusters"]
    rules = {row: [j.rule for j in _jobs(ws.plan(smoke, "A-to-B", row, 0), rows)] for row in rows.ROWS}
    assert rules["direct"] == ["prepare", "prepare", "pretrain", "evaluate"]
    assert all(r == ["prepare", "prepare", "pretrain", "finetune", "evaluate"]
               for k, r in rules.items() if k != "direct")
    sup = ws.plan(smoke, "A-to-B", "supervised", 0)
    pre, ft = (j for j in _jobs(sup, rows) if j.rule in ("pretrain", "finetune"))
    assert f"--variant supervised --clusters {m} --init {sup.steps[3].dst} " in ft.args
    assert f"--source {layout.data_dir(load_params(_params_file(pre)), 'synth_a')} " in pre.args
    lf2 = ws.plan(smoke, "A-to-B", "lf2", 0)
    assert f"--row lf2_m{m} " in _jobs(lf2, rows)[3].args and lf2.trains == _jobs(lf2, rows)[3].name
    direct = ws.plan(smoke, "A-to-B", "direct", 0)
    assert f"--checkpoint {direct.steps[3].dst} " in _jobs(direct, rows)[-1].args
    assert direct.trains == _jobs(direct, rows)[2].name  # Direct transfer's training is pre-training
    with pytest.raises(ParamsError, match="not a Table II row"):
        rows.dag_row(apply_overrides(smoke, ["rows.variants=[direct, baseline]"]), "supervised")


def test_pretraining_is_shared_until_a_key_it_reads_changes(rows, smoke, tmp_path) -> None:
    ws = rows.Workspace(tmp_path)

    def roots(overrides: list[str]) -> tuple[str, str]:
        plan = ws.plan(apply_overrides(smoke, overrides), "A-to-B", "baseline", 0)
        return plan.steps[3].src, plan.metrics

    pre, metrics = roots([])
    assert roots(["finetune.ema_omega=0.9"])[0] == pre != roots(["pretrain.epochs=3"])[0]
    assert roots(["finetune.ema_omega=0.9"])[1] != metrics
    assert roots(["datasets.synth_b.seed=5"])[0] == pre  # the target is not seen ...
    assert roots(["pretrain.target_bn=true"])[0] != roots(["pretrain.target_bn=true", "datasets.synth_b.seed=5"])[0]


def _fake_runner(calls: list):
    def run(job) -> None:
        calls.append(job.rule)
        for out in job.outputs:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            text = json.dumps({"mAP": 0.5, "rank1": 0.75, "num_query": 12}) if job.rule == "evaluate" else ""
            Path(out).write_text(text)
    return run


def test_run_row_runs_what_is_missing_and_links_the_pretraining(rows, smoke, tmp_path) -> None:
    ws, calls = rows.Workspace(tmp_path), []
    res = rows.run_row(ws, smoke, "A-to-B", "baseline", 0, runner=_fake_runner(calls))
    assert calls == ["prepare", "prepare", "pretrain", "finetune", "evaluate"]
    assert (res["mAP"], res["rank1"], res["num_query"]) == (50.0, 75.0, 12)
    link = ws.plan(smoke, "A-to-B", "baseline", 0).steps[3]
    assert Path(link.dst).resolve() == Path(link.src).resolve()
    calls.clear()
    rows.run_row(ws, smoke, "A-to-B", "baseline", 0, runner=_fake_runner(calls))
    rows.run_row(ws, smoke, "A-to-B", "no_fm", 0, runner=_fake_runner(calls))
    rows.run_row(ws, apply_overrides(smoke, ["finetune.ema_omega=0.9"]), "A-to-B", "direct", 0,
                 runner=_fake_runner(calls))
    assert calls == ["finetune", "evaluate", "evaluate"]


def test_run_seed_logs_rows_and_measures_old_supervised_records_again(rows, smoke, tmp_path, monkeypatch) -> None:
    log, calls = tmp_path / "log.jsonl", []
    old = {"candidate": "c", "direction": "A-to-B", "row": "supervised", "seed": 0, "mAP": 60.0}
    log.write_text(json.dumps(old) + "\n" + json.dumps({**old, "row": "direct"}) + "\n")
    done = rows.done_keys(log, ("candidate",))
    assert done == {("c", "A-to-B", "direct", 0)}
    monkeypatch.setattr(rows, "run_job", _fake_runner(calls))
    rows.run_seed(rows.Workspace(tmp_path / "ws"), smoke, 0, ["direct", "supervised"], log, done,
                  directions=["A-to-B"], fields={"candidate": "c", "overrides": []}, key_fields=("candidate",))
    new = rows.read_log(log)[2:]
    assert [(r["row"], r["dag_row"], r["mAP"]) for r in new] == [("supervised", "supervised", 50.0)]
    assert rows.done_keys(log, ("candidate",)) == {("c", "A-to-B", r, 0) for r in ("direct", "supervised")}


@pytest.mark.slow
def test_rows_train_at_smoke_sizes_and_reuse_what_they_share(rows, smoke, tmp_path) -> None:
    from lf2.train.checkpoint import load_checkpoint

    ws = rows.Workspace(tmp_path)
    sup = rows.run_row(ws, smoke, "A-to-B", "supervised", 0)
    plan = ws.plan(smoke, "A-to-B", "supervised", 0)
    out = Path(_jobs(plan, rows)[3].outputs[0])
    assert load_checkpoint(out)["meta"]["variant"] == "supervised" and sup["train_s"] > 0
    train_ids = smoke["datasets"]["synth_b"]["train_ids"]
    epochs = [json.loads(line) for line in layout.run_files(out)["epochs"].read_text().splitlines()]
    assert len(epochs) == smoke["finetune"]["epochs"]
    for rec in epochs:  # the target's true training identities, whatever M_t says
        assert [c["num_clusters"] for c in rec["clusters"]] == [train_ids]
    assert 0 < sup["mAP"] <= 100 and sup["num_query"] > 0
    stamp = Path(plan.steps[2].outputs[0]).stat().st_mtime_ns
    direct = rows.run_row(ws, smoke, "A-to-B", "direct", 0)
    assert direct["train_s"] == 0 and Path(plan.steps[2].outputs[0]).stat().st_mtime_ns == stamp
    assert 0 < direct["mAP"] <= 100
