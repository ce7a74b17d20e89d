"""Fidelity to the paper and the released code: classifier rows across re-clustering,
the teacher's own BatchNorm statistics."""

from __future__ import annotations

import numpy as np
import torch

from lf2.train.bench_steps import RandomImages
from lf2.train.finetune import FinetuneTrainer
from lf2.train.variants import make_variant
from tests.conftest import tiny_params


def _trainer(tmp_path, variant: str = "baseline", clusters: int = 4, num_images: int = 32, **finetune):
    params = tiny_params(tmp_path, finetune=finetune)
    device = torch.device("cpu")
    images = RandomImages(params, device, num_images, 0.0)
    v = make_variant(variant, params["model"]["num_parts"])
    return FinetuneTrainer(params, v, clusters, images, None, device)


def test_kept_classifier_rows_follow_their_clusters(tmp_path):
    """reinit_classifier: false keeps rows; a relabelled clustering is matched back first."""
    tr = _trainer(tmp_path, reinit_classifier=False)
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 8)
    feats = np.eye(4, tr.student.out_channels, dtype=np.float32)[y] + 0.01 * rng.standard_normal(
        (32, tr.student.out_channels)).astype(np.float32)
    tr.set_labels([y, y, y], feats)
    rows = tr.student.classifier.weight.detach().clone()
    perm = np.array([2, 0, 3, 1])
    tr.set_labels([perm[y], perm[y], perm[y]], feats)
    np.testing.assert_array_equal(tr.label_sets[0], y)  # the global set got the old ids back
    assert torch.equal(tr.student.classifier.weight, rows)  # rows kept, now for the right clusters


def test_reinit_classifier_takes_new_ids_as_they_come(tmp_path):
    tr = _trainer(tmp_path, reinit_classifier=True)
    y = np.repeat(np.arange(4), 8)
    feats = np.eye(4, tr.student.out_channels, dtype=np.float32)[y]
    tr.set_labels([y, y, y], feats)
    perm = np.array([2, 0, 3, 1])
    tr.set_labels([perm[y]] * 3, feats)
    np.testing.assert_array_equal(tr.label_sets[0], perm[y])
    # the rows are the centroids of the new ids: row perm[c] is the unit vector e_c
    w = tr.student.classifier.weight.detach().numpy()
    np.testing.assert_allclose(w[perm, :4], np.eye(4), atol=1e-6)


def _bn_stats(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if k.endswith(("running_mean", "running_var"))}


def _exact_target_stats(model, target, height: int, width: int) -> dict[str, torch.Tensor]:
    """Independent recomputation: ONE train-mode forward of all target training images,
    un-augmented, with momentum 1: each BN layer's statistics are exactly its population
    statistics under the model's own weights (inputs normalised the same way upstream), at
    the image size the model was trained on."""
    import copy

    from lf2.data.manifest import load_manifest
    from lf2.train.images import TrainImages

    m = copy.deepcopy(model)
    paths = load_manifest(target).paths("train")
    images = TrainImages(paths, height=height, width=width, pad=0, flip=False, random_erasing=0.0, cache="memory",
                         device=torch.device("cpu"))
    x = next(images.eval_batches(len(paths)))
    for layer in m.modules():
        if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
            layer.momentum = 1.0
    m.train()
    with torch.no_grad():
        m.forward_train(x)
    return _bn_stats(m)


def _relative_gap(a: dict, b: dict) -> float:
    """Largest, over BN layers, relative L2 distance of the running variances."""
    return max(float((a[k] - b[k]).norm() / b[k].norm()) for k in a if k.endswith("running_var"))


