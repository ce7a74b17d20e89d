"""``lf2 table``: collect the metrics JSON files into Table II (csv + md) and our Table I line."""

from __future__ import annotations

import argparse

from lf2.commands._common import add_overrides_argument, add_root_arguments, load_with_roots


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", required=True, help="params YAML (e.g. params/default.yaml)")
    parser.add_argument(
        "--out", required=True,
        help="path of table2.csv; table2.md and table1.csv are written beside it",
    )
    add_root_arguments(parser)
    parser.add_argument(
        "--paper-values", default=None,
        help="CSV of the paper's published numbers (default: the one shipped with lf2)",
    )
    add_overrides_argument(parser)


def run(args: argparse.Namespace) -> int:
    from lf2.report.tables import write_tables

    params = load_with_roots(args)
    for path in write_tables(params, args.out, paper_values=args.paper_values):
        print(path)
    return 0
