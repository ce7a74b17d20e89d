"""Arguments shared by the training commands."""

from __future__ import annotations

import argparse


def add_overrides_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one params value (parsed as YAML), e.g. --set finetune.epochs=3; "
                             "repeatable")


def add_params_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params/default.yaml",
                        help="params file, the single source of truth (default: %(default)s)")
    add_overrides_argument(parser)


def add_resume_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                        help="continue from state.pt beside --out when it exists (default: on)")


def load(args: argparse.Namespace) -> dict:
    from lf2.config import load_params

    return load_params(args.params, args.overrides)


def add_root_arguments(parser: argparse.ArgumentParser) -> None:
    """``--data`` / ``--runs`` / ``--results``: other roots than the params' ``paths``."""
    parser.add_argument("--data", default=None, help="prepared data folder (default: paths.data)")
    parser.add_argument("--runs", default=None, help="runs folder (default: paths.runs)")
    parser.add_argument("--results", default=None,
                        help="results folder holding metrics/ (default: paths.results)")


def load_with_roots(args: argparse.Namespace) -> dict:
    """Params with ``--set`` overrides and the root arguments applied (:mod:`lf2.layout`)."""
    from lf2.layout import with_roots

    return with_roots(load(args), data=args.data, runs=args.runs, results=args.results)
