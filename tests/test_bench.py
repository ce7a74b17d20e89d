"""``lf2 bench``: the small scale end to end, the FLOP count, and the projection arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lf2.bench import (
    PAPER_SCHEDULE,
    clustered_features,
    count_step_flops,
    make_config,
    project_table2,
    schedule_flops,
)
from lf2.cli import main

PARAMS = Path(__file__).resolve().parents[1] / "params" / "default.yaml"


@pytest.mark.slow
def test_small_bench_writes_json_and_markdown(tmp_path, capsys):
    out = tmp_path / "bench"
    rc = main(["bench", "--params", str(PARAMS), "--out", str(out), "--device", "cpu",
               "--scale", "small", "--only", "matmul,flops,data,extract,kmeans,eval"])
    assert rc == 0
    r = json.loads((out / "bench.json").read_text())
    assert set(r["timings_s"]) == {"matmul", "flops", "data", "extract", "kmeans", "eval"}
    assert "pretrain" not in r and "finetune" not in r
    assert r["machine"]["device"] == "cpu" and r["peak_gpu_memory_bytes"] is None
    assert r["command"].startswith("lf2 bench") and "--only" in r["command"]
    assert r["matmul"]["float32_tflops"] > 0
    assert r["flops"]["finetune_step_flops"] == (
        r["flops"]["student_forward_backward"] + r["flops"]["teacher_forward"]
    )
    d = r["data"]
    assert d["loader_images_per_s"] > 0 and d["cache_images_per_s"] > 0
    assert d["speedup_cache_vs_loader"] == pytest.approx(
        d["cache_images_per_s"] / d["loader_images_per_s"]
    )
    methods = {run["method"] for run in r["kmeans"]["runs"]}
    assert {"faiss_cpu", "torch", "sklearn", "sklearn_minibatch"} <= methods
    for run in r["kmeans"]["runs"]:
        assert run["seconds"] > 0 and -1 <= run["ari"] <= 1
    torch_ari = [run["ari"] for run in r["kmeans"]["runs"] if run["method"] == "torch"]
    assert torch_ari[0] > 0.5  # the synthetic ids are recoverable
    assert 0 <= r["eval"]["mAP"] <= 1 and r["eval"]["seconds"] > 0
    assert r["extract"]["images_per_s"] > 0 and r["extract"]["embedding_dim"] > 0
    assert "skipped" in r["projection"]  # only paper scale is projected
    md = (out / "bench.md").read_text()
    for heading in ("# lf2 bench", "## Matmul peak", "## FLOPs per step", "## Data path",
                    "## k-means", "## Evaluation", "not measured: no GPU"):
        assert heading in md
    assert "wrote" in capsys.readouterr().out


def test_unknown_section_is_a_user_error(tmp_path, capsys):
    rc = main(["bench", "--params", str(PARAMS), "--out", str(tmp_path), "--device", "cpu",
               "--only", "matmul,warp"])
    assert rc == 1
    assert "warp" in capsys.readouterr().err
    assert not (tmp_path / "bench.json").exists()


def test_too_many_clusters_is_a_user_error(tmp_path, capsys):
    rc = main(["bench", "--params", str(PARAMS), "--out", str(tmp_path), "--device", "cpu",
               "--kmeans-n", "10", "--kmeans-ks", "20"])
    assert rc == 1
    assert "--kmeans-ks" in capsys.readouterr().err


def test_resnet50_finetune_step_flops_match_the_floor():
    from lf2.config import load_params

    r = count_step_flops(make_config("market"), load_params(PARAMS))
    # student fwd+bwd + teacher fwd, 64 images at 256x128, last stride 1: ~2.07 TFLOP
    assert r["finetune_step_flops"] == pytest.approx(2.07e12, rel=0.01)
    assert r["student_forward_backward"] == pytest.approx(3 * r["student_forward"], rel=0.02)
    assert r["teacher_forward"] == pytest.approx(r["student_forward"], rel=0.01)


def test_schedule_flops_arithmetic():
    f = {"batch": 64, "teacher_forward": 64.0, "pretrain_step_flops": 3.0, "finetune_step_flops": 4.0}
    r = schedule_flops(f, kmeans_iters=10, dim=8)
    train = sum(t["train"] for t in PAPER_SCHEDULE["targets"])
    assert r["pretrain"] == 2 * 80 * 200 * 3.0
    assert r["finetune_steps_shared"] == 2 * 5 * 80 * 400 * 4.0
    # per_label: 1 batch for the baseline, K+1 = 3 for the four part rows
    assert r["finetune_steps_per_label"] == 2 * (1 + 3 * 4) * 80 * 400 * 4.0
    # teacher forward (1 per image) for every row, plus the student's for the 3 LF2 rows
    assert r["extract_shared"] == pytest.approx(80 * train * (5 + 3))
    assert r["kmeans_shared"] == pytest.approx(80 * 10 * 2 * 8 * train * (700 + 3 * (700 + 500 + 700 + 900)))
    assert r["total_shared"] == pytest.approx(
        r["pretrain"] + r["finetune_steps_shared"] + r["extract_shared"] + r["kmeans_shared"]
    )


def test_clustered_features_are_normalised_with_every_id():
    x, y = clustered_features(500, 40, 16, seed=3)
    assert x.shape == (500, 16) and x.dtype == np.float32 and y.shape == (500,)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
    assert set(y) == set(range(40))


def _fake_results(scale: str = "market") -> dict:
    runs = {f"{v}/{s}": {"it_per_s": 2.0 if s == "shared" else 1.0}
            for v in ("baseline", "no_fm", "lf2") for s in ("shared", "per_label")}
    km = [{"method": "faiss_cpu", "dim": 2048, "k": k, "seconds": 1.0} for k in (500, 700, 900)]
    return {
        "config": {"scale": scale}, "machine": {"device": "cpu"},
        "pretrain": {"it_per_s": 4.0}, "finetune": {"runs": runs},
        "extract": {"images_per_s": 1000.0},
        "kmeans": {"n": 12936, "niter": 10, "runs": km},
        "eval": {"seconds": 5.0, "query": 3368, "gallery": 15913},
    }


def test_projection_arithmetic():
    s = PAPER_SCHEDULE
    p = project_table2(_fake_results(), kmeans_iters=20)
    shared = p["shared"]
    assert shared["pretrain"] == pytest.approx(2 * 80 * 200 / 4.0)
    assert shared["finetune_steps"] == pytest.approx(2 * 5 * 80 * 400 / 2.0)
    assert p["per_label"]["finetune_steps"] == pytest.approx(2 * 5 * 80 * 400 / 1.0)
    train = sum(t["train"] for t in s["targets"])
    # one teacher forward per image and epoch; LF2's three rows add the student's stripes
    assert shared["extract"] == pytest.approx((5 + 3) * 80 * train / 1000.0)
    # k-means: 1 set for baseline, 3 for the others; 1 s at 10 iterations -> 2 s at 20,
    # scaled by each target's size over the benchmarked 12,936
    assert shared["kmeans"] == pytest.approx(80 * (1 + 3 * 4) * 2.0 * train / 12936)
    evals = 6 * sum(t["query"] + t["gallery"] for t in s["targets"]) / 1000.0 + 2 * 6 * 5.0
    assert shared["evaluate"] == pytest.approx(evals)
    parts = ("pretrain", "finetune_steps", "extract", "kmeans", "evaluate")
    assert shared["total"] == pytest.approx(sum(shared[c] for c in parts))
    assert p["kmeans_method"] == "faiss_cpu" and not p["notes"]


def test_projection_needs_paper_scale_and_says_what_is_missing():
    assert "skipped" in project_table2(_fake_results("small"))
    r = _fake_results()
    r["kmeans"]["runs"] = r["kmeans"]["runs"][:1]
    del r["finetune"]["runs"]["lf2/per_label"]
    p = project_table2(r)
    assert "skipped" in p["per_label"] and "total" in p["shared"]
    assert any("[700, 900]" in n for n in p["notes"])


@pytest.mark.slow
def test_small_training_steps(tmp_path):
    out = tmp_path / "bench"
    rc = main(["bench", "--params", str(PARAMS), "--out", str(out), "--device", "cpu",
               "--scale", "small", "--only", "pretrain,finetune",
               "--variants", "lf2", "--samplings", "per_label", "--warmup", "0"])
    assert rc == 0
    r = json.loads((out / "bench.json").read_text())
    if "skipped" in r["pretrain"]:
        pytest.skip(r["pretrain"]["skipped"])
    assert r["pretrain"]["it_per_s"] > 0
    assert set(r["finetune"]["runs"]) == {"lf2/per_label"}
    per_label = r["finetune"]["runs"]["lf2/per_label"]
    assert per_label["it_per_s"] > 0 and per_label["forwards_per_step"] == 3
    assert per_label["host_sync_ops"] == 0 and r["pretrain"]["host_sync_ops"] == 0


def test_eval_case_smaller_than_its_scale_still_has_matches():
    from lf2.bench import bench_eval, make_config

    r = bench_eval(make_config("market", eval_query=40, eval_gallery=120, eval_dim=16), "cpu")
    assert r["ids"] == 30 and r["query"] == 40 and r["gallery"] == 120
    assert 0.0 < r["mAP"] <= 1.0
