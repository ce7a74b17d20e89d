"""``lf2 table``: collect the metrics JSON files into Table II (csv + md) and our Table I line."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", required=True, help="params YAML (e.g. params/default.yaml)")
    parser.add_argument(
        "--out", required=True,
        help="path of table2.csv; table2.md and table1.csv are written beside it",
    )
    parser.add_argument(
        "--metrics", default=None,
        help="folder holding <direction>/<row>.json (default: <paths.results>/metrics)",
    )
    parser.add_argument(
        "--paper-values", default=None,
        help="CSV of the paper's published numbers (default: the one shipped with lf2)",
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a params value, e.g. --set rows.clusters=[32,48] (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    from lf2.config import load_params
    from lf2.report.tables import write_tables

    params = load_params(args.params, args.overrides)
    for path in write_tables(
        params, args.out, metrics_dir=args.metrics, paper_values=args.paper_values
    ):
        print(path)
    return 0
