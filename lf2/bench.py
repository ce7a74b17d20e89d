"""``lf2 bench``: measure what bounds a Table II run on the machine at hand.

Sections (each one independent, each timed on synthetic data of the real sizes):

- ``matmul``   fp32 (and bf16 on GPU) matrix-multiply rate: the device's practical peak;
- ``flops``    FLOPs of one source step and one fine-tuning step (FlopCounterMode on the
               meta device, so it costs nothing to count at paper scale);
- ``data``     DataLoader + PIL per-image augmentation vs ImageCache + BatchAugment;
- ``pretrain`` / ``finetune``  the training steps (``lf2.train.bench_steps``), every
               variant with ``shared`` and ``per_label`` sampling;
- ``extract``  per-epoch feature extraction (model in eval mode);
- ``kmeans``   faiss CPU / faiss GPU / torch k-means / scikit-learn KMeans and
               MiniBatchKMeans on clustered features with known ids (ARI is the quality);
- ``eval``     ``lf2.eval`` ranking on a Market-size query x gallery case.

Finally a projection of the wall time of the whole paper Table II from the measured rates.
Sizes are arguments: on a 2-core CPU the paper scale is measured on a few iterations and
smaller k-means problems, and every size used is written into ``bench.json``.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lf2.train.variants import make_variant, trained_variants

log = logging.getLogger(__name__)

SECTIONS = ("matmul", "flops", "data", "pretrain", "finetune", "extract", "kmeans", "eval")
SAMPLINGS = ("shared", "per_label")

#: the paper's Table II schedule (docs/method.md §3-§5)
PAPER_SCHEDULE = {
    "pretrain_runs": 2, "pretrain_epochs": 80, "pretrain_iters": 200,
    "finetune_epochs": 80, "finetune_iters": 400,
    # rows per direction: Baseline, LF2 w/o FM, LF2 at M_t = 500 / 700 / 900
    "rows": [("baseline", 700), ("no_fm", 700), ("lf2", 500), ("lf2", 700), ("lf2", 900)],
    # target train / query / gallery sizes of the two directions (D-to-M, M-to-D)
    "targets": [
        {"name": "market1501", "train": 12936, "query": 3368, "gallery": 15913},
        {"name": "dukemtmc", "train": 16522, "query": 2228, "gallery": 17661},
    ],
    "num_parts": 2,
}


@dataclass
class BenchConfig:
    """Sizes of one bench run (``scale`` picks defaults; flags override them)."""

    scale: str = "small"
    height: int = 64
    width: int = 32
    pad: int = 4
    arch: str = "resnet18"
    batch_p: int = 4
    batch_k: int = 4
    steps: int = 1
    warmup: int = 1
    step_images: int = 32
    data_images: int = 32
    data_batches: int = 4
    extract_images: int = 32
    extract_batch: int = 16
    kmeans_n: int = 400
    kmeans_ids: int = 20
    kmeans_dims: list[int] = field(default_factory=lambda: [32])
    kmeans_ks: list[int] = field(default_factory=lambda: [20])
    kmeans_iters: int = 5
    kmeans_methods: list[str] = field(
        default_factory=lambda: ["faiss_cpu", "faiss_gpu", "torch", "sklearn", "sklearn_minibatch"]
    )
    eval_query: int = 50
    eval_gallery: int = 200
    eval_ids: int = 20
    eval_dim: int = 32
    matmul_size: int = 256
    variants: list[str] = field(default_factory=trained_variants)
    samplings: list[str] = field(default_factory=lambda: list(SAMPLINGS))
    workers: int = 0


SCALES: dict[str, dict[str, Any]] = {
    "small": {},
    "market": {
        "height": 256, "width": 128, "pad": 10, "arch": "resnet50", "batch_p": 16, "batch_k": 4,
        "steps": 2, "warmup": 1, "step_images": 256, "data_images": 256, "data_batches": 8,
        "extract_images": 256, "extract_batch": 128, "kmeans_n": 12936, "kmeans_ids": 751,
        "kmeans_dims": [2048, 6144], "kmeans_ks": [500, 700, 900], "kmeans_iters": 20,
        "eval_query": 3368, "eval_gallery": 15913, "eval_ids": 751, "eval_dim": 6144,
        "matmul_size": 4096,
    },
}


#: On a GPU a paper-scale step takes tens of milliseconds: time many of them, after enough
#: warm-up for cuDNN's algorithm search and the allocator to settle.
GPU_SCALES: dict[str, dict[str, Any]] = {"market": {"steps": 50, "warmup": 10}}


def make_config(scale: str, device_type: str = "cpu", **overrides: Any) -> BenchConfig:
    """The config of ``scale`` (on a ``device_type``) with the non-None ``overrides`` applied."""
    if scale not in SCALES:
        from lf2.errors import ParamsError

        raise ParamsError(f"--scale {scale!r}: expected one of {', '.join(SCALES)}")
    sizes = {**SCALES[scale], **(GPU_SCALES.get(scale, {}) if device_type == "cuda" else {})}
    cfg = BenchConfig(scale=scale, **sizes)
    for key, value in overrides.items():
        if value is not None:
            setattr(cfg, key, value)
    return cfg


# ----------------------------------------------------------------------------- helpers
def _sync(device: Any) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _timeit(fn: Callable[[], Any], device: Any, repeat: int = 1) -> tuple[float, Any]:
    """Seconds per call of ``fn`` (after one untimed call) and its last result."""
    out = fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    _sync(device)
    return (time.perf_counter() - t0) / repeat, out


def machine_info(device: Any) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        # other processes competing for the cores make every CPU figure slower
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    if torch.device(device).type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = props.name
        info["gpu_memory_bytes"] = props.total_memory
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _params_at_scale(params: dict[str, Any], cfg: BenchConfig) -> dict[str, Any]:
    p = copy.deepcopy(params)
    p["input"].update(height=cfg.height, width=cfg.width, pad=cfg.pad)
    p["model"].update(arch=cfg.arch, pretrained=False)
    for stage in ("pretrain", "finetune"):
        p[stage].update(batch_p=cfg.batch_p, batch_k=cfg.batch_k)
    return p


def _build_model(cfg: BenchConfig, params: dict[str, Any], num_classes: int = 0):
    from lf2.models.net import ReIDNet

    m = params["model"]
    return ReIDNet(
        arch=cfg.arch, pretrained=False, last_stride=m["last_stride"], num_parts=m["num_parts"],
        pooling=m["pooling"], num_classes=num_classes, test_feature=m["test_feature"],
    )


# ----------------------------------------------------------------------------- sections
def bench_matmul(cfg: BenchConfig, device: Any) -> dict[str, Any]:
    """Square matmul rate (the practical peak the FLOP floor is compared with)."""
    import torch

    n = cfg.matmul_size
    out: dict[str, Any] = {"size": n}
    dtypes = [torch.float32] + ([torch.bfloat16] if torch.device(device).type == "cuda" else [])
    for dt in dtypes:
        a = torch.randn(n, n, device=device, dtype=dt)
        b = torch.randn(n, n, device=device, dtype=dt)
        sec, _ = _timeit(lambda a=a, b=b: a @ b, device, repeat=5 if n <= 2048 else 3)
        out[str(dt).replace("torch.", "") + "_tflops"] = 2 * n**3 / sec / 1e12
    return out


def _flops_section(cfg: BenchConfig, params: dict[str, Any]) -> dict[str, Any]:
    out = count_step_flops(cfg, params)
    if cfg.scale == "market":
        iters = int(params["finetune"]["clustering"]["kmeans_iters"])
        out["table2_schedule_flops"] = schedule_flops(out, kmeans_iters=iters)
    return out


def count_step_flops(cfg: BenchConfig, params: dict[str, Any], num_classes: int = 700) -> dict[str, Any]:
    """FLOPs of one step at batch P*K, counted on the meta device (no compute).

    fine-tune = student forward + backward + teacher forward (eval) on one batch;
    source step = student forward + backward. Fusion modules, losses and the optimiser
    are left out (under 0.1% of the convolutions).
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    batch = cfg.batch_p * cfg.batch_k
    with torch.device("meta"):
        student = _build_model(cfg, params, num_classes)
        teacher = _build_model(cfg, params, num_classes)
        x = torch.empty(batch, 3, cfg.height, cfg.width)
    counts: dict[str, int] = {}
    for name, fn in {
        "student_forward": lambda: _train_forward(student, x),
        "student_forward_backward": lambda: _train_forward(student, x).backward(),
        "teacher_forward": lambda: _eval_forward(teacher, x),
    }.items():
        with FlopCounterMode(display=False) as fc:
            fn()
        counts[name] = int(fc.get_total_flops())
    ft = counts["student_forward_backward"] + counts["teacher_forward"]
    return {
        "batch": batch, "height": cfg.height, "width": cfg.width, "arch": cfg.arch,
        "last_stride": params["model"]["last_stride"], **counts,
        "pretrain_step_flops": counts["student_forward_backward"],
        "finetune_step_flops": ft,
        "finetune_step_flops_per_label": 3 * ft,
    }


