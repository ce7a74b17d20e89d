"""``lf2 finetune``: mean-teacher fine-tuning on the target domain, one Table II row."""

from __future__ import annotations

import argparse
from pathlib import Path

from lf2.commands._common import add_params_arguments, add_resume_argument, load
from lf2.train.variants import trained_variants


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_params_arguments(parser)
    parser.add_argument("--variant", required=True, choices=trained_variants(),
                        help="Table II row type (lf2/train/variants.py)")
    parser.add_argument("--clusters", type=int, default=None,
                        help="M_t, pseudo identities per feature set (default: rows.ablation_clusters)")
    parser.add_argument("--init", required=True, type=Path, help="source-pretrained checkpoint")
    parser.add_argument("--target", required=True, type=Path, help="prepared target dataset (manifest dir)")
    parser.add_argument("--out", required=True, type=Path, help="checkpoint to write, e.g. runs/A-to-B/lf2_m48/seed0/model.pt")
    parser.add_argument("--row", default=None, help="row name for logs (default: derived from variant and M_t)")
    add_resume_argument(parser)


def run(args: argparse.Namespace) -> int:
    from lf2.train.finetune import run_finetune

    params = load(args)
    clusters = args.clusters if args.clusters is not None else params["rows"]["ablation_clusters"]
    path = run_finetune(params, variant=args.variant, clusters=clusters, init=args.init, target=args.target,
                        out=args.out, resume=args.resume, row=args.row)
    print(f"wrote {path}")
    return 0
