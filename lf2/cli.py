"""The ``lf2`` command line: one sub-command per pipeline stage.

Each sub-command lives in ``lf2/commands/<name>.py`` and defines ``add_arguments(parser)``
and ``run(args) -> int``. Modules are imported only when their command runs, so
``lf2 --help`` stays fast and a broken optional dependency affects one command only.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import logging
import os
import sys

from lf2 import __version__
from lf2.errors import LF2Error

#: name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("lf2.commands.prepare", "validate a dataset (or render the synthetic one) and write manifest.csv"),
    "pretrain": ("lf2.commands.pretrain", "supervised source-domain pre-training"),
    "finetune": ("lf2.commands.finetune", "mean-teacher fine-tuning on the target domain (one Table II row)"),
    "evaluate": ("lf2.commands.evaluate", "evaluate a checkpoint (or saved features) on a query/gallery manifest"),
    "table": ("lf2.commands.table", "collect metrics into results/table2.csv, table2.md and table1.csv"),
    "figures": ("lf2.commands.figures", "draw the paper-style figures from a run's artifacts"),
    "dvc": ("lf2.commands.dvc", "generate dvc.yaml from the Snakemake DAG"),
    "params": ("lf2.commands.params", "validate a params file and print it resolved"),
    "bench": ("lf2.commands.bench", "measure step, clustering and evaluation speed"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lf2", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"lf2 {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        try:
            importlib.import_module(module).add_arguments(p)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            p.set_defaults(_missing=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # its AVX probing is noise
    if args.command is None:
        parser.print_help()
        return 2
    if getattr(args, "_missing", False):
        print(f"lf2: command '{args.command}' is not available in this build", file=sys.stderr)
        return 2
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except LF2Error as exc:
        print(f"lf2 {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a folder or disk that refuses us, met outside lf2.io's writers
        from lf2.io import os_error_message

        message = os_error_message(exc, verb="create or write")
        if message is None:
            raise
        print(f"lf2 {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"lf2 {args.command}: interrupted", file=sys.stderr)
        return 130


def console_main() -> None:
    """Entry point of the ``lf2`` console script and ``python -m lf2``: :func:`main`, then exit
    without the interpreter's teardown.

    Tearing down an interpreter that has imported torch took 0.64 s [0.19, 1.09] (freeing every
    module, unloading torch's shared libraries; docs/performance.md), paid by every DAG job.
    Every output lf2 writes is complete before :func:`main` returns (written to a temporary
    file, flushed and renamed: :mod:`lf2.io`), so nothing is lost by skipping it; the
    ``atexit`` handlers (DataLoader workers, logging) and the standard streams still run and
    flush. In-process callers (tests, notebooks) call :func:`main` and keep the normal exit,
    and so does a run under a profiler, tracer or debugger (``python -m cProfile -o F -m lf2``,
    coverage, pdb): they write their output during the teardown that ``os._exit`` skips.
    """
    code = main()
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing left to flush
            pass
    os._exit(code)


if __name__ == "__main__":
    console_main()
