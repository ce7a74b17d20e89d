"""lf2 figures: every figure is written (PNG + PDF) from fake artifacts; Grad-CAM maths."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lf2 import layout
from lf2.config import load_params, row_spec, rows_for
from lf2.errors import LF2Error
from lf2.report.curves import (
    load_epochs,
    plot_cluster_consistency,
    plot_cmc,
    plot_training_curves,
)
from lf2.report.figures import FIGURES, draw_figures, save_figure
from lf2.report.gradcam import grad_cam, select_queries
from lf2.report.tsne import select_identities, select_images

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "params" / "default.yaml"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- fake artifacts


def _epoch_record(stage: str, row: str, epoch: int, variant: str, k: int = 2,
                  shift: float = 0.0) -> dict:
    decay = math.exp(-(0.3 + shift) * epoch)
    sets = ["global"]
    if variant == "lf2":
        sets += [f"fused{j + 1}" for j in range(k)]
    elif variant == "no_fm":
        sets += [f"part{j + 1}" for j in range(k)]
    rec = {
        "stage": stage, "row": row, "epoch": epoch, "iters": 20, "lr": 3.5e-4,
        "losses": {
            "total": 3.0 * decay + 0.5, "cls": 2.0 * decay, "tri": 0.3 * decay,
            "part_tri": [0.6 * decay] * k if variant in ("lf2", "no_fm") else [],
            "fm": [0.4 * decay] * k if variant == "lf2" else [],
        },
        "time": {"extract": 0.1, "cluster": 0.1, "train": 1.0, "eval": 0.0},
        "eval": None,
    }
    if stage == "finetune":
        rec["clusters"] = [
            {"set": s, "num_clusters": 48, "singletons": 0, "outliers": 0, "size_min": 1,
             "size_median": 8, "size_max": 20, "purity": min(1.0, 0.4 + shift + 0.07 * epoch + 0.02 * j),
             "nmi": 0.5}
            for j, s in enumerate(sets)
        ]
        if len(sets) > 1:
            rec["agreement"] = {f"ari_{a}_{b}": min(1.0, 0.2 + shift + 0.09 * epoch + 0.03 * (a + b))
                                for a in range(len(sets)) for b in range(a + 1, len(sets))}
        if epoch % 2 == 0:
            rec["eval"] = {"mAP": 0.1 * epoch + shift, "rank1": 0.12 * epoch + shift,
                           "note": "test split, monitoring only; never used for model selection"}
    return rec


def _run_file(params: dict, direction: str, row: str, name: str = "epochs.jsonl") -> Path:
    seed = layout.reference_seed(params)
    return Path(layout.run_dir(params, direction, row, seed)) / name


def _write_logs_and_metrics(params: dict, epochs: int = 4) -> None:
    seed = layout.reference_seed(params)
    for i, d in enumerate(params["directions"]):
        pre = _run_file(params, d["name"], "pretrain")
        pre.parent.mkdir(parents=True, exist_ok=True)
        pre.write_text("".join(json.dumps(_epoch_record("pretrain", "pretrain", e, "pretrain")) + "\n"
                               for e in range(1, epochs + 1)))
        rows = rows_for(params)
        for j, row in enumerate(rows):
            variant = row_spec(params, row)["variant"]
            # increasing with the row, and rank10 (base + 0.15) stays a fraction for any row count
            base = 0.7 * (j + 1) / len(rows) + 0.02 * i
            m = {"mAP": base, "rank1": base + 0.05, "rank5": base + 0.1, "rank10": base + 0.15,
                 "cmc": [min(1.0, base + 0.05 + 0.02 * r) for r in range(50)], "rerank": False}
            p = Path(layout.metrics_path(params, d["name"], row, seed))
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps(m))
            if variant == "direct":
                continue
            log = _run_file(params, d["name"], row)
            log.parent.mkdir(parents=True, exist_ok=True)
            recs = [_epoch_record("finetune", row, e, variant, shift=0.04 * j + 0.01 * i)
                    for e in range(1, epochs + 1)]
            # a resumed run may log an epoch again: the last record must win
            recs.append({**recs[1], "lr": 1.0})
            log.write_text("".join(json.dumps(r) + "\n" for r in recs))


@pytest.fixture()
def params(tmp_path: Path) -> dict:
    p = load_params(DEFAULT)
    p["paths"] = {"data": str(tmp_path / "data"), "runs": str(tmp_path / "runs"),
                  "results": str(tmp_path / "results")}
    p["device"] = "cpu"
    return p


def _check_written(paths: list[Path], names: list[str]) -> None:
    assert sorted(p.name for p in paths) == sorted(f"{n}.{e}" for n in names for e in ("png", "pdf"))
    for p in paths:
        data = p.read_bytes()
        assert len(data) > 1000, p
        assert data.startswith(PNG_MAGIC if p.suffix == ".png" else b"%PDF"), p


# --------------------------------------------------------------------------- artifact figures


@pytest.mark.slow
def test_artifact_figures_written(params: dict, tmp_path: Path) -> None:
    _write_logs_and_metrics(params)
    out = tmp_path / "figs"
    names = ["cmc", "training_curves", "cluster_consistency"]
    written = draw_figures(params, out, names)
    _check_written(written, names)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_load_epochs_last_record_wins_and_errors(params: dict, tmp_path: Path) -> None:
    _write_logs_and_metrics(params)
    recs = load_epochs(_run_file(params, "A-to-B", "lf2_m48"))
    assert [r["epoch"] for r in recs] == [1, 2, 3, 4]
    assert recs[1]["lr"] == 1.0  # epoch 2 was logged again later in the file
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"epoch": 1}\nnot json\n')
    with pytest.raises(LF2Error, match=r"bad.jsonl, line 2"):
        load_epochs(bad)
    with pytest.raises(LF2Error, match="does not exist"):
        load_epochs(tmp_path / "missing.jsonl")


def test_missing_log_or_metrics_is_named(params: dict, tmp_path: Path) -> None:
    _write_logs_and_metrics(params)
    victim = _run_file(params, "B-to-A", "no_fm")
    victim.unlink()
    with pytest.raises(LF2Error, match=str(victim)):
        draw_figures(params, tmp_path / "f", ["cluster_consistency"])
    m = Path(layout.metrics_path(params, "A-to-B", "direct", layout.reference_seed(params)))
    m.unlink()
    with pytest.raises(LF2Error, match=str(m)):
        draw_figures(params, tmp_path / "f", ["cmc"])
    with pytest.raises(LF2Error, match="unknown figure"):
        draw_figures(params, tmp_path / "f", ["histogram"])


def test_plot_functions_on_hand_made_data(tmp_path: Path) -> None:
    fig = plot_cmc({"X": {"a": [0.5, 0.7, 0.9], "b": [0.2, 0.4, 0.6]}}, max_rank=3)
    ax = fig.axes[0]
    assert [line.get_ydata()[0] for line in ax.get_lines()] == [50.0, 20.0]
    assert ax.get_xlabel() == "rank" and "%" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a (R1 50.0)", "b (R1 20.0)"]
    rec = {"epoch": 1, "losses": {"total": 1.0, "cls": 0.5, "tri": 0.2, "part_tri": [0.1, 0.2],
                                  "fm": []}}
    fig = plot_training_curves({"X": {"row": [rec, {**rec, "epoch": 2}]}})
    titles = [a.get_title() for a in fig.axes]
    assert any("part softmax-triplet" in t for t in titles)
    part_ax = next(a for a in fig.axes if "part softmax" in a.get_title())
    assert list(part_ax.get_lines()[0].get_ydata()) == pytest.approx([0.3, 0.3])  # summed parts
    fm_ax = next(a for a in fig.axes if "FM loss" in a.get_title())
    assert not fm_ax.get_lines()  # FM not trained: an empty panel with a note
    assert len(save_figure(fig, tmp_path, "t")) == 2
    with pytest.raises(LF2Error):
        plot_cluster_consistency({"X": {"row": [rec]}})


def test_cluster_consistency_panels(tmp_path: Path) -> None:
    recs = [_epoch_record("finetune", "lf2_m48", e, "lf2") for e in (1, 2, 3)]
    fig = plot_cluster_consistency({"X": {"LF²": recs}})
    titles = [a.get_title() for a in fig.axes]
    assert titles[:3] == [rf"X: ARI($\hat y_{a}$, $\hat y_{b}$)" for a, b in ((0, 1), (0, 2), (1, 2))]
    assert titles[3:] == [r"X: purity of $\hat y_0$ (global)", r"X: purity of $\hat y_1$ (fused1)",
                          r"X: purity of $\hat y_2$ (fused2)"]
    ari01 = fig.axes[0].get_lines()[0].get_ydata()
    assert list(ari01) == pytest.approx([0.2 + 0.09 * e + 0.03 for e in (1, 2, 3)])


# --------------------------------------------------------------------------- grad-cam maths


def test_grad_cam_closed_form_for_average_pooling() -> None:
    torch.manual_seed(0)
    a = torch.rand(2, 5, 4, 3)
    cam = grad_cam(a, lambda t: t.mean(dim=(2, 3)))
    g = a.mean(dim=(2, 3))
    raw = torch.relu((g[:, :, None, None] * a).sum(1))
    low = raw.flatten(1).amin(1)[:, None, None]
    expected = (raw - low) / (raw.flatten(1).amax(1)[:, None, None] - low)
    assert cam.shape == (2, 4, 3)
    torch.testing.assert_close(cam, expected)
    assert cam.flatten(1).amax(1).tolist() == pytest.approx([1.0, 1.0])
    assert cam.flatten(1).amin(1).tolist() == pytest.approx([0.0, 0.0])


def test_grad_cam_is_zero_safe_and_local() -> None:
    a = torch.zeros(1, 3, 2, 2)
    assert torch.count_nonzero(grad_cam(a, lambda t: t.mean(dim=(2, 3)))) == 0
    a[0, 1, 1, 0] = 4.0  # one hot spot: the map peaks exactly there
    cam = grad_cam(a, lambda t: t.mean(dim=(2, 3)))
    assert cam[0, 1, 0] == 1.0 and float(cam.sum()) == 1.0


def test_selection_helpers_are_seeded_and_skip_distractors() -> None:
    pids = np.array([0, -1, 3, 3, 5, 5, 5, 7, 9, 9])
    ids = select_identities(pids, 2, seed=1)
    assert len(ids) == 2 and set(ids) <= {3, 5, 9}  # 7 has one image, 0/-1 never drawn
    assert np.array_equal(ids, select_identities(pids, 2, seed=1))
    idx = select_images(pids, np.array([5]), per_id=2)
    assert idx.tolist() == [4, 5]
    q = select_queries(pids, 10, seed=0)
    assert sorted(pids[q].tolist()) == [3, 5, 7, 9] and q.tolist() == sorted(q.tolist())
    with pytest.raises(LF2Error):
        select_identities(np.array([0, 0, 1]), 3, seed=0)


# --------------------------------------------------------------------------- model figures


def _tiny_dataset(root: Path, name: str, n_ids: int = 5, per_id: int = 3) -> None:
    from PIL import Image

    from lf2.data.manifest import write_manifest

    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    rows = []
    img_dir = root / name / "images"
    img_dir.mkdir(parents=True)
    for split, pid_base in (("train", 100), ("query", 1), ("gallery", 1)):
        for pid in range(pid_base, pid_base + n_ids):
            colour = rng.integers(0, 255, size=3)
            for k in range(per_id if split != "query" else 1):
                arr = np.clip(colour + rng.integers(-40, 40, size=(64, 32, 3)), 0, 255).astype(np.uint8)
                rel = f"{split}_{pid}_{k}.png"
                Image.fromarray(arr).save(img_dir / rel)
                rows.append({"split": split, "path": rel, "pid": pid, "camid": k % 2})
    write_manifest(root / name, pd.DataFrame(rows), root=img_dir, name=name)


def _tiny_checkpoints(params: dict, rows: list[str] | None = None) -> None:
    """Checkpoints in the lf2.train.checkpoint format for the first direction (copied to the
    others): two random resnet18 ReIDNets shared by all rows, a FusionHead for LF² rows."""
    from lf2.models.fusion import FusionHead
    from lf2.models.net import ReIDNet
    from lf2.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    d0 = params["directions"][0]["name"]
    student = ReIDNet(arch="resnet18", pretrained=False, last_stride=1, num_parts=2).eval()
    teacher = ReIDNet(arch="resnet18", pretrained=False, last_stride=1, num_parts=2).eval()
    cfg = student.config()
    fusion = FusionHead(student.out_channels, 2, 4, "paper")
    for row in rows or ["direct", *rows_for(params)[1:]]:
        lf2 = row_spec(params, row)["variant"] == "lf2"
        pre = row == "direct"
        save_checkpoint(_run_file(params, d0, row, "model.pt"), {
            "stage": "pretrain" if pre else "finetune", "row": "pretrain" if pre else row,
            "model_config": cfg, "student": student.state_dict(),
            "teacher": None if pre else teacher.state_dict(),
            "fusion": fusion.state_dict() if lf2 else None, "params": params, "epoch": 1,
            "meta": {"fusion": fusion.config()} if lf2 else {}})
    runs = Path(params["paths"]["runs"])
    for d in params["directions"][1:]:
        shutil.copytree(runs / d0, runs / d["name"], dirs_exist_ok=True)


@pytest.mark.slow
def test_model_figures_written(params: dict, tmp_path: Path) -> None:
    pytest.importorskip("lf2.models.net")
    pytest.importorskip("sklearn.manifold")
    params["rows"] = {"clusters": [48], "ablation_clusters": 48}
    params["directions"] = params["directions"][:1]  # one direction keeps the test short
    _tiny_dataset(Path(params["paths"]["data"]), "synth_b")
    _tiny_checkpoints(params)
    out = tmp_path / "figs"
    written = draw_figures(params, out, ["gradcam", "tsne"], num_images=2, tsne_ids=4)
    _check_written(written, ["gradcam", "tsne"])
    assert set(FIGURES) == {"gradcam", "tsne", "cluster_consistency", "cmc", "training_curves", "intervals"}
    assert set(FIGURES) == set(layout.FIGURE_KINDS)  # the DAG declares what draw_figures draws


@pytest.mark.slow
def test_gradcam_needs_fusion_weights(params: dict) -> None:
    pytest.importorskip("lf2.models.net")
    params["rows"] = {"clusters": [48], "ablation_clusters": 48}
    params["directions"] = params["directions"][:1]
    _tiny_dataset(Path(params["paths"]["data"]), "synth_b")
    _tiny_checkpoints(params, rows=["baseline"])
    lf2 = _run_file(params, "A-to-B", "lf2_m48", "model.pt")
    lf2.parent.mkdir(parents=True)
    shutil.copy(_run_file(params, "A-to-B", "baseline", "model.pt"), lf2)
    with pytest.raises(LF2Error, match="no Fusion Module"):
        draw_figures(params, Path(params["paths"]["results"]) / "f", ["gradcam"], num_images=1)


def test_cli_figures(params: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from lf2.cli import main

    _write_logs_and_metrics(params)
    pfile = tmp_path / "params.yaml"
    pfile.write_text(yaml.safe_dump(params))
    out = tmp_path / "figs"
    assert main(["figures", "--params", str(pfile), "--out", str(out), "--only", "cmc"]) == 0
    _check_written(sorted(out.iterdir()), ["cmc"])
    assert main(["figures", "--params", str(pfile), "--out", str(out), "--only", "pie"]) == 1
    assert "unknown figure" in capsys.readouterr().err


@pytest.mark.slow
def test_tsne_features_are_flip_summed_normalised_global_features() -> None:
    from lf2.models.net import ReIDNet
    from lf2.report.plot import to_input
    from lf2.report.tsne import global_features

    torch.manual_seed(0)
    model = ReIDNet(arch="resnet18", pretrained=False, num_parts=2).eval()
    imgs = np.random.default_rng(0).integers(0, 255, size=(5, 64, 32, 3), dtype=np.uint8)
    feats = global_features(model, imgs, batch_size=2)
    with torch.no_grad():
        x = to_input(imgs)
        g = model.pool(model.feature_map(x)) + model.pool(model.feature_map(x.flip(3)))
        expected = torch.nn.functional.normalize(g, dim=1).numpy()
    assert feats.shape == (5, model.out_channels)
    np.testing.assert_allclose(feats, expected, atol=1e-5)
