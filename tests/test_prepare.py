"""`lf2 prepare` on real-layout trees: validation, corrupt images, official counts, CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from lf2.cli import main
from lf2.data.prepare import prepare_dataset
from lf2.errors import DatasetError, ParamsError


def tiny_jpeg(path: Path, seed: int = 0) -> Path:
    arr = np.random.default_rng(seed).integers(0, 255, (8, 4, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format="JPEG", quality=90)
    return path


def link_all(src: Path, folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        os.link(src, folder / n)


def spread(ids: list[int], images: int) -> list[int]:
    """``images`` pids covering every id in ``ids`` (round robin)."""
    return [ids[i % len(ids)] for i in range(images)]


def market_names(pids: list[int], start: int = 0) -> list[str]:
    return [f"{p:04d}_c{1 + i % 6}s1_{start + i:06d}_00.jpg" if p >= 0
            else f"-1_c{1 + i % 6}s1_{start + i:06d}_00.jpg" for i, p in enumerate(pids)]


def small_market(root: Path) -> Path:
    d = root / "Market-1501-v15.09.15"
    src = tiny_jpeg(root / "src.jpg")
    link_all(src, d / "bounding_box_train", market_names([1, 1, 3, 3]))
    link_all(src, d / "query", market_names([5, 6]))
    link_all(src, d / "bounding_box_test", market_names([5, 6, 0, -1]))
    (d / "query" / "Thumbs.db").write_bytes(b"not an image")
    return d


def read_manifest(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "manifest.csv")


def counts(table: pd.DataFrame) -> dict[str, tuple[int, int]]:
    return {s: (int(g["pid"].nunique()), len(g)) for s, g in table.groupby("split")}


def test_official_market_counts(tmp_path):
    d = tmp_path / "Market-1501-v15.09.15"
    src = tiny_jpeg(tmp_path / "one.jpg")
    link_all(src, d / "bounding_box_train", market_names(spread(list(range(1, 1502, 2)), 12936)))
    test_ids = list(range(2, 1502, 2))  # 750 test identities
    link_all(src, d / "query", market_names(spread(test_ids, 3368)))
    gallery = spread([0, *test_ids], 15913) + [-1] * 3819
    link_all(src, d / "bounding_box_test", market_names(gallery, start=100000))
    (d / "bounding_box_test" / "Thumbs.db").write_bytes(b"x")
    assert len(os.listdir(d / "bounding_box_test")) == 15913 + 3819 + 1

    manifest = prepare_dataset("market1501", tmp_path / "out", root=tmp_path, workers=2)
    table = pd.read_csv(manifest)
    assert counts(table) == {"train": (751, 12936), "query": (750, 3368), "gallery": (751, 15913)}
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["count_warnings"] == []
    assert meta["left_out"] == {"junk (pid -1)": 3819}
    assert meta["root"] == str(d.resolve())


def test_official_duke_counts(tmp_path):
    d = tmp_path / "DukeMTMC-reID"
    src = tiny_jpeg(tmp_path / "one.jpg")

    def names(pids: list[int], start: int) -> list[str]:
        return [f"{p:04d}_c{1 + i % 8}_f{start + i:07d}.jpg" for i, p in enumerate(pids)]

    link_all(src, d / "bounding_box_train", names(spread(list(range(1, 703)), 16522), 0))
    query_ids = list(range(1000, 1702))
    link_all(src, d / "query", names(spread(query_ids, 2228), 0))
    gallery_ids = query_ids + list(range(5000, 5408))  # 702 + 408 distractor identities
    link_all(src, d / "bounding_box_test", names(spread(gallery_ids, 17661), 100000))

    table = pd.read_csv(prepare_dataset("dukemtmc", tmp_path / "out", root=d, workers=2))
    assert counts(table) == {"train": (702, 16522), "query": (702, 2228), "gallery": (1110, 17661)}
    assert table["camid"].between(0, 7).all()


def test_corrupt_image_fails_and_lists_path(tmp_path, capsys):
    d = small_market(tmp_path)
    bad = d / "bounding_box_test" / "0005_c2s1_000999_00.jpg"
    good = (tmp_path / "src.jpg").read_bytes()
    bad.write_bytes(good[: len(good) // 2])  # truncated JPEG
    out = tmp_path / "out"
    rc = main(["prepare", "market1501", "--root", str(tmp_path), "--out", str(out)])
    assert rc == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "--skip-corrupt" in err
    assert not out.exists()  # nothing written unless complete

    rc = main(["prepare", "market1501", "--root", str(tmp_path), "--out", str(out), "--skip-corrupt"])
    assert rc == 0
    table = read_manifest(out)
    assert "bounding_box_test/0005_c2s1_000999_00.jpg" not in set(table["path"])
    assert len(table) == 4 + 2 + 3  # junk dropped, Thumbs.db ignored
    meta = json.loads((out / "meta.json").read_text())
    assert meta["corrupt_skipped"] == ["bounding_box_test/0005_c2s1_000999_00.jpg"]
    assert "left out 1 corrupt" in capsys.readouterr().out


def test_missing_image_in_msmt_list_is_corrupt(tmp_path):
    d = tmp_path / "MSMT17_V1"
    tiny_jpeg(d / "train" / "0000" / "0000_000_01_0303morning_0008_0.jpg")
    tiny_jpeg(d / "test" / "0000" / "0000_000_02_0303morning_0009_0.jpg")
    (d / "list_train.txt").write_text("0000/0000_000_01_0303morning_0008_0.jpg 0\n")
    (d / "list_val.txt").write_text("")
    (d / "list_query.txt").write_text("0000/0000_000_02_0303morning_0009_0.jpg 0\n")
    (d / "list_gallery.txt").write_text("0000/0000_000_02_0303morning_0009_0.jpg 0\n")
    table = pd.read_csv(prepare_dataset("msmt17", tmp_path / "out", root=tmp_path))
    assert counts(table) == {"gallery": (1, 1), "query": (1, 1), "train": (1, 1)}
    (d / "list_gallery.txt").write_text("0000/0000_000_02_0303morning_0009_0.jpg 0\n"
                                        "0000/0000_000_02_0303morning_7777_0.jpg 0\n")
    with pytest.raises(DatasetError, match="7777"):
        prepare_dataset("msmt17", tmp_path / "out2", root=tmp_path)


def test_cli_cuhk03_labeled(tmp_path):
    src = tiny_jpeg(tmp_path / "one.png")
    for v in ("detected", "labeled"):
        base = tmp_path / "cuhk03-np" / v
        link_all(src, base / "bounding_box_train", ["0001_c1_1.png", "0002_c2_1.png"])
        link_all(src, base / "query", ["0003_c1_1.png"])
        link_all(src, base / "bounding_box_test", ["0003_c2_1.png"] + (["0004_c2_1.png"] if v == "labeled" else []))
    out = tmp_path / "out"
    assert main(["prepare", "cuhk03", "--root", str(tmp_path), "--out", str(out),
                 "--cuhk03-type", "labeled"]) == 0
    table = read_manifest(out)
    assert len(table) == 5 and table["path"].str.startswith("labeled/").all()
    assert json.loads((out / "meta.json").read_text())["name"] == "cuhk03-labeled"


def test_no_validate_skips_decoding(tmp_path):
    d = small_market(tmp_path)
    (d / "query" / "0005_c3s1_000777_00.jpg").write_bytes(b"garbage")
    table = pd.read_csv(prepare_dataset("market1501", tmp_path / "o", root=d, validate=False))
    assert "query/0005_c3s1_000777_00.jpg" in set(table["path"])


def test_real_dataset_needs_root_and_known_options(tmp_path):
    with pytest.raises(ParamsError, match="root"):
        prepare_dataset("market1501", tmp_path / "o")
    with pytest.raises(ParamsError, match="domain"):
        prepare_dataset("market1501", tmp_path / "o", root=tmp_path, domain="a")
    with pytest.raises(ParamsError, match="unknown dataset kind"):
        prepare_dataset("viper", tmp_path / "o", root=tmp_path)


def write_params(tmp_path: Path, datasets: dict) -> Path:
    root = Path(__file__).resolve().parents[1]
    params = yaml.safe_load((root / "params" / "default.yaml").read_text())
    params["datasets"].update(datasets)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_cli_params_entry_real_dataset(tmp_path):
    d = small_market(tmp_path)
    params = write_params(tmp_path, {"market": {"kind": "market1501", "root": str(d)}})
    out = tmp_path / "out"
    assert main(["prepare", "--params", str(params), "--dataset", "market", "--out", str(out)]) == 0
    assert len(read_manifest(out)) == 9


def test_cli_params_entry_synthetic_with_override(tmp_path):
    params = write_params(tmp_path, {"tiny": {
        "kind": "synthetic", "domain": "b", "seed": 3, "train_ids": 4, "test_ids": 4,
        "images_per_id": 3, "height": 32, "width": 16}})
    out = tmp_path / "out"
    assert main(["prepare", "synthetic", "--params", str(params), "--dataset", "tiny",
                 "--out", str(out), "--height", "40"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["synthetic"]["domain"] == "b" and meta["synthetic"]["height"] == 40
    assert meta["synthetic"]["width"] == 16 and meta["root"] == "images"
    first = read_manifest(out)["path"].iloc[0]
    assert Image.open(out / "images" / first).size == (16, 40)


def test_cli_params_errors(tmp_path, capsys):
    params = write_params(tmp_path, {})
    out = str(tmp_path / "out")
    assert main(["prepare", "--params", str(params), "--dataset", "nope", "--out", out]) == 1
    assert "datasets.nope" in capsys.readouterr().err
    assert main(["prepare", "market1501", "--params", str(params), "--dataset", "synth_a",
                 "--out", out]) == 1
    assert "'synthetic'" in capsys.readouterr().err
    assert main(["prepare", "--out", out]) == 1
    assert main(["prepare", "synthetic", "--root", "x", "--out", out]) == 1


def test_cli_kinds_match_the_registry():
    from lf2.commands.prepare import KINDS as CLI_KINDS
    from lf2.data.prepare import KINDS

    assert set(CLI_KINDS) == set(KINDS)
