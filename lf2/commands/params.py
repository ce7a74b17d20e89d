"""`lf2 params`: validate a params file and print it resolved (or one value of it)."""

from __future__ import annotations

import argparse
import json
import sys

from lf2.commands._common import add_overrides_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params/default.yaml", help="params YAML file")
    add_overrides_argument(parser)
    parser.add_argument(
        "--get",
        metavar="KEY",
        help="print only this key (dotted path): scalars bare, mappings and lists as YAML/JSON",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    parser.add_argument(
        "--rows", action="store_true", help="print the Table II rows (name, variant, M_t, display)"
    )


def run(args: argparse.Namespace) -> int:
    import yaml

    from lf2.config import load_params, lookup, row_spec, rows_for

    params = load_params(args.params, args.overrides)
    if args.rows:
        for row in rows_for(params):
            spec = row_spec(params, row)
            clusters = "" if spec["clusters"] is None else spec["clusters"]
            print(f"{row}\t{spec['variant']}\t{clusters}\t{spec['display_name']}")
        return 0
    value = lookup(params, args.get) if args.get else params
    if args.get and not isinstance(value, dict | list):
        print(_scalar(value))
    elif args.json:
        json.dump(value, sys.stdout, indent=2)
        print()
    else:
        sys.stdout.write(yaml.safe_dump(value, sort_keys=False, allow_unicode=True))
    return 0


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