def schedule_flops(flops: dict[str, Any], kmeans_iters: int = 100, dim: int = 2048) -> dict[str, float]:
    """FLOPs of the whole paper Table II schedule from the per-step counts (the floor).

    Training steps, per-epoch teacher extraction of the target train set (LF2's FM also
    needs the student's stripes: one more forward for the part rows, counted) and Lloyd
    iterations (2*N*k*D each) of the clustered sets; evaluation is negligible.
    """
    s = PAPER_SCHEDULE
    batch = flops["batch"]
    fwd_img = flops["teacher_forward"] / batch
    pre = s["pretrain_runs"] * s["pretrain_epochs"] * s["pretrain_iters"] * flops["pretrain_step_flops"]
    out = {"pretrain": float(pre)}
    for sampling in SAMPLINGS:
        steps = extract = km = 0.0
        for tgt in s["targets"]:
            for variant, k in s["rows"]:
                sets, passes = _sets_and_passes(variant, s["num_parts"])
                per_step = flops["finetune_step_flops"] * (sets if sampling == "per_label" else 1)
                steps += s["finetune_epochs"] * s["finetune_iters"] * per_step
                extract += s["finetune_epochs"] * tgt["train"] * fwd_img * passes
                km += s["finetune_epochs"] * sets * kmeans_iters * 2.0 * tgt["train"] * k * dim
        out[f"finetune_steps_{sampling}"] = steps
        out[f"extract_{sampling}"] = extract
        out[f"kmeans_{sampling}"] = km
        out[f"total_{sampling}"] = pre + steps + extract + km
    return out


