"""The training loop: variants, sampling, checkpoints, resume, determinism, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lf2.errors import CheckpointError, LF2Error, ParamsError, TrainingError
from lf2.train import runtime
from lf2.train.checkpoint import load_checkpoint, load_model
from lf2.train.finetune import run_finetune
from lf2.train.sampling import make_sampling
from lf2.train.variants import LF2, Baseline, LossWeights, NoFM, make_variant
from tests.conftest import tiny_params


def _outputs(batch=8, channels=16, parts=2, seed=0):
    from lf2.models.net import TrainOutputs

    g = torch.Generator().manual_seed(seed)

    def r(*shape, positive=False):
        t = torch.randn(*shape, generator=g)
        return (t.abs() if positive else t).requires_grad_(True)

    return TrainOutputs(feature_map=r(batch, channels, 4, 2), global_feat=r(batch, channels),
                        global_bn=r(batch, channels), logits=r(batch, 5),
                        part_feats=[r(batch, channels, positive=True) for _ in range(parts)],
                        expert_feats=[r(batch, channels) for _ in range(parts)])


LABELS = [torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]), torch.tensor([0, 0, 0, 1, 1, 2, 2, 2]),
          torch.tensor([1, 1, 0, 0, 2, 2, 3, 3])]


def test_variant_label_sets_and_terms():
    w = LossWeights()
    out = _outputs()
    assert Baseline(2).set_names == ("global",)
    assert NoFM(2).set_names == ("global", "part1", "part2")
    assert LF2(2).set_names == ("global", "fused1", "fused2")
    assert set(Baseline(2).loss_terms(out, LABELS[:1], {0}, w)) == {"cls", "tri"}
    assert set(NoFM(2).loss_terms(out, LABELS, {0, 1, 2}, w)) == {"cls", "tri", "part_tri1", "part_tri2"}
    # per-label sampling: a batch drawn on y_1 only feeds the terms of set 1
    assert set(NoFM(2).loss_terms(out, LABELS, {1}, w)) == {"part_tri1"}


def test_total_applies_paper_weights():
    w = LossWeights(alpha=2.0, lambda_tri=0.5, gamma=0.25, fm_loss_weight=3.0)
    terms = {"cls": torch.tensor(1.0), "tri": torch.tensor(2.0), "part_tri1": torch.tensor(4.0),
             "fm1": torch.tensor(1.0)}
    # alpha * (cls + lambda * tri) + gamma * part + fm_weight * fm = 2*(1+1) + 1 + 3
    assert float(Baseline.total(terms, w)) == pytest.approx(8.0)


@pytest.mark.parametrize("mode,expect_grad", [("paper", True), ("eq5_line2", True), ("released", False)])
def test_fm_gradient_only_when_trained(mode, expect_grad):
    from lf2.models.fusion import FusionHead

    torch.manual_seed(0)
    fusion = FusionHead(16, 2, 4, mode)
    out = _outputs()
    teacher_global = torch.randn(8, 16, requires_grad=True)
    v = LF2(2)
    terms = v.loss_terms(out, LABELS, {0, 1, 2}, LossWeights(), teacher_global, fusion)
    assert ("fm1" in terms) == expect_grad
    v.total(terms, LossWeights()).backward()
    grads = [p.grad for p in fusion.parameters()]
    if expect_grad:
        assert all(g is not None and g.abs().sum() > 0 for g in grads)
        assert out.part_feats[0].grad is not None  # the student's stripes are trained through FM
    else:
        assert all(g is None for g in grads)
    assert teacher_global.grad is None  # the teacher is never trained by gradient


def test_sampling_shared_and_per_label():
    labels = [np.repeat(np.arange(6), 4), np.repeat(np.arange(8), 3), np.tile(np.arange(4), 6)]
    shared = list(make_sampling("shared", labels, 4, 2, 3, seed=0))
    assert len(shared) == 3 and all(len(step) == 1 for step in shared)
    idx, sets = shared[0][0]
    assert sets == {0, 1, 2} and len(idx) == 8 and len(set(labels[0][idx])) == 4
    per = list(make_sampling("per_label", labels, 4, 2, 3, seed=0))
    assert all([s for _, s in step] == [{0}, {1}, {2}] for step in per)
    for j, (idx, _) in enumerate(per[0]):
        assert len(set(labels[j][idx])) == 4  # each batch is P x K on its own label set
    with pytest.raises(ParamsError, match="triple"):
        make_sampling("triple", labels, 4, 2, 3, seed=0)


def test_unknown_variant():
    with pytest.raises(ParamsError, match="'nofm'.*baseline, no_fm, lf2"):
        make_variant("nofm", 2)


def _finetune(tmp_path, blob_pair, ckpt, variant="lf2", clusters=6, out="run", **sections):
    params = tiny_params(tmp_path, **sections)
    return run_finetune(params, variant=variant, clusters=clusters, init=ckpt, target=blob_pair[1],
                        out=tmp_path / out / "model.pt")


def test_finetune_writes_checkpoint_log_and_params(tmp_path, blob_pair, pretrained_ckpt):
    path = _finetune(tmp_path, blob_pair, pretrained_ckpt)
    ckpt = load_checkpoint(path)
    assert ckpt["stage"] == "finetune" and ckpt["epoch"] == 2 and ckpt["meta"]["selection"] == "last epoch"
    # the precision that ran (tiny_params: default.yaml's auto, so this CPU's choice) is recorded
    ran = runtime.precision_name(runtime.resolve_precision("auto", torch.device("cpu")))
    assert ckpt["meta"]["precision"] == ran == load_checkpoint(pretrained_ckpt)["meta"]["precision"]
    assert ckpt["teacher"] is not None and ckpt["fusion"] is not None
    records = [json.loads(line) for line in (path.parent / "epochs.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    rec = records[0]
    assert [c["set"] for c in rec["clusters"]] == ["global", "fused1", "fused2"]
    assert set(rec["agreement"]) == {"ari_0_1", "ari_0_2", "ari_1_2"}
    assert 0.0 <= rec["clusters"][0]["purity"] <= 1.0 and rec["eval"] is None
    assert len(rec["losses"]["fm"]) == 2 and len(rec["losses"]["part_tri"]) == 2
    assert (path.parent / "params.yaml").is_file()
    model, _ = load_model(path)
    x = torch.randn(2, 3, 64, 32)
    assert model(x).shape == (2, 3 * model.out_channels)


def test_released_fm_stays_at_initialisation(tmp_path, blob_pair, pretrained_ckpt):
    path = _finetune(tmp_path, blob_pair, pretrained_ckpt, model={"fm_mode": "released"})
    ckpt = load_checkpoint(path)
    torch.manual_seed(0)
    from lf2.train.checkpoint import load_fusion

    fusion = load_fusion(ckpt)
    assert not fusion.trainable
    rec = json.loads((path.parent / "epochs.jsonl").read_text().splitlines()[0])
    assert rec["losses"]["fm"] == []


def test_same_seed_same_model_and_resume_after_kill(tmp_path, blob_pair, pretrained_ckpt, monkeypatch):
    straight = load_checkpoint(_finetune(tmp_path, blob_pair, pretrained_ckpt, out="a"))
    again = load_checkpoint(_finetune(tmp_path, blob_pair, pretrained_ckpt, out="b"))
    for key, value in straight["teacher"].items():
        assert torch.equal(value, again["teacher"][key]), key

    # kill the run in the middle of epoch 2: the epoch-1 state survives, then resume
    from lf2.train import finetune as ft_module

    original = ft_module.FinetuneTrainer.train_step
    calls = {"n": 0}

    def dying_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # 2 iterations per epoch: the 3rd step is inside epoch 2
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ft_module.FinetuneTrainer, "train_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        _finetune(tmp_path, blob_pair, pretrained_ckpt, out="c")
    state = load_checkpoint(tmp_path / "c" / "state.pt")
    assert state["epoch"] == 1 and not (tmp_path / "c" / "model.pt").exists()
    monkeypatch.setattr(ft_module.FinetuneTrainer, "train_step", original)
    resumed = load_checkpoint(_finetune(tmp_path, blob_pair, pretrained_ckpt, out="c"))
    for part in ("teacher", "student", "fusion"):
        for key, value in straight[part].items():
            assert torch.equal(value, resumed[part][key]), f"{part}.{key}"
    log = (tmp_path / "c" / "epochs.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in log] == [1, 2]


def test_non_finite_loss_names_epoch_and_iteration(tmp_path, blob_pair, pretrained_ckpt, monkeypatch):
    from lf2.train import finetune as ft_module

    original = ft_module.FinetuneTrainer.train_step

    def nan_step(self, *args, **kwargs):
        loss, terms = original(self, *args, **kwargs)
        return loss * float("nan"), terms

    monkeypatch.setattr(ft_module.FinetuneTrainer, "train_step", nan_step)
    with pytest.raises(TrainingError, match="epoch 1, iteration 1"):
        _finetune(tmp_path, blob_pair, pretrained_ckpt, variant="baseline")


@pytest.mark.parametrize("clusters", [1, 10_000])
def test_bad_cluster_count(tmp_path, blob_pair, pretrained_ckpt, clusters):
    with pytest.raises(ParamsError, match=f"M_t\\) = {clusters}"):
        _finetune(tmp_path, blob_pair, pretrained_ckpt, clusters=clusters)


def test_checkpoint_from_another_architecture(tmp_path, blob_pair, pretrained_ckpt):
    with pytest.raises(CheckpointError, match="arch: checkpoint has 'resnet18', params ask for 'resnet34'"):
        _finetune(tmp_path, blob_pair, pretrained_ckpt, model={"arch": "resnet34"})


def test_manifest_without_train_images(tmp_path, blob_pair, pretrained_ckpt):
    import pandas as pd

    from lf2.data.manifest import load_manifest

    m = load_manifest(blob_pair[1])
    bad = tmp_path / "notrain"
    bad.mkdir()
    m.table[m.table["split"] != "train"].to_csv(bad / "manifest.csv", index=False)
    (bad / "meta.json").write_text(json.dumps({"name": "notrain", "root": str(m.root)}))
    assert isinstance(pd.read_csv(bad / "manifest.csv"), pd.DataFrame)
    with pytest.raises(LF2Error, match="no 'train' images"):
        run_finetune(tiny_params(tmp_path), variant="lf2", clusters=6, init=pretrained_ckpt, target=bad,
                     out=tmp_path / "x" / "model.pt")


def test_corrupt_checkpoint_is_named(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="model.pt cannot be read"):
        load_checkpoint(bad)


def test_resume_state_from_other_params_is_not_continued(tmp_path):
    from lf2.train.checkpoint import resumable_state, save_checkpoint
    from lf2.train.records import run_fingerprint

    params = tiny_params(tmp_path)
    run = {"stage": "finetune", "row": "lf2_m6"}
    fp = run_fingerprint(params, run)
    save_checkpoint(tmp_path / "state.pt", {"fingerprint": fp, "epoch": 1})
    assert resumable_state(tmp_path / "state.pt", fp)["epoch"] == 1
    swept = tiny_params(tmp_path, finetune={"lr": 1e-3})
    assert run_fingerprint(swept, run) != fp
    assert resumable_state(tmp_path / "state.pt", run_fingerprint(swept, run)) is None
    # where files go and which device runs them do not change the computation
    moved = {**params, "paths": {"data": "x", "runs": "y", "results": "z"}, "device": "cpu"}
    assert run_fingerprint(moved, run) == fp
    assert resumable_state(tmp_path / "missing.pt", fp) is None


def test_outliers_in_part_label_sets_are_not_a_class():
    out = _outputs()
    with_outliers = [LABELS[0], torch.tensor([0, 0, -1, -1, 1, 1, -1, -1]), LABELS[2]]
    only_inliers = NoFM(2).loss_terms(out, with_outliers, {1}, LossWeights())["part_tri1"]
    from lf2 import losses

    keep = with_outliers[1] >= 0
    expected = losses.softmax_triplet(out.expert_feats[0][keep], with_outliers[1][keep])
    assert torch.allclose(only_inliers, expected)


def test_dbscan_pseudo_labels_run_through_the_loop(tmp_path, blob_pair, pretrained_ckpt):
    clustering = {"method": "dbscan", "dbscan_eps": 0.6, "dbscan_min_samples": 2, "kmeans_iters": 10,
                  "k1": 6, "k2": 2}
    path = _finetune(tmp_path, blob_pair, pretrained_ckpt, finetune={"clustering": clustering})
    rec = json.loads((path.parent / "epochs.jsonl").read_text().splitlines()[0])
    assert all(c["num_clusters"] >= 4 for c in rec["clusters"])


def test_evaluate_cli_on_a_trained_checkpoint(tmp_path, blob_pair, pretrained_ckpt):
    from lf2.cli import main

    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--checkpoint", str(pretrained_ckpt), "--manifest", str(blob_pair[1]),
                 "--out", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert 0.0 <= metrics["mAP"] <= 1.0 and len(metrics["cmc"]) == 50
    assert metrics["num_query"] == 32 and metrics["feature_dim"] == 3 * 512
    assert metrics["checkpoint"]["path"].endswith("model.pt")


def test_epoch_indices_go_to_the_device_in_order():
    from lf2.train.sampling import on_device

    labels = [np.repeat(np.arange(6), 3), np.repeat(np.arange(3), 6), np.tile(np.arange(9), 2)]
    steps = list(make_sampling("per_label", labels, 2, 3, 4, seed=1))
    planned = on_device(steps, "cpu")
    assert len(planned) == len(steps)
    for host, dev in zip(steps, planned, strict=True):
        assert [s for _, s in host] == [s for _, s in dev]
        for (idx, _), (idx_t, _) in zip(host, dev, strict=True):
            assert idx_t.dtype == torch.int64 and idx_t.tolist() == idx.tolist()
    assert on_device([[], []], "cpu") == [[], []]


def test_pretrain_target_bn_forwards_target_batches(tmp_path, blob_pair, pretrained_ckpt):
    from lf2.train.pretrain import run_pretrain

    src, tgt = blob_pair
    params = tiny_params(tmp_path, pretrain={"target_bn": True})
    out = run_pretrain(params, source=src, target=tgt, out=tmp_path / "tbn" / "model.pt")
    with_target = load_checkpoint(out)["student"]
    source_only = load_checkpoint(pretrained_ckpt)["student"]
    # the target batches move the BN statistics (no loss), so the checkpoints differ there
    assert not torch.equal(with_target["backbone.bn1.running_mean"], source_only["backbone.bn1.running_mean"])
