"""``lf2 bench`` sections ``matmul`` and ``flops``: the device's practical peak and the FLOPs of the training steps and of the whole schedule."""

from __future__ import annotations

from typing import Any

from lf2.bench.config import PAPER_SCHEDULE, SAMPLINGS, BenchConfig, _build_model, _timeit
from lf2.settings import model_settings
from lf2.train.variants import make_variant


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
        "last_stride": model_settings(params).last_stride, **counts,
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
