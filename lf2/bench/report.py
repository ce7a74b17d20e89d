"""``bench.md``: the measured results as markdown."""

from __future__ import annotations

from typing import Any

from lf2.bench.config import SAMPLINGS


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
