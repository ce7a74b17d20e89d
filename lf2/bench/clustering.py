"""``lf2 bench`` sections ``kmeans`` and ``eval``: the k-means implementations on clustered features with known ids, and the ranking."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from lf2.bench.config import BenchConfig, _sync

log = logging.getLogger(__name__)


def clustered_features(n: int, ids: int, dim: int, seed: int = 0, noise: float = 0.8):
    """L2-normalised features around ``ids`` random unit centres; returns (x, true ids).

    ``noise`` is the per-point noise norm relative to the unit centre, so the problem is
    neither trivial nor hopeless at any dimension (ARI of a good k-means is about 0.8-1).
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((ids, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y = np.concatenate([np.arange(ids), rng.integers(0, ids, n - ids)]) if n > ids else np.arange(n)
    x = centres[y] + rng.standard_normal((n, dim)).astype(np.float32) * (noise / math.sqrt(dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), y


def _kmeans_methods(device: Any) -> dict[str, Callable[..., np.ndarray]]:
    def faiss_cpu(x, k, seed, niter):
        import faiss

        km = faiss.Kmeans(x.shape[1], k, niter=niter, seed=seed, gpu=False)
        km.train(x)
        return km.index.search(x, 1)[1][:, 0]

    def faiss_gpu(x, k, seed, niter):
        import faiss

        if not hasattr(faiss, "get_num_gpus") or faiss.get_num_gpus() == 0:
            raise RuntimeError("faiss has no GPU support here (faiss-cpu, or no GPU)")
        km = faiss.Kmeans(x.shape[1], k, niter=niter, seed=seed, gpu=True)
        km.train(x)
        return km.index.search(x, 1)[1][:, 0]

    def torch_km(x, k, seed, niter):
        from lf2.kmeans_torch import kmeans_torch

        return kmeans_torch(x, k, seed=seed, niter=niter, device=device)[0]

    def sklearn_km(x, k, seed, niter):
        from sklearn.cluster import KMeans

        return KMeans(k, n_init=1, max_iter=niter, random_state=seed).fit_predict(x)

    def sklearn_mb(x, k, seed, niter):
        from sklearn.cluster import MiniBatchKMeans

        return MiniBatchKMeans(k, n_init=1, max_iter=niter, batch_size=4096, random_state=seed).fit_predict(x)

    return {"faiss_cpu": faiss_cpu, "faiss_gpu": faiss_gpu, "torch": torch_km,
            "sklearn": sklearn_km, "sklearn_minibatch": sklearn_mb}


def bench_kmeans(cfg: BenchConfig, device: Any) -> dict[str, Any]:
    """Seconds and ARI (vs the true ids) of each k-means implementation at each size."""
    from sklearn.metrics import adjusted_rand_score

    methods = _kmeans_methods(device)
    out: dict[str, Any] = {"n": cfg.kmeans_n, "true_ids": cfg.kmeans_ids, "niter": cfg.kmeans_iters,
                           "runs": [], "skipped": {}}
    for dim in cfg.kmeans_dims:
        x, y = clustered_features(cfg.kmeans_n, cfg.kmeans_ids, dim)
        for k in cfg.kmeans_ks:
            for name in cfg.kmeans_methods:
                if name not in methods:
                    out["skipped"][name] = "unknown method"
                    continue
                log.info("bench kmeans %s d=%d k=%d", name, dim, k)
                t0 = time.perf_counter()
                try:
                    labels = methods[name](x, k, 0, cfg.kmeans_iters)
                except (ImportError, RuntimeError, AssertionError) as exc:
                    out["skipped"][name] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    continue
                _sync(device)
                sec = time.perf_counter() - t0
                out["runs"].append({"method": name, "dim": dim, "k": k, "seconds": sec,
                                    "ari": float(adjusted_rand_score(y, labels))})
    return out


def bench_eval(cfg: BenchConfig, device: Any) -> dict[str, Any]:
    """Distance + ranking time of a query x gallery evaluation (lf2.eval)."""
    import torch

    try:
        from lf2.eval.ranking import evaluate_features
    except ImportError as exc:
        return {"skipped": f"lf2.eval.ranking is not available ({exc})"}
    nq, ng = cfg.eval_query, cfg.eval_gallery
    # at most a quarter as many identities as gallery images, so that a smaller case than
    # the scale's (--eval-gallery) still gives every query its true matches
    ids = max(2, min(cfg.eval_ids, ng // 4))
    feats, pids = clustered_features(nq + ng, ids, cfg.eval_dim, seed=2, noise=1.5)
    rng = np.random.default_rng(3)
    cams = rng.integers(0, 6, nq + ng)
    q = torch.from_numpy(feats[:nq]).to(device)
    g = torch.from_numpy(feats[nq:]).to(device)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    res = evaluate_features(q, g, pids[:nq], pids[nq:], cams[:nq], cams[nq:], timings=timings)
    _sync(device)
    sec = time.perf_counter() - t0
    return {"query": nq, "gallery": ng, "ids": ids, "dim": cfg.eval_dim, "seconds": sec,
            "distance_seconds": timings.get("distance"), "ranking_seconds": timings.get("ranking"),
            "mAP": float(res["mAP"]), "rank1": float(res["cmc"][0])}
