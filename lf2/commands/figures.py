"""``lf2 figures``: the paper-style figures (Grad-CAM, t-SNE, cluster consistency, CMC, losses)."""

from __future__ import annotations

import argparse

#: kept here (not imported from lf2.report.figures) so that `lf2 --help` imports nothing heavy
FIGURE_NAMES = ("gradcam", "tsne", "cluster_consistency", "cmc", "training_curves")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", required=True, help="params YAML (e.g. params/default.yaml)")
    parser.add_argument("--out", required=True, help="output folder for <name>.png and <name>.pdf")
    parser.add_argument(
        "--only", default=None, metavar="NAMES",
        help=f"comma-separated subset of: {', '.join(FIGURE_NAMES)} (default: all)",
    )
    parser.add_argument("--runs", default=None, help="runs folder (default: paths.runs)")
    parser.add_argument("--metrics", default=None,
                        help="metrics folder (default: <paths.results>/metrics)")
    parser.add_argument("--data", default=None, help="prepared data folder (default: paths.data)")
    parser.add_argument("--num-images", type=int, default=3,
                        help="query images per direction in the Grad-CAM figure (default 3)")
    parser.add_argument("--tsne-ids", type=int, default=20,
                        help="target identities in the t-SNE figure (default 20, as Fig. 5)")
    parser.add_argument("--device", default=None, help="override params 'device' (auto, cpu, cuda)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a params value (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    from lf2.config import load_params
    from lf2.errors import LF2Error
    from lf2.report.figures import draw_figures

    params = load_params(args.params, args.overrides)
    which = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    if args.num_images < 1 or args.tsne_ids < 2:
        raise LF2Error("--num-images must be >= 1 and --tsne-ids >= 2")
    for path in draw_figures(
        params, args.out, which, runs_dir=args.runs, metrics_dir=args.metrics,
        data_dir=args.data, num_images=args.num_images, tsne_ids=args.tsne_ids, device=args.device,
    ):
        print(path)
    return 0
