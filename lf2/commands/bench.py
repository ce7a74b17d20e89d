"""``lf2 bench``: step, data-path, clustering and evaluation speed; writes bench.json/.md."""

from __future__ import annotations

import argparse
import shlex

SECTIONS = ("matmul", "flops", "data", "pretrain", "finetune", "extract", "kmeans", "eval")


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", required=True, help="params YAML (model, input, batch layout)")
    parser.add_argument("--out", required=True, help="folder for bench.json and bench.md")
    parser.add_argument("--device", default=None, help="cuda | cpu | cuda:N (default: params device)")
    parser.add_argument("--scale", default="small", choices=("market", "small"),
                        help="market: paper sizes (ResNet-50, 256x128, batch 64, 12,936 images); "
                             "small: a tiny run in seconds")
    parser.add_argument("--compile", default=None, choices=("none", "default", "max-autotune"),
                        help="torch.compile the backbones in the training steps (default: params compile)")
    parser.add_argument("--only", type=_names, default=None,
                        help=f"comma-separated sections: {','.join(SECTIONS)} (default: all)")
    sizes = parser.add_argument_group("sizes (override the scale's defaults)")
    sizes.add_argument("--steps", type=int, help="timed training steps per run")
    sizes.add_argument("--warmup", type=int, help="untimed training steps per run")
    sizes.add_argument("--variants", type=_names, help="fine-tune variants (default: all of lf2/train/variants.py)")
    sizes.add_argument("--samplings", type=_names, help="fine-tune samplings (shared,per_label)")
    sizes.add_argument("--data-images", type=int, help="images in the data-path comparison")
    sizes.add_argument("--data-batches", type=int, help="cached batches timed in the data path")
    sizes.add_argument("--workers", type=int, help="DataLoader workers / decode threads")
    sizes.add_argument("--extract-images", type=int, help="images through the model in eval mode")
    sizes.add_argument("--kmeans-n", type=int, help="points clustered")
    sizes.add_argument("--kmeans-dims", type=_ints, help="feature dimensions, e.g. 2048,6144")
    sizes.add_argument("--kmeans-ks", type=_ints, help="cluster counts, e.g. 500,700,900")
    sizes.add_argument("--kmeans-iters", type=int, help="Lloyd iterations of every method")
    sizes.add_argument("--kmeans-methods", type=_names,
                       help="faiss_cpu,faiss_gpu,torch,sklearn,sklearn_minibatch")
    sizes.add_argument("--eval-query", type=int, help="queries in the evaluation case")
    sizes.add_argument("--eval-gallery", type=int, help="gallery images in the evaluation case")
    sizes.add_argument("--matmul-size", type=int, help="side of the square matmul")


def run(args: argparse.Namespace) -> int:
    from lf2.bench import make_config, run_bench
    from lf2.config import load_params
    from lf2.errors import ParamsError
    from lf2.train.runtime import resolve_device

    params = load_params(args.params)
    if args.compile is not None:
        params = {**params, "compile": args.compile}
    overrides = {
        key: getattr(args, key)
        for key in ("steps", "warmup", "variants", "samplings", "data_images", "data_batches",
                    "workers", "extract_images", "kmeans_n", "kmeans_dims", "kmeans_ks",
                    "kmeans_iters", "kmeans_methods", "eval_query", "eval_gallery", "matmul_size")
    }
    for key in ("steps", "data_images", "data_batches", "extract_images", "kmeans_n",
                "kmeans_iters", "eval_query", "eval_gallery", "matmul_size"):
        if overrides[key] is not None and overrides[key] < 1:
            raise ParamsError(f"--{key.replace('_', '-')} must be at least 1, got {overrides[key]}")
    device = args.device or params.get("device", "auto")
    cfg = make_config(args.scale, resolve_device(device).type, **overrides)
    if cfg.kmeans_ks and max(cfg.kmeans_ks) > cfg.kmeans_n:
        raise ParamsError(f"--kmeans-ks {max(cfg.kmeans_ks)} exceeds --kmeans-n {cfg.kmeans_n}")
    command = _command_line(args)
    results = run_bench(params, args.out, device=device, cfg=cfg, only=args.only, command=command)
    print(f"lf2 bench: wrote {args.out}/bench.json and bench.md "
          f"({sum(results['timings_s'].values()):.1f} s)")
    return 0


def _command_line(args: argparse.Namespace) -> str:
    """The invocation, rebuilt from the parsed arguments (recorded in bench.json)."""
    parts = ["lf2", "bench"]
    for key, value in vars(args).items():
        if key.startswith("_") or key in ("command", "verbose") or value is None:
            continue
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        parts += [f"--{key.replace('_', '-')}", str(value)]
    return " ".join(shlex.quote(p) for p in parts)