def _sets_and_passes(variant: str, num_parts: int) -> tuple[int, int]:
    """Label sets a variant clusters and extraction passes it needs per epoch (the student's
    stripes cost a second forward), from the variant registry."""
    v = make_variant(variant, num_parts)
    return v.num_sets, 1 + ("student_parts" in v.features)


def _train_forward(model, x):
    model.train()
    out = model.forward_train(x)
    total = out.global_feat.sum()
    if out.logits is not None:
        total = total + out.logits.sum()
    for e in out.expert_feats:
        total = total + e.sum()
    return total


def _eval_forward(model, x):
    import torch

    model.eval()
    with torch.no_grad():
        return model(x)


def bench_data(cfg: BenchConfig, params: dict[str, Any], device: Any) -> dict[str, Any]:
    """DataLoader + PIL (JPEG decode + per-image transforms) vs cached batch augmentation."""
    import torch
    from PIL import Image

    from lf2.data.batch_transforms import BatchAugment
    from lf2.data.images import ImageDataset
    from lf2.data.tensor_cache import ImageCache
    from lf2.data.transforms import build_train_transform

    n, batch = cfg.data_images, cfg.batch_p * cfg.batch_k
    erasing = float(params["input"]["random_erasing"])
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (n, cfg.height, cfg.width, 3), dtype=np.uint8)
    out: dict[str, Any] = {"images": n, "batch": batch, "workers": cfg.workers}
    with tempfile.TemporaryDirectory(prefix="lf2-bench-") as tmp:
        paths = []
        for i in range(n):
            path = Path(tmp) / f"{i:05d}.jpg"
            Image.fromarray(raw[i]).save(path, quality=90)
            paths.append(path)
        tf = build_train_transform(cfg.height, cfg.width, pad=cfg.pad, flip=True, random_erasing=erasing)
        loader = torch.utils.data.DataLoader(
            ImageDataset(paths, tf), batch_size=batch, shuffle=True, num_workers=cfg.workers,
            drop_last=False, pin_memory=torch.device(device).type == "cuda",
        )

        def run_loader() -> int:
            seen = 0
            for x, _ in loader:
                x = x.to(device, non_blocking=True)
                seen += x.shape[0]
            return seen

        sec, seen = _timeit(run_loader, device)
        out["loader_images_per_s"] = seen / sec
        t0 = time.perf_counter()
        cache = ImageCache.from_paths(paths, cfg.height, cfg.width, device, workers=cfg.workers)
        _sync(device)
        out["cache_build_images_per_s"] = n / (time.perf_counter() - t0)
    aug = BatchAugment(cfg.height, cfg.width, pad=cfg.pad, flip=True, random_erasing=erasing)
    gen = torch.Generator().manual_seed(0)
    idx = [torch.randint(0, n, (batch,), generator=gen) for _ in range(cfg.data_batches)]

    def run_cache() -> int:
        for i in idx:
            cache.batch(i, aug, gen)
        return batch * len(idx)

    sec, seen = _timeit(run_cache, device)
    out["cache_images_per_s"] = seen / sec
    out["speedup_cache_vs_loader"] = out["cache_images_per_s"] / out["loader_images_per_s"]
    return out


