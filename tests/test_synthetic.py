"""The synthetic two-domain benchmark: determinism, splits, identity design, domain style."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lf2.data.datasets import MARKET_NAME
from lf2.data.manifest import load_manifest
from lf2.data.prepare import prepare_dataset
from lf2.data.synthetic import (
    DOMAINS,
    Renderer,
    SyntheticConfig,
    contact_sheet,
    identity,
    plan_dataset,
)
from lf2.errors import ParamsError

SMALL = dict(train_ids=8, test_ids=8, images_per_id=4, height=32, width=16)


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    base = tmp_path_factory.mktemp("synth")
    out = {}
    for name, domain, seed in [("a1", "a", 5), ("a2", "a", 5), ("b", "b", 5), ("a_seed6", "a", 6)]:
        prepare_dataset("synthetic", base / name, domain=domain, seed=seed, **SMALL)
        out[name] = base / name
    return out


def test_byte_identical_for_same_options(prepared):
    a1, a2 = tree_bytes(prepared["a1"]), tree_bytes(prepared["a2"])
    assert a1.keys() == a2.keys()
    assert a1 == a2  # images, manifest.csv and meta.json
    assert "manifest.csv" in a1 and "meta.json" in a1


def test_other_domain_or_seed_differs(prepared):
    a1 = tree_bytes(prepared["a1"] / "images")
    for other in ("b", "a_seed6"):
        o = tree_bytes(prepared[other] / "images")
        common = set(a1) & set(o)
        assert sum(a1[k] != o[k] for k in common) == len(common)
        assert (prepared["a1"] / "manifest.csv").read_bytes() != (prepared[other] / "manifest.csv").read_bytes()


def test_manifest_is_read_by_market_parser_layout(prepared):
    m = load_manifest(prepared["a1"])
    assert m.meta["root"] == "images"
    assert m.root == (prepared["a1"] / "images").resolve()
    for split, sub in [("train", "bounding_box_train/"), ("query", "query/"), ("gallery", "bounding_box_test/")]:
        paths = m.split(split)["path"]
        assert paths.str.startswith(sub).all()
        assert paths.map(lambda p: re.fullmatch(r"\d{4}_c\d+s1_\d{6}_00\.jpg", p.split("/")[1]) is not None).all()
    first = m.paths("train")[0]
    assert Image.open(first).size == (16, 32)


def test_splits_disjoint_and_cross_camera(prepared):
    m = load_manifest(prepared["b"])
    train, query, gallery = m.split("train"), m.split("query"), m.split("gallery")
    assert set(train["pid"]).isdisjoint(set(query["pid"]) | set(gallery["pid"]))
    assert 0 in set(gallery["pid"]) and 0 not in set(train["pid"]) | set(query["pid"])
    assert set(query["pid"]) <= set(gallery["pid"])
    assert train["pid"].nunique() == 8 and query["pid"].nunique() == 8
    for _, q in query.iterrows():
        same = gallery[(gallery["pid"] == q["pid"]) & (gallery["camid"] != q["camid"])]
        assert len(same) >= 1, f"query {q['path']} has no cross-camera gallery match"
    assert m.table["camid"].max() < DOMAINS["b"].cameras


def test_plan_counts_scale_with_options():
    cfg = SyntheticConfig(domain="a", seed=0, train_ids=48, test_ids=48, images_per_id=8)
    specs = plan_dataset(cfg)
    per = pd.Series([s.split for s in specs]).value_counts()
    assert 300 < per["train"] < 470 and 300 < per["gallery"] < 500 and 48 <= per["query"] <= 144
    assert len({s.relpath for s in specs}) == len(specs)  # unique file names
    assert {s.cam for s in specs} == set(range(6))
    cams_b = {s.cam for s in plan_dataset(SyntheticConfig(domain="b", seed=0))}
    assert cams_b == set(range(8))
    big = plan_dataset(SyntheticConfig(domain="a", train_ids=751, test_ids=750, images_per_id=17))
    counts = pd.Series([s.split for s in big]).value_counts()
    assert 11000 < counts["train"] < 15000 and 2500 < counts["query"] < 4500
    assert 11000 < counts["gallery"] < 16000


def test_file_names_parse_as_market():
    for s in plan_dataset(SyntheticConfig(**SMALL)):
        m = MARKET_NAME.match(s.filename)
        assert (int(m.group(1)), int(m.group(2)) - 1) == (s.pid, s.cam)


def test_twins_share_global_look_and_differ_in_one_part():
    cfg = SyntheticConfig(domain="a", seed=3, train_ids=40, test_ids=40)
    twins = [pid for pid in range(1, 81) if identity(cfg, pid).twin_of is not None]
    assert 12 <= len(twins) <= 28  # about a quarter of ids are the second of a pair
    for pid in twins:
        a, b = identity(cfg, pid - 1), identity(cfg, pid)
        assert b.twin_of == pid - 1
        for trait in ("height", "build", "long_hair", "bag"):
            assert getattr(a, trait) == getattr(b, trait)
        assert np.array_equal(a.skin, b.skin) and np.array_equal(a.hair, b.hair)
        upper_diff = np.abs(a.upper - b.upper).sum() > 0.5
        lower_diff = np.abs(a.lower - b.lower).sum() > 0.5
        assert upper_diff != lower_diff, f"pid {pid} must differ in exactly one part"
    # the first test id starts a fresh pair sequence: no twin across the train/test border
    assert identity(cfg, 41).twin_of is None


def test_render_shapes_and_determinism():
    cfg = SyntheticConfig(domain="b", seed=1, height=256, width=128, train_ids=2, test_ids=2)
    spec = plan_dataset(cfg)[0]
    img = Renderer(cfg).render(spec)
    assert img.shape == (256, 128, 3) and img.dtype == np.uint8
    assert np.array_equal(img, Renderer(cfg).render(spec))
    assert img.std() > 10  # not blank


def test_domains_look_different():
    def stats(domain):
        cfg = SyntheticConfig(domain=domain, seed=2, train_ids=10, test_ids=2)
        r = Renderer(cfg)
        imgs = np.stack([r.render(s) for s in plan_dataset(cfg)[:40]]).astype(np.float64)
        return imgs.mean(axis=(0, 1, 2))

    mean_a, mean_b = stats("a"), stats("b")
    assert mean_a.mean() > mean_b.mean() + 30  # b is darker
    assert mean_a[0] > mean_a[2] and mean_b[2] > mean_b[0]  # warm vs cool cast


def test_bad_options():
    with pytest.raises(ParamsError, match="domain 'c'"):
        plan_dataset(SyntheticConfig(domain="c"))
    with pytest.raises(ParamsError, match="train_ids"):
        plan_dataset(SyntheticConfig(train_ids=1))
    with pytest.raises(ParamsError, match="colour"):
        prepare_dataset("synthetic", Path("/nonexistent"), colour="red")


def test_contact_sheet(tmp_path):
    cfg = SyntheticConfig(domain="a", seed=1, **{k: v for k, v in SMALL.items()})
    path = contact_sheet(cfg, tmp_path / "sheet.png", rows=4, cols=3, zoom=2)
    im = Image.open(path)
    assert im.format == "PNG"
    assert im.size == ((16 + 2) * 3 * 2, (32 + 2) * 4 * 2)


def test_render_workers_do_not_change_files(tmp_path):
    opts = dict(domain="a", seed=9, train_ids=50, test_ids=40, images_per_id=6, height=32, width=16)
    prepare_dataset("synthetic", tmp_path / "w1", workers=1, **opts)
    prepare_dataset("synthetic", tmp_path / "w2", workers=2, **opts)
    n = len(list((tmp_path / "w1" / "images").rglob("*.jpg")))
    assert n >= 512  # large enough to use the process pool
    assert tree_bytes(tmp_path / "w1") == tree_bytes(tmp_path / "w2")
