"""Benchmark of ``lf2.eval.evaluate_ranking`` against the classic per-query loop.

Synthetic but realistic retrieval problems at the sizes of Market-1501 (3,368 x 15,913;
751 ids incl. distractors, 6 cameras) and MSMT17 (11,659 x 82,161; 3,060 ids, 15
cameras): each identity has a random centre, each camera a random shift, each image
noise, so the distances are continuous and the metrics land in a realistic range. The
reference is the straightforward implementation style of the field (one stable argsort
per query, then the junk filter and the cumulative sums), measured in the same run. For
the MSMT17 size the loop runs on a subset of the queries and its time is extrapolated
linearly to all queries (said in the output).

Run: ``.venv/bin/python benchmarks/bench_eval.py [--sizes market,msmt17] [--repeats 3] [--rerank]``
(``--sizes ''`` with ``--rerank`` times the re-ranking only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time

import numpy as np
import torch

from lf2.eval import evaluate_features, evaluate_ranking

SIZES = {
    # name: (num_query, num_gallery, ids, cameras, distractors in the gallery)
    "market": (3368, 15913, 750, 6, 2798),
    "msmt17": (11659, 82161, 3060, 15, 0),
}


def make_problem(
    num_q: int,
    num_g: int,
    ids: int,
    cams: int,
    distractors: int,
    dim: int = 128,
    seed: int = 0,
    noise: float = 1.0,
) -> dict[str, np.ndarray]:
    """Query/gallery features, pids and cameras of a synthetic re-ID test split."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((ids + 1, dim)).astype(np.float32)
    cam_shift = 0.8 * rng.standard_normal((cams, dim)).astype(np.float32)
    q_pids = np.sort(rng.integers(1, ids + 1, num_q))
    g_pids = np.concatenate(
        [
            rng.permutation(np.arange(1, ids + 1)),
            rng.integers(1, ids + 1, num_g - distractors - ids),
            np.zeros(distractors, dtype=np.int64),
        ]
    )
    q_cams = rng.integers(0, cams, num_q)
    g_cams = rng.integers(0, cams, num_g)

    def feats(pids: np.ndarray, cam: np.ndarray) -> np.ndarray:
        x = (
            centres[pids]
            + cam_shift[cam]
            + noise * rng.standard_normal((pids.size, dim)).astype(np.float32)
        )
        junk = pids == 0  # distractors: unrelated people
        x[junk] = 1.2 * rng.standard_normal((int(junk.sum()), dim)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return {
        "q_feat": feats(q_pids, q_cams),
        "g_feat": feats(g_pids, g_cams),
        "q_pids": q_pids,
        "g_pids": g_pids,
        "q_camids": q_cams,
        "g_camids": g_cams,
    }


def loop_reference(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    max_rank: int = 50,
) -> dict[str, float]:
    """The classic implementation: a stable argsort of every query's row."""
    all_cmc, aps, inps = [], [], []
    for i in range(distmat.shape[0]):
        order = np.argsort(distmat[i], kind="stable")
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        raw = (g_pids[order][keep] == q_pids[i]).astype(np.int64)
        if not raw.any():
            continue
        cmc = raw.cumsum()
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        hits = np.nonzero(raw)[0]
        aps.append(float(np.mean(np.arange(1, hits.size + 1) / (hits + 1))))
        inps.append(hits.size / (hits[-1] + 1))
    return {
        "mAP": float(np.mean(aps)),
        "rank1": float(np.mean([c[0] for c in all_cmc])),
        "mINP": float(np.mean(inps)),
        "num_valid_query": len(aps),
    }


#: feature noise of the two model qualities (mAP on the Market-size case in the comment)
QUALITIES = {"trained": 0.55, "direct_transfer": 1.15}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def timed(fn, repeats: int) -> tuple[float, float, object]:
    """Best wall time and the CPU seconds of that run (the machine may be shared)."""
    best, cpu, out = float("inf"), 0.0, None
    for _ in range(repeats):
        c0, t0 = _cpu(), time.perf_counter()
        out = fn()
        wall = time.perf_counter() - t0
        if wall < best:
            best, cpu = wall, _cpu() - c0
    return best, cpu, out


def bench(name: str, quality: str, repeats: int, loop_queries: int | None) -> dict:
    p = make_problem(*SIZES[name], noise=QUALITIES[quality])
    ids = (p["q_pids"], p["g_pids"], p["q_camids"], p["g_camids"])
    t0 = time.perf_counter()
    dist_t = torch.from_numpy(p["q_feat"]) @ torch.from_numpy(p["g_feat"]).T
    distmat = dist_t.neg_().add_(1.0).numpy()  # in place: one matrix in memory
    t_dist = time.perf_counter() - t0
    rss_before = _peak_rss_gb()
    t_fast, c_fast, fast = timed(lambda: evaluate_ranking(distmat, *ids), repeats)
    rss_after = _peak_rss_gb()
    t_feat, c_feat, _ = timed(lambda: evaluate_features(p["q_feat"], p["g_feat"], *ids), 1)
    nq = distmat.shape[0]
    n_loop = nq if loop_queries is None else min(loop_queries, nq)
    sub = (distmat[:n_loop], ids[0][:n_loop], ids[1], ids[2][:n_loop], ids[3])
    t_loop_part, c_loop_part, ref = timed(lambda: loop_reference(*sub), 1)
    t_loop = t_loop_part * nq / n_loop
    fast_sub = evaluate_ranking(*sub)
    agree = (
        abs(fast_sub["mAP"] - ref["mAP"]) < 1e-9
        and abs(fast_sub["cmc"][0] - ref["rank1"]) < 1e-12
        and abs(fast_sub["mINP"] - ref["mINP"]) < 1e-9
    )
    return {
        "size": name,
        "quality": quality,
        "shape": list(distmat.shape),
        "mAP": round(fast["mAP"], 4),
        "rank1": round(float(fast["cmc"][0]), 4),
        "mINP": round(fast["mINP"], 4),
        "distance_matmul_s": round(t_dist, 3),
        "evaluate_ranking_s": round(t_fast, 3),
        "evaluate_ranking_cpu_s": round(c_fast, 3),
        "evaluate_features_s": round(t_feat, 3),
        "evaluate_features_cpu_s": round(c_feat, 3),
        "loop_queries": n_loop,
        "loop_measured_s": round(t_loop_part, 3),
        "loop_measured_cpu_s": round(c_loop_part, 3),
        "loop_all_queries_s": round(t_loop, 3),
        "loop_extrapolated": n_loop < nq,
        "speedup_wall": round(t_loop / t_fast, 1),
        "speedup_cpu": round(c_loop_part * nq / n_loop / c_fast, 1),
        "agrees_with_loop_on_measured_queries": bool(agree),
        "distmat_gb": round(distmat.nbytes / 2**30, 2),
        "peak_rss_gb_before_ranking": round(rss_before, 2),
        "peak_rss_gb_after_ranking": round(rss_after, 2),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def bench_rerank(quality: str) -> dict:
    """k-reciprocal re-ranking of the Market-size case and the Jaccard distance of a
    Market-train-size set (12,936 points), 128-d features."""
    from lf2.eval.rerank import jaccard_distance, rerank

    p = make_problem(*SIZES["market"], noise=QUALITIES[quality])
    ids = (p["q_pids"], p["g_pids"], p["q_camids"], p["g_camids"])
    t_rr, c_rr, dist = timed(lambda: rerank(p["q_feat"], p["g_feat"], device="cpu"), 1)
    plain = evaluate_features(p["q_feat"], p["g_feat"], *ids)
    reranked = evaluate_ranking(dist, *ids)
    train = p["g_feat"][:12936]
    t_j, c_j, jac = timed(lambda: jaccard_distance(train, device="cpu"), 1)
    return {
        "quality": quality,
        "rerank_shape": list(dist.shape),
        "rerank_s": round(t_rr, 2),
        "rerank_cpu_s": round(c_rr, 2),
        "mAP_plain": round(plain["mAP"], 4),
        "mAP_reranked": round(reranked["mAP"], 4),
        "jaccard_points": train.shape[0],
        "jaccard_s": round(t_j, 2),
        "jaccard_cpu_s": round(c_j, 2),
        "jaccard_nnz": int(jac.nnz),
        "jaccard_density": round(jac.nnz / train.shape[0] ** 2, 4),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="market,msmt17")
    ap.add_argument("--qualities", default=",".join(QUALITIES))
    ap.add_argument("--repeats", type=int, default=3, help="best of N for evaluate_ranking")
    ap.add_argument(
        "--msmt-loop-queries",
        type=int,
        default=1000,
        help="queries timed with the loop at MSMT17 size (extrapolated to all)",
    )
    ap.add_argument(
        "--rerank",
        action="store_true",
        help="also time k-reciprocal re-ranking and the Jaccard distance",
    )
    args = ap.parse_args()
    print(
        json.dumps(
            {
                "machine": platform.processor() or platform.machine(),
                "cpus": os.cpu_count(),
                "torch_threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "gpu": "not measured (no GPU on this machine)"
                if not torch.cuda.is_available()
                else torch.cuda.get_device_name(),
            }
        )
    )
    for name in filter(None, args.sizes.split(",")):
        for quality in args.qualities.split(","):
            loop_q = args.msmt_loop_queries if name == "msmt17" else None
            print(json.dumps(bench(name, quality, args.repeats, loop_q)), flush=True)
    if args.rerank:
        for quality in args.qualities.split(","):
            print(json.dumps(bench_rerank(quality)), flush=True)


if __name__ == "__main__":
    main()