def bench_steps(
    kind: str, cfg: BenchConfig, params: dict[str, Any], device: Any
) -> dict[str, Any]:
    """Source (``pretrain``) or fine-tuning (``finetune``) step rates via lf2.train."""
    import importlib

    try:
        mod = importlib.import_module("lf2.train.bench_steps")
        step = getattr(mod, f"{kind}_bench_step")
    except (ImportError, AttributeError) as exc:
        return {"skipped": f"lf2.train.bench_steps.{kind}_bench_step is not available ({exc})"}
    p = _params_at_scale(params, cfg)
    common = {"steps": cfg.steps, "warmup": cfg.warmup, "num_images": cfg.step_images}
    if kind == "pretrain":
        return {"steps": cfg.steps, "warmup": cfg.warmup, **step(p, device, **common)}
    out: dict[str, Any] = {"steps": cfg.steps, "warmup": cfg.warmup, "runs": {}}
    for variant in cfg.variants:
        for sampling in cfg.samplings:
            log.info("bench finetune %s / %s", variant, sampling)
            out["runs"][f"{variant}/{sampling}"] = step(p, variant, sampling, device, **common)
    return out


def bench_extract(cfg: BenchConfig, params: dict[str, Any], device: Any) -> dict[str, Any]:
    """Images/s through the model in eval mode, batches from the image cache."""
    import torch

    from lf2.data.tensor_cache import ImageCache
    from lf2.train import runtime

    model = _build_model(cfg, params).to(device).eval()
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 256, (cfg.extract_images, cfg.height, cfg.width, 3), dtype=np.uint8)
    cache = ImageCache(raw, device)
    dtype = runtime.resolve_precision(params.get("precision", "auto"), torch.device(device))

    def run() -> int:
        with torch.no_grad(), runtime.autocast(torch.device(device), dtype):
            feats = [model(x).float() for x in cache.eval_batches(cfg.extract_batch)]
        return sum(f.shape[0] for f in feats)

    sec, seen = _timeit(run, device)
    return {
        "images": seen, "batch": cfg.extract_batch, "precision": str(dtype or "fp32"),
        "images_per_s": seen / sec, "embedding_dim": model.embedding_dim,
    }


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


