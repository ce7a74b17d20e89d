"""Real-dataset parsers on fake trees that follow the real naming rules."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from lf2.data.datasets import (
    OFFICIAL_COUNTS,
    PARSERS,
    check_official_counts,
    format_counts,
    load_dataset,
)
from lf2.errors import DatasetError


def touch_all(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b"")


def market_tree(root: Path, dirname: str = "Market-1501-v15.09.15") -> Path:
    d = root / dirname
    touch_all(d / "bounding_box_train", [
        "0002_c1s1_000451_03.jpg", "0002_c2s1_000551_01.jpg", "0007_c3s3_077419_03.jpg",
        "0000_c1s1_000000_01.jpg",  # pid 0 outside the gallery: left out
        "Thumbs.db", "notes.txt",
    ])
    touch_all(d / "query", ["0002_c3s1_000551_01.jpg", "0007_c1s1_000100_00.jpg", "Thumbs.db"])
    touch_all(d / "bounding_box_test", [
        "0002_c4s1_000451_03.jpg", "0007_c6s1_000001_01.jpg", "0000_c1s1_000001_01.jpg",
        "-1_c1s1_000401_03.jpg", "-1_c5s1_000401_03.jpg", "Thumbs.db",
    ])
    return d


def split_rows(table: pd.DataFrame, split: str) -> pd.DataFrame:
    return table[table["split"] == split]


def test_market_rules(tmp_path):
    d = market_tree(tmp_path)
    parsed = load_dataset("market1501", d)
    t = parsed.table
    assert list(t.columns) == ["split", "path", "pid", "camid"]
    assert len(split_rows(t, "train")) == 3 and len(split_rows(t, "query")) == 2
    gallery = split_rows(t, "gallery")
    assert len(gallery) == 3  # two junk images dropped
    assert -1 not in set(t["pid"])
    assert 0 in set(gallery["pid"]) and 0 not in set(split_rows(t, "train")["pid"])
    assert parsed.dropped == {"junk (pid -1)": 2, "pid 0 outside the gallery": 1}
    assert not t["path"].str.contains("Thumbs|notes").any()
    row = t[t["path"] == "bounding_box_test/0007_c6s1_000001_01.jpg"].iloc[0]
    assert (row.pid, row.camid) == (7, 5)  # cameras 0-based
    assert t["camid"].min() == 0
    assert parsed.root == d.resolve()
    assert (d / t["path"].iloc[0]).exists()


@pytest.mark.parametrize("dirname", ["Market-1501-v15.09.15", "Market-1501", "market1501"])
def test_market_root_is_folder_or_parent(tmp_path, dirname):
    d = market_tree(tmp_path, dirname)
    via_parent = load_dataset("market1501", tmp_path)
    via_folder = load_dataset("market1501", d)
    assert via_parent.root == via_folder.root == d.resolve()
    pd.testing.assert_frame_equal(via_parent.table, via_folder.table)


def test_missing_folder_is_named(tmp_path):
    d = market_tree(tmp_path)
    (d / "query").rename(d / "queries")
    with pytest.raises(DatasetError) as err:
        load_dataset("market1501", tmp_path)
    msg = str(err.value)
    assert "'query'" in msg and "bounding_box_train/" in msg and "expected layout" in msg


def test_missing_root(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("dukemtmc", tmp_path / "nowhere")


def test_unparsable_name_is_named(tmp_path):
    d = market_tree(tmp_path)
    (d / "query" / "person_12.jpg").write_bytes(b"")
    with pytest.raises(DatasetError, match="person_12.jpg"):
        load_dataset("market1501", d)


def test_empty_split(tmp_path):
    d = market_tree(tmp_path)
    for f in (d / "query").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match="'query' split has no images"):
        load_dataset("market1501", d)


def test_duke(tmp_path):
    d = tmp_path / "DukeMTMC-reID"
    touch_all(d / "bounding_box_train", ["0005_c2_f0046985.jpg", "0005_c5_f0051341.jpg"])
    touch_all(d / "query", ["0005_c8_f0046985.jpg"])
    touch_all(d / "bounding_box_test", ["0005_c1_f0046985.jpg", "7000_c4_f0046985.jpg"])
    parsed = load_dataset("dukemtmc", tmp_path)
    assert parsed.name == "dukemtmc"
    assert sorted(parsed.table["camid"]) == [0, 1, 3, 4, 7]
    assert set(split_rows(parsed.table, "gallery")["pid"]) == {5, 7000}


def msmt_tree(root: Path, version: str) -> Path:
    d = root / f"MSMT17_{version}"
    train_dir, test_dir = ("train", "test") if version == "V1" else ("mask_train_v2", "mask_test_v2")
    lists = {
        "list_train.txt": (train_dir, ["0000/0000_000_01_0303morning_0008_0.jpg 0",
                                       "0001/0001_003_15_0303noon_0017_2.jpg 1"]),
        "list_val.txt": (train_dir, ["0000/0000_005_07_0113morning_0099_1.jpg 0"]),
        "list_query.txt": (test_dir, ["0000/0000_000_12_0302morning_0006_2.jpg 0"]),
        "list_gallery.txt": (test_dir, ["0000/0000_001_03_0302noon_0406_0.jpg 0",
                                        "0001/0001_002_09_0114afternoon_0010_0.jpg 1"]),
    }
    for list_name, (img_dir, lines) in lists.items():
        for line in lines:
            rel = line.split()[0]
            (d / img_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (d / img_dir / rel).write_bytes(b"")
        (d / list_name).parent.mkdir(parents=True, exist_ok=True)
        (d / list_name).write_text("\n".join(lines) + "\n")
    return d


@pytest.mark.parametrize("version", ["V1", "V2"])
def test_msmt17_lists(tmp_path, version):
    d = msmt_tree(tmp_path, version)
    parsed = load_dataset("msmt17", tmp_path)
    t = parsed.table
    assert parsed.root == d.resolve()
    train = split_rows(t, "train")
    assert len(train) == 3  # list_val merged into train
    assert train["pid"].nunique() == 2
    assert sorted(train["camid"]) == [0, 6, 14]  # third '_' field, 0-based
    assert split_rows(t, "query")["camid"].tolist() == [11]
    prefix = "train/" if version == "V1" else "mask_train_v2/"
    assert train["path"].str.startswith(prefix).all()
    assert all((d / p).is_file() for p in t["path"])


def test_msmt17_bad_line(tmp_path):
    d = msmt_tree(tmp_path, "V1")
    (d / "list_query.txt").write_text("garbage-line\n")
    with pytest.raises(DatasetError, match="list_query.txt:1"):
        load_dataset("msmt17", d)


def test_msmt17_without_image_folders(tmp_path):
    d = msmt_tree(tmp_path, "V1")
    (d / "train").rename(d / "training")
    with pytest.raises(DatasetError, match="mask_train_v2"):
        load_dataset("msmt17", d)


@pytest.mark.parametrize("variant", ["detected", "labeled"])
def test_cuhk03_np(tmp_path, variant):
    d = tmp_path / "cuhk03-np"
    for v in ("detected", "labeled"):
        tag = 1 if v == "detected" else 2
        touch_all(d / v / "bounding_box_train", [f"0001_c1_{tag}.png", f"0001_c2_{tag}.png"])
        touch_all(d / v / "query", [f"0010_c1_{tag}.png"])
        touch_all(d / v / "bounding_box_test", [f"0010_c2_{tag}.png", f"0011_c2_{tag}.png"])
    parsed = load_dataset("cuhk03", tmp_path, cuhk03_type=variant)
    assert parsed.name == f"cuhk03-{variant}"
    assert parsed.table["path"].str.startswith(f"{variant}/").all()
    tag = 1 if variant == "detected" else 2
    assert parsed.table["path"].str.endswith(f"_{tag}.png").all()
    assert len(parsed.table) == 5


def test_cuhk03_bad_type(tmp_path):
    with pytest.raises(DatasetError, match="'handmade'"):
        load_dataset("cuhk03", tmp_path, cuhk03_type="handmade")


def test_unknown_dataset(tmp_path):
    with pytest.raises(DatasetError, match="market1501"):
        load_dataset("viper", tmp_path)


def test_registry_and_official_counts():
    assert set(PARSERS) == {"market1501", "dukemtmc", "msmt17", "cuhk03"}
    assert OFFICIAL_COUNTS["market1501"]["gallery"] == (751, 15913)
    assert OFFICIAL_COUNTS["dukemtmc"]["train"] == (702, 16522)


def test_count_table_and_warning(tmp_path, caplog):
    parsed = load_dataset("market1501", market_tree(tmp_path))
    text = format_counts(parsed)
    assert "train" in text and "gallery" in text and "junk" in text
    with caplog.at_level(logging.WARNING):
        warnings = check_official_counts(parsed)
    assert len(warnings) == 3
    assert "official 751 / 12936" in warnings[0]
    assert any("official 751 / 12936" in r.message for r in caplog.records)