def test_teacher_bn_own_is_the_teachers_own(tmp_path, blob_pair, pretrained_ckpt):
    """teacher_bn: own leaves the teacher with statistics of its own weights on the target.

    Tolerance: the stored statistics are a precise-BN average over augmented batches of 16
    (crop, flip, erasing), the reference the population statistics of the un-augmented
    images, so the two differ by augmentation and batch sampling alone. Measured on this
    run (largest layer, relative L2 gap of the running variances): stored 0.31; fresh
    precise-BN passes of the same teacher with two other seeds 0.27 and 0.29 (the
    estimator's own spread); clean batches of 16, 0.18. The student's statistics (mostly
    the source's after a few momentum-0.1 steps) are at 4.1. 0.5 lies above the estimator's
    spread and far below the student's gap (measured at 64x32). Re-measured at the redesigned
    default's 32x16 input, the exact statistics taken at the training size: stored 0.37 (bf16)
    and 0.36 (fp32), student 2.29 and 2.31.
    """
    from lf2.train.checkpoint import load_checkpoint
    from lf2.train.finetune import run_finetune

    params = tiny_params(tmp_path, finetune={"teacher_bn": "own"})
    out = run_finetune(params, variant="baseline", clusters=6, init=pretrained_ckpt, target=blob_pair[1],
                       out=tmp_path / "own" / "model.pt")
    ckpt = load_checkpoint(out)
    from lf2.models.net import ReIDNet

    teacher = ReIDNet.from_config(ckpt["model_config"])
    teacher.load_state_dict(ckpt["teacher"])
    student = ReIDNet.from_config(ckpt["model_config"])
    student.load_state_dict(ckpt["student"])
    exact = _exact_target_stats(teacher, blob_pair[1], params["input"]["height"], params["input"]["width"])
    gap_teacher = _relative_gap(_bn_stats(teacher), exact)
    gap_student = _relative_gap(_bn_stats(student), exact)
    assert gap_teacher < 0.5 and gap_student > 1.0


def _labelled(tr, k: int = 4):
    y = np.arange(len(tr.images)) % k
    feats = np.eye(k, tr.student.out_channels, dtype=np.float32)[y]
    tr.set_labels([y, y, y], feats)
    from lf2.train.sampling import make_sampling, on_device

    ft = tr.ft
    return iter(on_device(make_sampling(ft.sampling, tr.label_sets, ft.batch_p, ft.batch_k, 3, 0),
                          tr.device))


def _float_buffers(model):
    return [b.clone() for b in model.buffers() if b.is_floating_point()]


def test_teacher_bn_student_copies_the_students_statistics(tmp_path):
    tr = _trainer(tmp_path, teacher_bn="student")
    it, gen = _labelled(tr), torch.Generator().manual_seed(0)
    tr.train_step(next(it), gen)
    for a, b in zip(_float_buffers(tr.teacher.model), _float_buffers(tr.student), strict=True):
        assert torch.equal(a, b)


def test_teacher_bn_own_step_updates_from_teacher_forwards(tmp_path):
    """own_step: every step's batches go through the teacher in train mode (released code)."""
    tr = _trainer(tmp_path, variant="baseline", teacher_bn="own_step")
    bn = tr.teacher.model.bnneck
    before = int(bn.num_batches_tracked)
    it, gen = _labelled(tr), torch.Generator().manual_seed(0)
    tr.train_step(next(it), gen)
    tr.train_step(next(it), gen)
    assert int(bn.num_batches_tracked) == before + 2
    assert not tr.teacher.model.training  # back in eval mode after the forward
    assert not torch.equal(bn.running_var, tr.student.bnneck.running_var)


def test_teacher_bn_own_refreshes_only_from_teacher_passes(tmp_path):
    tr = _trainer(tmp_path, variant="baseline", teacher_bn="own")
    it, gen = _labelled(tr), torch.Generator().manual_seed(0)
    start = _float_buffers(tr.teacher.model)
    var0 = tr.teacher.model.bnneck.running_var.clone()
    tr.train_step(next(it), gen)
    for a, b in zip(_float_buffers(tr.teacher.model), start, strict=True):
        assert torch.equal(a, b)  # the step neither copies nor averages the student's
    tr.refresh_teacher_bn(1)
    t_var, s_var = tr.teacher.model.bnneck.running_var, tr.student.bnneck.running_var
    assert not torch.equal(t_var, var0) and not torch.equal(t_var, s_var)
    assert not tr.teacher.model.training


def test_ema_buffers_with_own_teacher_bn_is_a_params_error(tmp_path):
    import pytest

    from lf2.errors import ParamsError

    with pytest.raises(ParamsError, match="finetune.ema_buffers.*teacher_bn"):
        tiny_params(tmp_path, finetune={"ema_buffers": True, "teacher_bn": "own"})
    with pytest.raises(ParamsError, match="teacher_bn.*expected one of"):
        tiny_params(tmp_path, finetune={"teacher_bn": "mine"})