# ----------------------------------------------------------------------------- projection
def project_table2(results: dict[str, Any], kmeans_iters: int = 100) -> dict[str, Any]:
    """Wall time of the paper's whole Table II from the measured rates (seconds).

    Needs ``pretrain`` and ``finetune`` rates measured at paper scale (``--scale market``);
    adds per-epoch extraction, k-means (the method ``lf2.cluster`` uses on this device, at
    2,048-d, scaled linearly in N and in iterations up to ``kmeans_iters``) and evaluation
    when they were measured. Samplings ``shared`` and ``per_label`` are projected apart.
    """
    s = PAPER_SCHEDULE
    if results.get("config", {}).get("scale") != "market":
        return {"skipped": "the projection needs paper-scale rates (--scale market)"}
    pre = results.get("pretrain", {})
    ft = results.get("finetune", {}).get("runs", {})
    if "it_per_s" not in pre or not ft:
        return {"skipped": "needs the pretrain and finetune sections"}
    extract = results.get("extract", {}).get("images_per_s")
    device_type = str(results.get("machine", {}).get("device", "cpu")).split(":")[0]
    km_method, km_sec = _kmeans_seconds_by_k(results.get("kmeans", {}), device_type)
    km_scale = kmeans_iters / max(1, results.get("kmeans", {}).get("niter", 1))
    ev = results.get("eval", {}).get("seconds")
    ev_n = results.get("eval", {}).get("query", 0) + results.get("eval", {}).get("gallery", 0)
    out: dict[str, Any] = {"schedule": s, "kmeans_method": km_method,
                           "kmeans_iters": kmeans_iters, "notes": []}
    pretrain_s = s["pretrain_runs"] * s["pretrain_epochs"] * s["pretrain_iters"] / pre["it_per_s"]
    for sampling in SAMPLINGS:
        parts = {"pretrain": pretrain_s, "finetune_steps": 0.0, "extract": 0.0, "kmeans": 0.0,
                 "evaluate": 0.0}
        missing = False
        for tgt in s["targets"]:
            for variant, k in s["rows"]:
                run = ft.get(f"{variant}/{sampling}")
                if run is None:
                    missing = True
                    continue
                parts["finetune_steps"] += s["finetune_epochs"] * s["finetune_iters"] / run["it_per_s"]
                sets, passes = _sets_and_passes(variant, s["num_parts"])
                if extract:  # LF2's FM also needs the student's stripes: a second forward
                    parts["extract"] += s["finetune_epochs"] * tgt["train"] * passes / extract
                if k in km_sec:
                    per = km_sec[k] * km_scale * tgt["train"] / results["kmeans"]["n"]
                    parts["kmeans"] += s["finetune_epochs"] * sets * per
            # evaluation: direct transfer + each row; features of query + gallery
            evals = 1 + len(s["rows"])
            if extract:
                parts["evaluate"] += evals * (tgt["query"] + tgt["gallery"]) / extract
            if ev and ev_n:
                parts["evaluate"] += evals * ev  # ranking cost at the measured size
        if missing:
            out[sampling] = {"skipped": f"not every variant was measured with {sampling} sampling"}
            continue
        parts["total"] = sum(parts.values())
        out[sampling] = parts
    if not extract:
        out["notes"].append("extract not measured: per-epoch feature extraction left out")
    lacking = sorted({k for _, k in s["rows"]} - set(km_sec))
    if lacking:
        out["notes"].append(f"k-means not measured at 2,048-d with k = {lacking}: "
                            "their clustering time is left out")
    return out


def _kmeans_seconds_by_k(km: dict[str, Any], device_type: str) -> tuple[str | None, dict[int, float]]:
    """Seconds per k of the method lf2.cluster runs on this device, at 2,048-d."""
    prefer = ["faiss_gpu", "torch"] if device_type == "cuda" else ["faiss_cpu", "torch"]
    for method in prefer:
        runs = [r for r in km.get("runs", []) if r["method"] == method and r["dim"] == 2048]
        if runs:
            return method, {r["k"]: r["seconds"] for r in runs}
    return None, {}


# ----------------------------------------------------------------------------- driver
def run_bench(
    params: dict[str, Any],
    out_dir: str | os.PathLike[str],
    *,
    device: str = "auto",
    cfg: BenchConfig | None = None,
    only: list[str] | None = None,
    command: str = "",
) -> dict[str, Any]:
    """Run the chosen sections, write ``bench.json`` and ``bench.md``; return the results."""
    import torch

    from lf2.io import atomic_write_text, write_json
    from lf2.train import runtime

    cfg = cfg or make_config("small")
    dev = runtime.resolve_device(device)
    runtime.configure_threads(int(params.get("threads", 0) or 0))
    sections = list(only or SECTIONS)
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        from lf2.errors import ParamsError

        raise ParamsError(f"--only {', '.join(unknown)}: expected some of {', '.join(SECTIONS)}")
    results: dict[str, Any] = {"command": command, "machine": machine_info(dev),
                               "config": asdict(cfg), "timings_s": {}}
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "matmul": lambda: bench_matmul(cfg, dev),
        "flops": lambda: _flops_section(cfg, params),
        "data": lambda: bench_data(cfg, params, dev),
        "pretrain": lambda: bench_steps("pretrain", cfg, params, dev),
        "finetune": lambda: bench_steps("finetune", cfg, params, dev),
        "extract": lambda: bench_extract(cfg, params, dev),
        "kmeans": lambda: bench_kmeans(cfg, dev),
        "eval": lambda: bench_eval(cfg, dev),
    }
    from lf2.layout import bench_files

    files = bench_files(out_dir)
    for name in SECTIONS:
        if name not in sections:
            continue
        log.info("bench: %s", name)
        t0 = time.perf_counter()
        results[name] = runners[name]()
        results["timings_s"][name] = time.perf_counter() - t0
        write_json(files["partial"], results)  # a long run keeps what it measured
    results["peak_gpu_memory_bytes"] = (
        torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None
    )
    iters = int(params.get("finetune", {}).get("clustering", {}).get("kmeans_iters", 100))
    results["projection"] = project_table2(results, kmeans_iters=iters)
    write_json(files["json"], results)
    atomic_write_text(files["md"], render_markdown(results))
    files["partial"].unlink(missing_ok=True)
    return results


