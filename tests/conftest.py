"""Shared fixtures: tiny datasets and params the tests make themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def make_blob_dataset(out: Path, *, seed: int, train_ids: int = 12, test_ids: int = 8, per_id: int = 4,
                      height: int = 64, width: int = 32, name: str | None = None) -> Path:
    """A tiny dataset of noisy flat-colour images (one colour per identity), with a manifest."""
    from PIL import Image

    from lf2.data.manifest import write_manifest

    rng = np.random.default_rng(seed)
    img_dir = out / "img"
    img_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    specs = [("train", range(1, train_ids + 1)), ("query", range(100, 100 + test_ids)),
             ("gallery", range(100, 100 + test_ids))]
    for split, pids in specs:
        for pid in pids:
            top, bottom = rng.integers(0, 255, 3), rng.integers(0, 255, 3)
            for j in range(per_id):
                arr = np.empty((height, width, 3))
                arr[: height // 2], arr[height // 2:] = top, bottom
                arr = np.clip(arr + rng.normal(0, 25, arr.shape), 0, 255).astype(np.uint8)
                rel = f"img/{split}_{pid:04d}_{j}.png"
                Image.fromarray(arr).save(out / rel)
                cam = 0 if split == "query" else 1 + j % 2
                rows.append((split, rel, pid, cam))
    table = pd.DataFrame(rows, columns=["split", "path", "pid", "camid"])
    write_manifest(out, table, root=out, name=name or out.name)
    return out


def tiny_params(tmp_path: Path, **sections) -> dict:
    """params/default.yaml shrunk to a few iterations, with section overrides."""
    from lf2.config import validate_params

    params = yaml.safe_load((ROOT / "params" / "default.yaml").read_text())
    params["pretrain"].update(epochs=2, iters_per_epoch=2, milestones=[1], batch_p=4, batch_k=4)
    params["finetune"].update(epochs=2, iters_per_epoch=2, batch_p=4, batch_k=4)
    params["rows"].update(clusters=[6, 8], ablation_clusters=8, seeds=[0])  # one replicate
    params["paths"] = {"data": str(tmp_path / "data"), "runs": str(tmp_path / "runs"),
                       "results": str(tmp_path / "results")}
    for key, value in sections.items():
        params[key].update(value)
    return validate_params(params)


@pytest.fixture(scope="session")
def blob_pair(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("blobs")
    return make_blob_dataset(base / "src", seed=1), make_blob_dataset(base / "tgt", seed=2)


@pytest.fixture(scope="session")
def pretrained_ckpt(tmp_path_factory, blob_pair) -> Path:
    from lf2.train.pretrain import run_pretrain

    tmp = tmp_path_factory.mktemp("pretrain")
    src, tgt = blob_pair
    return run_pretrain(tiny_params(tmp), source=src, target=tgt, out=tmp / "pretrain" / "model.pt")