def test_released_expert_takes_concat_avg_max():
    import pytest

    from lf2.errors import LF2Error
    from lf2.models.net import ReIDNet

    net = ReIDNet(arch="resnet18", num_parts=2, expert="concat_fc_bn", pooling="avg+max", test_feature="heads")
    assert net.experts[0][0].in_features == 2 * net.out_channels  # 1024 -> 512 (4096 -> 2048 for R50)
    assert net.experts[0][0].out_features == net.out_channels
    net.eval()
    x = torch.randn(3, 3, 64, 32)
    out = net.forward_train(x)
    stripe = net.split_parts(out.feature_map)[1]
    manual = net.experts[1](torch.cat([stripe.mean(dim=(2, 3)), stripe.amax(dim=(2, 3))], dim=1))
    torch.testing.assert_close(out.expert_feats[1], manual)
    assert net(x).shape == (3, 3 * net.out_channels)
    assert ReIDNet.from_config(net.config()).expert == "concat_fc_bn"
    with pytest.raises(LF2Error, match="model.expert 'wide'.*fc_bn, concat_fc_bn"):
        ReIDNet(arch="resnet18", expert="wide")


def test_unknown_expert_or_clustering_is_a_params_error(tmp_path):
    import pytest

    from lf2.config import validate_params
    from lf2.errors import ParamsError

    params = tiny_params(tmp_path)
    params["model"]["expert"] = "wide"
    with pytest.raises(ParamsError, match="model.expert: 'wide' is not allowed; expected one of: 'fc_bn'"):
        validate_params(params)
    with pytest.raises(ParamsError, match="finetune.clustering.method: 'agglo'.*'minibatch_kmeans'"):
        tiny_params(tmp_path, finetune={"clustering": {**params["finetune"]["clustering"], "method": "agglo"}})


def test_minibatch_kmeans_clusters_and_warns_once_on_gpu(caplog):
    import logging

    from lf2 import cluster

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 8)) * 10
    y = np.repeat(np.arange(4), 25)
    x = (centres[y] + 0.1 * rng.normal(size=(100, 8))).astype(np.float32)
    cluster._warned_cpu = False
    with caplog.at_level(logging.WARNING, logger="lf2.cluster"):
        for _ in range(2):
            sets = cluster.pseudo_labels([x, x], method="minibatch_kmeans", k=4, seed=0, niter=100, eps=0.5,
                                         min_samples=2, k1=6, k2=3, device="cuda")
    assert sum("runs on the CPU" in r.message for r in caplog.records) == 1
    for labels in sets:
        assert sorted(set(labels)) == [0, 1, 2, 3]
        assert cluster.agreement(labels, y) == 1.0


def released_at_smoke_sizes(tmp_path) -> dict:
    """params/released.yaml with the sizes and data of params/smoke.yaml: every released
    choice kept, only datasets, paths, input size, schedule and M_t shrunk."""
    from lf2.config import validate_params
    from lf2.params_chain import read_merged
    from tests.conftest import ROOT

    rel = read_merged(ROOT / "params" / "released.yaml")  # released.yaml extends paper.yaml
    smoke = read_merged(ROOT / "params" / "smoke.yaml")  # smoke.yaml extends default.yaml
    for key in ("device", "precision", "datasets", "directions", "input", "rows", "evaluate"):
        rel[key] = smoke[key]
    rel["paths"] = {"data": str(tmp_path / "data"), "runs": str(tmp_path / "runs"), "results": str(tmp_path / "r")}
    rel["model"].update(arch="resnet18", pretrained=False)
    for stage in ("pretrain", "finetune"):
        sizes = ("epochs", "iters_per_epoch", "batch_p", "batch_k")
        rel[stage].update({k: smoke[stage][k] for k in sizes})
    rel["pretrain"].update(milestones=smoke["pretrain"]["milestones"], warmup_epochs=1)
    return validate_params(rel, source="released.yaml at smoke sizes")