# ----------------------------------------------------------------------------- report
def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def _hours(sec: float) -> str:
    return f"{sec / 3600:.1f} h" if sec >= 3600 else f"{sec / 60:.1f} min"


def _achieved(r: dict[str, Any], kind: str, run: dict[str, Any]) -> tuple[float | None, float | None]:
    """Achieved TFLOP/s of a step run and its fraction of the measured matmul peak."""
    f = r.get("flops")
    if not f or f.get("batch") != run.get("batch"):
        return None, None
    per_step = f["pretrain_step_flops"] if kind == "pretrain" else f["finetune_step_flops"]
    achieved = per_step * run.get("forwards_per_step", 1) * run["it_per_s"] / 1e12
    peak = max((v for k, v in r.get("matmul", {}).items() if k.endswith("_tflops")), default=0)
    return achieved, (achieved / peak if peak else None)


def render_markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        "# lf2 bench",
        "",
        f"- command: `{r.get('command') or 'lf2 bench'}`",
        f"- device: {m['device']}" + (f" ({m['gpu']})" if "gpu" in m else f" ({m['cpu']})"),
        f"- torch {m['torch']}, {m['threads']} threads, {m['time_utc']}, "
        f"load average {_fmt(m.get('load_average_1m'))} at start",
        f"- scale: {r['config']['scale']} ({r['config']['arch']}, "
        f"{r['config']['height']}x{r['config']['width']}, "
        f"batch {r['config']['batch_p']}x{r['config']['batch_k']})",
        "",
    ]
    if "matmul" in r:
        mm = r["matmul"]
        lines += ["## Matmul peak", "", "| dtype | TFLOP/s |", "|---|---|"]
        lines += [f"| {k[:-7]} | {_fmt(v)} |" for k, v in mm.items() if k.endswith("_tflops")]
        lines += [""]
    if "flops" in r:
        f = r["flops"]
        lines += ["## FLOPs per step", "", "| what | GFLOP |", "|---|---|"]
        for key in ("student_forward", "student_forward_backward", "teacher_forward",
                    "pretrain_step_flops", "finetune_step_flops", "finetune_step_flops_per_label"):
            lines.append(f"| {key} | {f[key] / 1e9:,.1f} |")
        lines += [""]
        sched = f.get("table2_schedule_flops")
        if sched:
            peak = max((v for k, v in r.get("matmul", {}).items() if k.endswith("_tflops")), default=0)
            lines += ["Whole Table II schedule (PFLOP; floor = FLOPs / measured matmul peak):", "",
                      "| sampling | pretrain | fine-tune steps | extraction | k-means | total | floor |",
                      "|---|---|---|---|---|---|---|"]
            for sm in SAMPLINGS:
                tot = sched[f"total_{sm}"]
                floor = _hours(tot / (peak * 1e12)) if peak else "—"
                lines.append(f"| {sm} | {sched['pretrain'] / 1e15:,.1f} | "
                             f"{sched[f'finetune_steps_{sm}'] / 1e15:,.1f} | "
                             f"{sched[f'extract_{sm}'] / 1e15:,.1f} | "
                             f"{sched[f'kmeans_{sm}'] / 1e15:,.1f} | {tot / 1e15:,.1f} | {floor} |")
            lines += [""]
    if "data" in r:
        d = r["data"]
        lines += [
            "## Data path (training batches)", "",
            "| path | images/s |", "|---|---|",
            f"| DataLoader + PIL ({d['workers']} workers) | {_fmt(d['loader_images_per_s'])} |",
            f"| ImageCache + BatchAugment | {_fmt(d['cache_images_per_s'])} |",
            f"| speed-up | {_fmt(d['speedup_cache_vs_loader'])}x |", "",
        ]
    for kind in ("pretrain", "finetune"):
        if kind not in r:
            continue
        sec = r[kind]
        lines += [f"## {kind} step", ""]
        if "skipped" in sec:
            lines += [f"skipped: {sec['skipped']}", ""]
            continue
        runs = sec["runs"] if kind == "finetune" else {"source": sec}
        lines += ["| run | it/s | images/s | achieved TFLOP/s | of matmul peak | peak GPU MiB "
                  "| syncing ops per step | CUDA syncs per step |",
                  "|---|---|---|---|---|---|---|---|"]
        sites: set[str] = set()
        for name, v in runs.items():
            mem = v.get("peak_mem_bytes")
            ach, frac = _achieved(r, kind, v)
            sites.update(v.get("host_sync_sites", []))
            lines.append(f"| {name} | {_fmt(v['it_per_s'])} | {_fmt(v['images_per_s'])} | "
                         f"{_fmt(ach)} | {_fmt(frac)} | {_fmt(mem / 2**20 if mem else None)} | "
                         f"{_fmt(v.get('host_sync_ops'))} | {_fmt(v.get('cuda_sync_calls'))} |")
        lines += [""] + [f"- syncs at {site}" for site in sorted(sites)] + ([""] if sites else [])
    if "extract" in r:
        e = r["extract"]
        lines += ["## Feature extraction", "",
                  f"{_fmt(e['images_per_s'])} images/s ({e['precision']}, batch {e['batch']}, "
                  f"{e['embedding_dim']}-d)", ""]
    if "kmeans" in r:
        k = r["kmeans"]
        lines += [f"## k-means (N = {k['n']}, {k['true_ids']} true ids, {k['niter']} iterations)", "",
                  "| method | dim | k | seconds | time / faiss_cpu | ARI |", "|---|---|---|---|---|---|"]
        base = {(x["dim"], x["k"]): x["seconds"] for x in k["runs"] if x["method"] == "faiss_cpu"}
        for run in k["runs"]:
            ref = base.get((run["dim"], run["k"]))
            rel = run["seconds"] / ref if ref else None
            lines.append(f"| {run['method']} | {run['dim']} | {run['k']} | {_fmt(run['seconds'])} | "
                         f"{_fmt(rel)} | {run['ari']:.3f} |")
        for name, why in k["skipped"].items():
            lines.append(f"\nskipped {name}: {why}")
        lines += [""]
    if "eval" in r:
        e = r["eval"]
        if "skipped" in e:
            lines += ["## Evaluation", "", f"skipped: {e['skipped']}", ""]
        else:
            lines += ["## Evaluation", "",
                      f"{e['query']} x {e['gallery']} ({e['dim']}-d): {_fmt(e['seconds'])} s "
                      f"(distances {_fmt(e['distance_seconds'])} s, ranking "
                      f"{_fmt(e['ranking_seconds'])} s)", ""]
    peak = r.get("peak_gpu_memory_bytes")
    lines += ["## Peak GPU memory", "",
              f"{peak / 2**30:.2f} GiB" if peak else "not measured: no GPU in this run", ""]
    proj = r.get("projection", {})
    lines += ["## Projected wall time of the paper's Table II", ""]
    if "skipped" in proj:
        lines += [f"skipped: {proj['skipped']}", ""]
    else:
        lines += ["| sampling | pretrain | fine-tune steps | extraction | k-means | evaluation | total |",
                  "|---|---|---|---|---|---|---|"]
        for sampling in SAMPLINGS:
            p = proj.get(sampling, {})
            if "total" not in p:
                lines.append(f"| {sampling} | {p.get('skipped', '—')} ||||||")
                continue
            lines.append(f"| {sampling} | " + " | ".join(_hours(p[c]) for c in (
                "pretrain", "finetune_steps", "extract", "kmeans", "evaluate", "total")) + " |")
        lines += ["", f"- k-means: {proj.get('kmeans_method')}, scaled to "
                  f"{proj.get('kmeans_iters')} iterations and to each target's size"]
        lines += [f"- {n}" for n in proj.get("notes", [])] + [""]
    return "\n".join(lines)
