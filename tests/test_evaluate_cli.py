"""`lf2 evaluate --features` on a tiny manifest written with write_manifest."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lf2.cli import main
from lf2.data.manifest import write_manifest
from lf2.eval import evaluate_ranking

KEYS = {
    "mAP",
    "rank1",
    "rank5",
    "rank10",
    "mINP",
    "cmc",
    "num_query",
    "num_valid_query",
    "num_gallery",
    "feature_dim",
    "rerank",
    "timings",
    "checkpoint",
    "features",
    "manifest",
    "dataset",
    "split_note",
}


@pytest.fixture()
def case(tmp_path):
    rng = np.random.default_rng(0)
    ids = 6
    q_pids = np.arange(1, ids + 1).repeat(2)
    g_pids = np.concatenate([np.arange(1, ids + 1).repeat(4), [0, 0, 0]])  # distractors
    q_cams = np.tile([0, 1], ids)
    g_cams = np.tile([0, 1, 2, 2], ids).tolist() + [1, 2, 0]
    centres = rng.standard_normal((ids + 1, 8))
    q = centres[q_pids] + 0.7 * rng.standard_normal((q_pids.size, 8))
    g = centres[g_pids] + 0.7 * rng.standard_normal((g_pids.size, 8))
    rows = [("train", "t/0001_c1_0.jpg", 1, 0), ("train", "t/0002_c2_0.jpg", 2, 1)]
    rows += [
        ("query", f"q/{p:04d}_{i}.jpg", p, c)
        for i, (p, c) in enumerate(zip(q_pids, q_cams, strict=True))
    ]
    rows += [
        ("gallery", f"g/{p:04d}_{i}.jpg", p, c)
        for i, (p, c) in enumerate(zip(g_pids, g_cams, strict=True))
    ]
    table = pd.DataFrame(rows, columns=["split", "path", "pid", "camid"])
    mdir = tmp_path / "tiny"
    write_manifest(mdir, table, root=mdir, name="tiny")
    feats = tmp_path / "feats.npz"
    np.savez(feats, query=q.astype(np.float32), gallery=g.astype(np.float32))
    return {
        "manifest": mdir,
        "feats": feats,
        "q": q,
        "g": g,
        "q_pids": q_pids,
        "g_pids": g_pids,
        "q_cams": q_cams,
        "g_cams": np.array(g_cams),
        "tmp": tmp_path,
    }


def test_features_mode_writes_metrics(case, capsys) -> None:
    out = case["tmp"] / "m" / "metrics.json"
    rc = main(
        [
            "evaluate",
            "--features",
            str(case["feats"]),
            "--manifest",
            str(case["manifest"]),
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    m = json.loads(out.read_text())
    assert set(m) == KEYS
    qn = case["q"] / np.linalg.norm(case["q"], axis=1, keepdims=True)
    gn = case["g"] / np.linalg.norm(case["g"], axis=1, keepdims=True)
    ref = evaluate_ranking(
        (1 - qn @ gn.T).astype(np.float32),
        case["q_pids"],
        case["g_pids"],
        case["q_cams"],
        case["g_cams"],
    )
    assert m["mAP"] == pytest.approx(ref["mAP"], abs=1e-6)
    assert m["rank1"] == pytest.approx(ref["cmc"][0]) and m["rank10"] == pytest.approx(
        ref["cmc"][9]
    )
    assert len(m["cmc"]) == 50 and m["rerank"] is False and m["checkpoint"] is None
    assert (m["num_query"], m["num_gallery"], m["feature_dim"]) == (12, 27, 8)
    assert m["dataset"] == "tiny" and m["split_note"] == "query/gallery test split"
    assert m["features"] == str(case["feats"])
    assert set(m["timings"]) == {"extract", "distance", "rerank", "ranking", "total"}
    assert all(v >= 0 for v in m["timings"].values())
    line = capsys.readouterr().out
    assert "mAP" in line and "Rank-1" in line and "Rank-10" in line and "%" in line


def test_rerank_flag_changes_distance(case) -> None:
    out = case["tmp"] / "rr.json"
    rc = main(
        [
            "evaluate",
            "--features",
            str(case["feats"]),
            "--manifest",
            str(case["manifest"] / "manifest.csv"),
            "--out",
            str(out),
            "--rerank",
        ]
    )
    assert rc == 0
    m = json.loads(out.read_text())
    assert m["rerank"] is True and m["timings"]["rerank"] > 0 and 0 <= m["mAP"] <= 1


def test_params_file_sets_rerank(case, tmp_path) -> None:
    out = tmp_path / "p.json"
    rc = main(
        [
            "evaluate",
            "--features",
            str(case["feats"]),
            "--manifest",
            str(case["manifest"]),
            "--out",
            str(out),
            "--params",
            "params/default.yaml",
            "--set",
            "evaluate.rerank=true",
            "--set",
            "evaluate.k1=5",
            "--set",
            "evaluate.k2=2",
        ]
    )
    assert rc == 0 and json.loads(out.read_text())["rerank"] is True


def test_length_mismatch_and_bad_files(case, capsys) -> None:
    bad = case["tmp"] / "bad.npz"
    np.savez(bad, query=case["q"][:5], gallery=case["g"])
    out = case["tmp"] / "x.json"
    args = ["evaluate", "--manifest", str(case["manifest"]), "--out", str(out)]
    assert main([*args, "--features", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "5 query features" in err and "12 query images" in err and not out.exists()
    np.savez(bad, query=case["q"])
    assert main([*args, "--features", str(bad)]) == 1
    assert "missing array(s) gallery" in capsys.readouterr().err
    assert main([*args, "--features", str(case["tmp"] / "nope.npz")]) == 1
    assert "does not exist" in capsys.readouterr().err
    np.savez(bad, query=case["q"], gallery=case["g"][:, :3])
    assert main([*args, "--features", str(bad)]) == 1
    assert "same dimension" in capsys.readouterr().err
    assert main([*args, "--features", str(case["feats"]), "--set", "evaluate.k1=3"]) == 1
    assert "--set needs --params" in capsys.readouterr().err


def test_no_valid_query_is_a_user_error(case, capsys) -> None:
    feats = case["tmp"] / "f2.npz"
    np.savez(feats, query=case["q"], gallery=case["g"])
    # a manifest whose gallery holds only other identities
    rows = [("train", "a.jpg", 1, 0)]
    rows += [("query", f"q{i}.jpg", 1, 0) for i in range(12)]
    rows += [("gallery", f"g{i}.jpg", 99, 1) for i in range(27)]
    other = case["tmp"] / "other"
    write_manifest(
        other, pd.DataFrame(rows, columns=["split", "path", "pid", "camid"]), root=other, name="o"
    )
    rc = main(
        [
            "evaluate",
            "--features",
            str(feats),
            "--manifest",
            str(other),
            "--out",
            str(case["tmp"] / "o.json"),
        ]
    )
    assert rc == 1 and "none of the 12 queries" in capsys.readouterr().err


def test_checkpoint_mode_with_stub_model(tmp_path, monkeypatch, capsys) -> None:
    """The --checkpoint path end to end, with load_model stubbed by a tiny torch model."""
    import torch
    from PIL import Image

    import lf2.train.checkpoint as ckpt_mod

    rows = [("train", "t.png", 1, 0)]
    root = tmp_path / "imgs"
    root.mkdir()
    rng = np.random.default_rng(1)
    for split, n in (("query", 4), ("gallery", 8)):
        for i in range(n):
            pid, cam = i % 2 + 1, (i % 4 if split == "gallery" else 0)
            name = f"{split}_{i}.png"
            img = (rng.random((8, 4, 3)) * 40 + 100 * pid).clip(0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / name)
            rows.append((split, name, pid, cam))
    Image.fromarray(np.zeros((8, 4, 3), np.uint8)).save(root / "t.png")
    mdir = tmp_path / "m"
    write_manifest(
        mdir, pd.DataFrame(rows, columns=["split", "path", "pid", "camid"]), root=root, name="stub"
    )
    ckpt_file = tmp_path / "model.pt"
    ckpt_file.write_bytes(b"not a real checkpoint")
    seen = {}

    class Tiny(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen["shape"] = tuple(x.shape)
            return torch.cat([x.mean(dim=(2, 3)), x[:, :, :, :2].mean(dim=(1, 2))], dim=1)

    def fake_load_model(path, which="auto", device=None, **_):
        seen["which"] = which
        return Tiny().eval(), {
            "params": {"input": {"height": 8, "width": 4}, "evaluate": {"batch_size": 3}},
            "meta": {"precision": "bf16"},  # what the training stages record
        }

    monkeypatch.setattr(ckpt_mod, "load_model", fake_load_model)
    out, npz = tmp_path / "metrics.json", tmp_path / "f" / "feats.npz"
    rc = main(
        [
            "evaluate",
            "--checkpoint",
            str(ckpt_file),
            "--manifest",
            str(mdir),
            "--out",
            str(out),
            "--save-features",
            str(npz),
            "--which",
            "student",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    m = json.loads(out.read_text())
    assert set(m) == KEYS and seen["which"] == "student" and seen["shape"][1:] == (3, 8, 4)
    # the precision of the training (from the checkpoint) and of this extraction (auto here)
    from lf2.train.runtime import precision_name, resolve_precision

    assert m["checkpoint"]["trained_precision"] == "bf16"
    assert m["checkpoint"]["precision"] == precision_name(resolve_precision("auto", torch.device("cpu")))
    assert m["checkpoint"]["path"] == str(ckpt_file) and len(m["checkpoint"]["sha256"]) == 64
    assert m["features"] == str(npz) and m["feature_dim"] == 5 and m["timings"]["extract"] > 0
    assert m["mAP"] == pytest.approx(1.0)  # the two identities differ in brightness
    with np.load(npz) as f:
        assert f["query"].shape == (4, 5) and f["gallery"].shape == (8, 5)
        np.testing.assert_allclose(np.linalg.norm(f["query"], axis=1), 1.0, rtol=1e-5)
    # the saved features evaluate to the same numbers
    out2 = tmp_path / "again.json"
    assert (
        main(["evaluate", "--features", str(npz), "--manifest", str(mdir), "--out", str(out2)]) == 0
    )
    assert json.loads(out2.read_text())["mAP"] == pytest.approx(m["mAP"], abs=1e-9)
