"""``lf2 figures``: the paper-style figures (Grad-CAM, t-SNE, cluster consistency, CMC, losses)."""

from __future__ import annotations

import argparse

from lf2.commands._common import add_overrides_argument, add_root_arguments, load_with_roots
from lf2.layout import FIGURE_KINDS as FIGURE_NAMES  # light: `lf2 --help` imports nothing heavy


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", required=True, help="params YAML (e.g. params/default.yaml)")
    parser.add_argument("--out", required=True, help="output folder for <name>.png and <name>.pdf")
    parser.add_argument(
        "--only", default=None, metavar="NAMES",
        help=f"comma-separated subset of: {', '.join(FIGURE_NAMES)} (default: all)",
    )
    add_root_arguments(parser)
    parser.add_argument("--num-images", type=int, default=3,
                        help="query images per direction in the Grad-CAM figure (default 3)")
    parser.add_argument("--tsne-ids", type=int, default=20,
                        help="target identities in the t-SNE figure (default 20, as Fig. 5)")
    parser.add_argument("--device", default=None, help="override params 'device' (auto, cpu, cuda)")
    add_overrides_argument(parser)


def run(args: argparse.Namespace) -> int:
    from lf2.errors import LF2Error
    from lf2.report.figures import draw_figures
    from lf2.train.runtime import configure_threads

    params = load_with_roots(args)
    configure_threads(int(params.get("threads", 0) or 0))  # as the training stages do
    which = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    if args.num_images < 1 or args.tsne_ids < 2:
        raise LF2Error("--num-images must be >= 1 and --tsne-ids >= 2")
    for path in draw_figures(
        params, args.out, which, num_images=args.num_images, tsne_ids=args.tsne_ids, device=args.device,
    ):
        print(path)
    return 0
