"""Ranking metrics: hand-computed cases, protocol details, bad inputs, a reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lf2.eval.ranking as ranking
from lf2.eval import evaluate_features, evaluate_ranking, pairwise_distance


def reference(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """Per-query loop: stable argsort, drop same pid + same camera, cumulative sums."""
    cmcs, aps, inps = [], [], []
    for i in range(distmat.shape[0]):
        order = np.argsort(distmat[i], kind="stable")
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        hits = np.nonzero(g_pids[order][keep] == q_pids[i])[0]
        if hits.size == 0:
            continue
        cmc = np.zeros(max_rank)
        cmc[min(hits[0], max_rank) :] = 1.0
        cmcs.append(cmc)
        aps.append(np.mean(np.arange(1, hits.size + 1) / (hits + 1)))
        inps.append(hits.size / (hits[-1] + 1))
    if not aps:
        return None
    return {
        "mAP": np.mean(aps),
        "cmc": np.mean(cmcs, 0),
        "mINP": np.mean(inps),
        "num_valid_query": len(aps),
    }


# gallery: junk (same pid+cam), a stranger, a match, a distractor tied with it, a
# stranger, a second match
G_PIDS = np.array([1, 2, 1, 0, 3, 1])
G_CAMS = np.array([0, 1, 1, 2, 1, 2])
ROW = np.array([0.1, 0.2, 0.3, 0.3, 0.4, 0.5])


def test_hand_computed_case() -> None:
    r = evaluate_ranking(ROW[None], [1], G_PIDS, [0], G_CAMS, max_rank=6)
    # valid order: stranger(0.2), match(0.3, earlier in gallery), distractor(0.3), stranger, match
    assert r["mAP"] == pytest.approx((1 / 2 + 2 / 5) / 2)
    assert r["mINP"] == pytest.approx(2 / 5)
    np.testing.assert_array_equal(r["cmc"], [0, 1, 1, 1, 1, 1])
    assert (r["num_query"], r["num_valid_query"]) == (1, 1)
    assert isinstance(r["mAP"], float) and r["cmc"].dtype == np.float64


def test_ties_broken_by_gallery_order() -> None:
    # swap the tied match and distractor positions: the distractor now comes first
    perm = [0, 1, 3, 2, 4, 5]
    r = evaluate_ranking(ROW[None], [1], G_PIDS[perm], [0], G_CAMS[perm], max_rank=6)
    assert r["mAP"] == pytest.approx((1 / 3 + 2 / 5) / 2)
    np.testing.assert_array_equal(r["cmc"], [0, 0, 1, 1, 1, 1])
    # all distances equal: rank = gallery position among valid entries
    r = evaluate_ranking(np.zeros((1, 6)), [1], G_PIDS, [0], G_CAMS, max_rank=3)
    assert r["mAP"] == pytest.approx((1 / 2 + 2 / 5) / 2)
    # -0.0 and +0.0 are the same distance
    d = np.array([[0.0, -0.0, 0.0]], dtype=np.float32)
    r = evaluate_ranking(d, [1], [1, 2, 1], [0], [1, 1, 1], max_rank=3)
    assert r["mAP"] == pytest.approx((1 + 2 / 3) / 2)


def test_same_camera_removed_but_other_cameras_kept() -> None:
    # the closest gallery entry is the query's identity in the query's camera: removed
    d = np.array([[0.0, 0.5, 0.9]])
    r = evaluate_ranking(d, [7], [7, 8, 7], [3], [3, 3, 4], max_rank=2)
    assert r["mAP"] == pytest.approx(1 / 2) and r["cmc"].tolist() == [0.0, 1.0]
    # a different identity in the same camera is kept
    r = evaluate_ranking(d, [7], [8, 7, 7], [3], [3, 4, 3], max_rank=2)
    assert r["mAP"] == pytest.approx(1 / 2)


def test_query_without_match_is_skipped_and_counted() -> None:
    d = np.array([[0.1, 0.2], [0.3, 0.1], [0.2, 0.2]])
    r = evaluate_ranking(d, [1, 2, 5], [1, 2], [0, 0, 0], [1, 1], max_rank=2)
    assert (r["num_query"], r["num_valid_query"]) == (3, 2)
    assert r["mAP"] == pytest.approx(1.0) and r["mINP"] == pytest.approx(1.0)
    # a query whose only matches share its camera is skipped too
    r = evaluate_ranking(d, [1, 2, 2], [1, 2], [0, 0, 1], [1, 1], max_rank=2)
    assert r["num_valid_query"] == 2


def test_no_valid_query_raises() -> None:
    with pytest.raises(ValueError, match="none of the 2 queries"):
        evaluate_ranking(np.ones((2, 3)), [1, 2], [3, 4, 5], [0, 0], [1, 1, 1])
    with pytest.raises(ValueError, match="none of the 1 queries"):
        evaluate_ranking(np.ones((1, 2)), [1], [1, 1], [0], [0, 0])  # only junk


@pytest.mark.parametrize(
    "args,match",
    [
        ((np.ones(3), [1], [1, 2, 3], [0], [1, 1, 1]), "2-D"),
        (
            (np.ones((2, 3)), [1], [1, 2, 3], [0, 0], [1, 1, 1]),
            r"q_pids has shape \(1,\); expected \(2,\)",
        ),
        ((np.ones((1, 3)), [1], [1, 2], [0], [1, 1, 1]), "g_pids"),
        ((np.ones((1, 3)), [1], [1, 2, 3], [0, 1], [1, 1, 1]), "q_camids"),
        ((np.ones((1, 3)), [1], [1, 2, 3], [0], [1, 1]), "g_camids"),
        ((np.ones((1, 0)), [1], [], [0], []), "gallery is empty"),
        ((np.array([[0.1, np.nan]]), [1], [1, 1], [0], [1, 1]), "NaN or infinite"),
        (
            (np.array([[0.1, np.inf]], dtype=np.float32), [1], [1, 1], [0], [1, 1]),
            "NaN or infinite",
        ),
        ((np.ones((1, 2)), [1.5], [1, 1], [0], [1, 1]), "integer"),
    ],
)
def test_bad_inputs(args, match) -> None:
    with pytest.raises(ValueError, match=match):
        evaluate_ranking(*args)


def test_bad_max_rank() -> None:
    with pytest.raises(ValueError, match="max_rank"):
        evaluate_ranking(np.ones((1, 2)), [1], [1, 1], [0], [1, 1], max_rank=0)


def test_max_rank_beyond_gallery_saturates() -> None:
    r = evaluate_ranking(np.array([[0.3, 0.1]]), [1], [1, 2], [0], [1, 1], max_rank=5)
    np.testing.assert_array_equal(r["cmc"], [0, 1, 1, 1, 1])


def _random_case(rng, nq, ng, ties):
    q_pids = rng.integers(0, 6, nq)
    g_pids = rng.integers(0, 6, ng)
    q_cams = rng.integers(0, 3, nq)
    g_cams = rng.integers(0, 3, ng)
    d = rng.integers(-3, 4, (nq, ng)) * 0.25 if ties else rng.standard_normal((nq, ng))
    return d, q_pids, g_pids, q_cams, g_cams


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    nq=st.integers(1, 25),
    ng=st.integers(1, 60),
    ties=st.booleans(),
    f32=st.booleans(),
    max_rank=st.integers(1, 12),
)
def test_agrees_with_per_query_reference(seed, nq, ng, ties, f32, max_rank) -> None:
    rng = np.random.default_rng(seed)
    d, qp, gp, qc, gc = _random_case(rng, nq, ng, ties)
    if f32:
        d = d.astype(np.float32)
    ref = reference(d, qp, gp, qc, gc, max_rank)
    if ref is None:
        with pytest.raises(ValueError, match="none of the"):
            evaluate_ranking(d, qp, gp, qc, gc, max_rank)
        return
    got = evaluate_ranking(d, qp, gp, qc, gc, max_rank)
    assert got["num_valid_query"] == ref["num_valid_query"] and got["num_query"] == nq
    assert abs(got["mAP"] - ref["mAP"]) < 1e-6 and abs(got["mINP"] - ref["mINP"]) < 1e-6
    np.testing.assert_allclose(got["cmc"], ref["cmc"], rtol=0, atol=1e-6)
    assert 0.0 <= got["mAP"] <= 1.0 and 0.0 <= got["mINP"] <= 1.0
    assert got["cmc"].shape == (max_rank,) and np.all(np.diff(got["cmc"]) >= 0)


def test_chunking_torch_input_and_dtypes(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    d, qp, gp, qc, gc = _random_case(rng, 40, 70, ties=True)
    ref = reference(d, qp, gp, qc, gc, 20)
    monkeypatch.setattr(ranking, "CHUNK_ELEMENTS", 150)  # two queries per chunk
    for arr in (
        d,
        d.astype(np.float32),
        torch.from_numpy(d),
        torch.from_numpy(d).half(),
        (d * 4).astype(np.int64),
    ):
        got = evaluate_ranking(arr, torch.from_numpy(qp), gp, qc.tolist(), gc, max_rank=20)
        assert abs(got["mAP"] - ref["mAP"]) < 1e-12
        np.testing.assert_allclose(got["cmc"], ref["cmc"], atol=1e-12)


def test_evaluate_features_matches_distance_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(11)
    centres = rng.standard_normal((6, 16))
    qp, gp = rng.integers(0, 6, 30), rng.integers(0, 6, 80)
    qc, gc = rng.integers(0, 3, 30), rng.integers(0, 3, 80)
    qf = centres[qp] + 0.8 * rng.standard_normal((30, 16))
    gf = centres[gp] + 0.8 * rng.standard_normal((80, 16))
    qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    ref = reference(1 - qn @ gn.T, qp, gp, qc, gc)
    monkeypatch.setattr(ranking, "CHUNK_ELEMENTS", 400)
    timings: dict[str, float] = {}
    got = evaluate_features(qf, gf, qp, gp, qc, gc, timings=timings)  # normalises itself
    assert abs(got["mAP"] - ref["mAP"]) < 1e-6 and set(timings) == {"distance", "ranking"}
    mixed = evaluate_features(qf.astype(np.float32), torch.from_numpy(gf), qp, gp, qc, gc)
    assert abs(mixed["mAP"] - ref["mAP"]) < 1e-6  # float32 with float64 -> float64
    sq = evaluate_features(qn, gn, qp, gp, qc, gc, metric="sqeuclidean")
    assert abs(sq["mAP"] - ref["mAP"]) < 1e-6  # same ranking for unit vectors
    d = pairwise_distance(qn, gn, "sqeuclidean").numpy()
    np.testing.assert_allclose(d, ((qn[:, None] - gn[None]) ** 2).sum(-1), atol=1e-9)
    with pytest.raises(ValueError, match="metric"):
        evaluate_features(qf, gf, qp, gp, qc, gc, metric="l1")
    with pytest.raises(ValueError, match="same dimension"):
        evaluate_features(qf, gf[:, :3], qp, gp, qc, gc)
    with pytest.raises(ValueError, match="NaN"):
        evaluate_features(np.full_like(qf, np.nan), gf, qp, gp, qc, gc)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensor_matches_cpu() -> None:
    rng = np.random.default_rng(2)
    d, qp, gp, qc, gc = _random_case(rng, 30, 90, ties=False)
    cpu = evaluate_ranking(d.astype(np.float32), qp, gp, qc, gc)
    gpu = evaluate_ranking(torch.from_numpy(d).float().cuda(), qp, gp, qc, gc)
    assert cpu["mAP"] == pytest.approx(gpu["mAP"], abs=1e-12)