def test_released_preset_runs_end_to_end(tmp_path, blob_pair):
    from lf2.train.checkpoint import load_checkpoint
    from lf2.train.finetune import run_finetune
    from lf2.train.pretrain import run_pretrain

    params = released_at_smoke_sizes(tmp_path)
    src, tgt = blob_pair
    pre = run_pretrain(params, source=src, target=tgt, out=tmp_path / "pretrain" / "model.pt")
    out = run_finetune(params, variant="lf2", clusters=6, init=pre, target=tgt, out=tmp_path / "lf2" / "model.pt")
    ckpt = load_checkpoint(out)
    assert ckpt["model_config"]["expert"] == "concat_fc_bn" and ckpt["model_config"]["pooling"] == "avg+max"
    assert ckpt["params"]["finetune"]["clustering"]["method"] == "minibatch_kmeans"
    assert ckpt["meta"]["selection"] == "last epoch"


def test_fm_ablation_variants_terms_and_fusion(tmp_path):
    from lf2.train.variants import LossWeights

    n, c = 8, 16
    g = torch.Generator().manual_seed(0)
    parts = [torch.randn(n, c, generator=g, requires_grad=True) for _ in range(2)]

    class Out:
        logits = torch.randn(n, 4, generator=g)
        global_feat = torch.randn(n, c, generator=g)
        part_feats = parts
        expert_feats = [torch.randn(n, c, generator=g) for _ in range(2)]

    y = torch.arange(n) % 4
    w = LossWeights()
    stripe = make_variant("no_fm_stripe", 2)
    terms = stripe.loss_terms(Out, [y, y, y], {0, 1, 2}, w)
    assert {"cls", "tri", "part_tri1", "part_tri2", "fm1", "fm2"} <= set(terms)
    from lf2 import losses

    torch.testing.assert_close(terms["fm2"], losses.softmax_triplet(parts[1], y))  # on unfused stripes
    base = make_variant("no_fm", 2).loss_terms(Out, [y, y, y], {0, 1, 2}, w)
    total_gap = stripe.total(terms, w) - make_variant("no_fm", 2).total(base, w)
    torch.testing.assert_close(total_gap, w.fm_loss_weight * (terms["fm1"] + terms["fm2"]))  # LF²'s weight

    tr = _trainer(tmp_path, variant="lf2_fm_frozen")
    assert tr.fusion is not None and not tr.fusion.trainable and tr.fusion_meta()["mode"] == "released"
    assert not tr.variant.needs_teacher_in_step(tr.fusion)  # no FM term to feed


def test_supplementary_rows_are_targets_and_tabled_apart(tmp_path):
    from lf2.config import row_spec, rows_for
    from lf2.report.tables import build_table2
    from lf2.report.tables_md import render_table2_md
    from lf2.workflow_dag import build_jobs

    params = tiny_params(tmp_path)
    params["rows"]["variants"] = ["direct", "baseline", "no_fm", "lf2", "no_fm_stripe", "lf2_fm_frozen"]
    assert rows_for(params)[-2:] == ["no_fm_stripe", "lf2_fm_frozen"]
    spec = row_spec(params, "lf2_fm_frozen")
    assert spec["variant"] == "lf2_fm_frozen" and spec["clusters"] == params["rows"]["ablation_clusters"]
    names = {j.name for j in build_jobs(params, "params/default.yaml")}
    for d in ("A-to-B", "B-to-A"):
        for row in ("no_fm_stripe", "lf2_fm_frozen"):
            assert f"finetune--{d}--{row}--seed0" in names and f"evaluate--{d}--{row}--seed0" in names
    metrics = {(d["name"], r): {"mAP": 0.5, "rank1": 0.6, "rank5": 0.7, "rank10": 0.8, "rerank": False}
               for d in params["directions"] for r in rows_for(params)}
    assert "LF² with FM frozen at init" not in build_table2(params, metrics)["Method"].tolist()
    import pandas as pd

    md = render_table2_md(params, metrics, pd.DataFrame(columns=["table", "method", "direction", "mAP", "rank1"]))
    sup = md[md.index("## Supplementary"):]
    assert "| LF² w/o FM + stripe loss (unfused) | 50.0 | 60.0 | 70.0 | 80.0 |" in sup
    assert "| LF² (M_t = 8) |" in sup and "| LF² w/o FM |" in sup
    params["rows"]["variants"] = ["direct", "baseline", "no_fm", "lf2"]
    assert "Supplementary" not in render_table2_md(params, metrics, pd.DataFrame(
        columns=["table", "method", "direction", "mAP", "rank1"]))
