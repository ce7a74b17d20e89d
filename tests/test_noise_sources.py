"""benchmarks/noise_sources.py on hand-made features (no training, no DAG)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from tests.conftest import ROOT


def _module():
    spec = importlib.util.spec_from_file_location("noise_sources", ROOT / "benchmarks" / "noise_sources.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _ids(n_ids: int = 12, q_per: int = 2, g_per: int = 4):
    qp = np.repeat(np.arange(n_ids), q_per)
    gp = np.repeat(np.arange(n_ids), g_per)
    return {"query": (qp, np.zeros_like(qp)), "gallery": (gp, np.ones_like(gp))}


def _feats(ids, noise: float, rng: np.random.Generator, dim: int = 16):
    centres = rng.normal(size=(ids["gallery"][0].max() + 1, dim))
    return {s: (centres[ids[s][0]] + noise * rng.normal(size=(len(ids[s][0]), dim))).astype(np.float32)
            for s in ("query", "gallery")}


def test_identity_subset_and_bootstrap_keep_whole_identities() -> None:
    ns = _module()
    rng = np.random.default_rng(0)
    pids = np.repeat(np.arange(10), 3)
    keep = ns.identity_subset(pids, 0.5, rng)
    assert len(keep) == 5 and len(set(keep)) == 5 and set(keep) <= set(range(10))
    assert len(ns.identity_subset(pids, 0.01, rng)) == 2  # never fewer than 2 identities
    rows = ns.bootstrap_query_index(pids, rng)
    drawn = pids[rows]
    assert len(rows) == len(pids)  # 10 identities drawn, 3 queries each
    for pid in np.unique(drawn):
        assert (drawn == pid).sum() % 3 == 0  # all of an identity's queries, k times


def test_floor_fit_and_half_width() -> None:
    ns = _module()
    sizes = [40, 80, 160]
    assert ns.floor_fit(sizes, [np.sqrt(4 + 400 / n) for n in sizes]) == pytest.approx(2.0)
    assert ns.floor_fit(sizes, [np.sqrt(1000 / n) for n in sizes]) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="two test sizes"):
        ns.floor_fit([50, 50], [1.0, 2.0])
    # n = 3, differences 1, 2, 3: mean 2, std 1, t(0.975, 2) = 4.303
    assert ns.half_width([1, 2, 3], [0, 0, 0]) == pytest.approx(4.303 / np.sqrt(3), rel=1e-3)


def test_study_separates_test_sampling_from_training_noise() -> None:
    ns = _module()
    rng = np.random.default_rng(1)
    ids = {"A-to-B": _ids()}
    seeds = [0, 1, 2]
    base = {s: _feats(ids["A-to-B"], 0.8, np.random.default_rng(10 + s)) for s in seeds}
    feats = {}
    for s in seeds:
        feats[("A-to-B", "direct", s)] = base[s]
        feats[("A-to-B", "same", s)] = base[s]  # identical to direct: a difference of 0
        feats[("A-to-B", "other", s)] = _feats(ids["A-to-B"], 0.8, rng)
    pairs = [("same", "direct"), ("other", "direct")]
    rows = ["direct", "same", "other"]
    rep = ns.study(feats, ids, pairs, rows, seeds, [0.5, 1.0], draws=3, boot=20)["A-to-B"]
    assert rep["sizes"][0.5]["identities"] == 6 and rep["sizes"][0.5]["draws"] == 3
    assert rep["sizes"][1.0]["identities"] == 12 and rep["sizes"][1.0]["draws"] == 1
    # identical rows: every resample gives the same mAP to both, so no test part, no width
    assert rep["se_pair"][("same", "direct")] == pytest.approx(0.0, abs=1e-9)
    assert rep["sizes"][1.0]["half_width"][("same", "direct")] == pytest.approx(0.0, abs=1e-9)
    assert rep["se_row"]["direct"] > 0  # a 12-identity test split has sampling noise
    # at f = 1 the half-width is the paired interval of the full-split mAPs
    full = {(r, s): ns.map_on(feats[("A-to-B", r, s)], ids["A-to-B"], np.arange(24), np.arange(48))
            for r in rows for s in seeds}
    expect = ns.half_width([full[("other", s)] for s in seeds], [full[("direct", s)] for s in seeds])
    assert rep["sizes"][1.0]["half_width"][("other", "direct")] == pytest.approx(expect)
    assert rep["floor"][("same", "direct")] == pytest.approx(0.0, abs=1e-9)
    text = ns.render({"A-to-B": rep}, pairs, rows, seeds, boot=20)
    assert "| other − direct |" in text and "12 ids (1 draws)" in text and "unlimited (fit)" in text
