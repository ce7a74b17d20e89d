"""``lf2 pretrain``: supervised pre-training on the source domain."""

from __future__ import annotations

import argparse
from pathlib import Path

from lf2.commands._common import add_params_arguments, add_resume_argument, load


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_params_arguments(parser)
    parser.add_argument("--source", required=True, type=Path, help="prepared source dataset (manifest dir)")
    parser.add_argument("--target", type=Path, default=None,
                        help="prepared target dataset; only read when pretrain.target_bn is on")
    parser.add_argument("--out", required=True, type=Path, help="checkpoint to write, e.g. runs/A-to-B/pretrain/seed0/model.pt")
    add_resume_argument(parser)


def run(args: argparse.Namespace) -> int:
    from lf2.train.pretrain import run_pretrain

    params = load(args)
    path = run_pretrain(params, source=args.source, target=args.target, out=args.out, resume=args.resume)
    print(f"wrote {path}")
    return 0
