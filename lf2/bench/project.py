"""The projection of the whole paper Table II's wall time from the measured rates."""

from __future__ import annotations

from typing import Any

from lf2.bench.compute import _sets_and_passes
from lf2.bench.config import PAPER_SCHEDULE, SAMPLINGS


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
