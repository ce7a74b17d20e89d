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

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from lf2.bench.clustering import bench_eval, bench_kmeans, clustered_features
from lf2.bench.compute import _flops_section, bench_matmul, count_step_flops, schedule_flops
from lf2.bench.config import (
    PAPER_SCHEDULE,
    SAMPLINGS,
    SCALES,
    SECTIONS,
    BenchConfig,
    machine_info,
    make_config,
)
from lf2.bench.pipeline import bench_data, bench_extract, bench_steps
from lf2.bench.project import project_table2
from lf2.bench.report import render_markdown

__all__ = [
    "PAPER_SCHEDULE", "SAMPLINGS", "SCALES", "SECTIONS", "BenchConfig", "bench_eval", "clustered_features",
    "count_step_flops", "make_config", "project_table2", "render_markdown", "run_bench", "schedule_flops",
]

log = logging.getLogger(__name__)


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
