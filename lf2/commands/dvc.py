"""`lf2 dvc`: generate dvc.yaml from the Snakemake DAG (lf2.workflow_dag), one stage per job."""

from __future__ import annotations

import argparse
import os
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--params",
        default="params/default.yaml",
        help="params file the stages use, inside the repository (default: params/default.yaml)",
    )
    parser.add_argument("--out", default="dvc.yaml", help="where to write dvc.yaml")
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when --out differs from what would be generated",
    )
    parser.add_argument(
        "--done",
        action="store_true",
        help="write nothing; print the stages whose outputs all exist and that Snakemake does "
        "not mark incomplete (after an interrupted run: `dvc commit -f $(lf2 dvc --done)`)",
    )


def run(args: argparse.Namespace) -> int:
    from lf2.config import load_params
    from lf2.dvcgen import render_dvc_yaml
    from lf2.io import atomic_write_text
    from lf2.workflow_dag import relative_params_file

    params = load_params(args.params)
    params_file = relative_params_file(args.params, os.getcwd())
    if args.done:
        from lf2.dvcgen import done_stages

        print("\n".join(done_stages(params, params_file, os.getcwd())))
        return 0
    text = render_dvc_yaml(params, params_file)
    if args.check:
        current = open(args.out, encoding="utf-8").read() if os.path.exists(args.out) else None
        if current != text:
            print(
                f"{args.out} is stale: regenerate it with "
                f"`lf2 dvc --params {params_file} --out {args.out}`",
                file=sys.stderr,
            )
            return 1
        print(f"{args.out} is up to date")
        return 0
    atomic_write_text(args.out, text)
    print(f"wrote {args.out}: {len(_stage_names(text))} stages from {params_file}")
    return 0


def _stage_names(text: str) -> list[str]:
    import yaml

    return list((yaml.safe_load(text) or {}).get("stages", {}))
