"""lf2 prepare: validate a dataset (or render the synthetic one) and write manifest.csv.

    lf2 prepare market1501 --root DIR --out data/market1501 [--skip-corrupt]
    lf2 prepare cuhk03 --root DIR --out DIR --cuhk03-type labeled
    lf2 prepare synthetic --domain a --seed 11 --out data/synth_a [--contact-sheet a.png]
    lf2 prepare synthetic --params params/default.yaml --dataset synth_a --out data/synth_a

With ``--params``/``--dataset`` the options come from ``datasets.<name>``; flags override.
"""

from __future__ import annotations

import argparse

KINDS = ("synthetic", "market1501", "dukemtmc", "msmt17", "cuhk03")
SYNTHETIC_FLAGS = ("domain", "seed", "train_ids", "test_ids", "images_per_id", "height", "width")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", nargs="?", choices=KINDS,
                        help="dataset kind (may be omitted with --params/--dataset)")
    parser.add_argument("--out", required=True, help="folder for manifest.csv and meta.json")
    parser.add_argument("--root", help="real datasets: the dataset folder or its parent")
    parser.add_argument("--skip-corrupt", action="store_true", default=None,
                        help="leave corrupt images out (and say how many) instead of failing")
    parser.add_argument("--cuhk03-type", choices=("detected", "labeled"), help="CUHK03-NP variant")
    parser.add_argument("--workers", type=int, default=None,
                        help="image-check processes / render processes (0 = all cores)")
    parser.add_argument("--no-validate", dest="validate", action="store_false", default=None,
                        help="do not decode every image (faster; corrupt files go unnoticed)")
    parser.add_argument("--params", help="params file whose datasets.<name> entry gives the options")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a params value (with --params)")
    parser.add_argument("--dataset", help="name of the datasets.<name> entry in --params")
    syn = parser.add_argument_group("synthetic")
    syn.add_argument("--domain", help="domain style: a (6 cameras, indoor) or b (8 cameras, outdoor)")
    syn.add_argument("--seed", type=int)
    syn.add_argument("--train-ids", type=int)
    syn.add_argument("--test-ids", type=int)
    syn.add_argument("--images-per-id", type=int, help="mean images per identity and split")
    syn.add_argument("--height", type=int)
    syn.add_argument("--width", type=int)
    syn.add_argument("--contact-sheet", help="also write a PNG grid of sample identities")


def resolve_options(args: argparse.Namespace) -> tuple[str, dict]:
    """(kind, options) from the params entry (if any) overridden by explicit flags."""
    from lf2.errors import ParamsError

    options: dict = {}
    kind = args.kind
    if args.params or args.dataset:
        if not (args.params and args.dataset):
            raise ParamsError("--params and --dataset go together (the options are datasets.<name>)")
        from lf2.config import load_params

        params = load_params(args.params, args.overrides)
        datasets = params.get("datasets", {})
        if args.dataset not in datasets:
            raise ParamsError(
                f"{args.params}: no datasets.{args.dataset}; defined: {', '.join(datasets) or 'none'}"
            )
        entry = dict(datasets[args.dataset])
        entry_kind = entry.pop("kind")
        if kind is not None and kind != entry_kind:
            raise ParamsError(
                f"{args.params}: datasets.{args.dataset}.kind is {entry_kind!r} but the command "
                f"asked for {kind!r}"
            )
        kind = entry_kind
        options.update(entry)
    if kind is None:
        raise ParamsError("name the dataset kind (" + ", ".join(KINDS) + ") or give --params/--dataset")
    flags = {"root": args.root, "skip_corrupt": args.skip_corrupt, "cuhk03_type": args.cuhk03_type,
             "workers": args.workers, "validate": args.validate, "contact_sheet": args.contact_sheet}
    flags.update({k: getattr(args, k) for k in SYNTHETIC_FLAGS})
    options.update({k: v for k, v in flags.items() if v is not None})
    if kind == "synthetic":
        if "root" in options:
            raise ParamsError("synthetic: --root does not apply (the images are rendered into OUT/images)")
        options.pop("cuhk03_type", None)
    else:
        stray = sorted(k for k in (*SYNTHETIC_FLAGS, "contact_sheet") if k in options)
        if stray:
            raise ParamsError(f"{kind}: option(s) {', '.join(stray)} only apply to synthetic")
    return kind, options


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lf2.data.manifest import load_manifest
    from lf2.data.prepare import prepare_dataset
    from lf2.errors import DatasetError
    from lf2.io import remove_stale_temporaries

    kind, options = resolve_options(args)
    remove_stale_temporaries(args.out)  # left by a killed write; the folder is this stage's alone
    root = options.pop("root", None)
    try:
        manifest_path = prepare_dataset(kind, Path(args.out), root=Path(root) if root else None, **options)
    except DatasetError as exc:
        hint = _env_hint(args)
        if hint is None:
            raise
        raise DatasetError(f"{exc}\n{hint}") from exc
    manifest = load_manifest(manifest_path)
    counts = manifest.meta.get("counts", {})
    print(f"{manifest.name}: {manifest_path}")
    print("  split   |   ids | images | cameras")
    for split, c in counts.items():
        print(f"  {split:<7} | {c['ids']:5d} | {c['images']:6d} | {c['cameras']:7d}")
    skipped = manifest.meta.get("corrupt_skipped") or []
    if skipped:
        print(f"  left out {len(skipped)} corrupt image(s) (--skip-corrupt); listed in meta.json")
    return 0


def _env_hint(args: argparse.Namespace) -> str | None:
    """Why a params dataset root may be wrong: an unset ``${VAR:-default}`` in it."""
    if args.root or not (args.params and args.dataset):
        return None
    import yaml

    from lf2.config import unset_env_defaults

    with open(args.params, encoding="utf-8") as fh:
        raw = ((yaml.safe_load(fh) or {}).get("datasets") or {}).get(args.dataset) or {}
    unset = unset_env_defaults(raw.get("root"))
    if not unset:
        return None
    var, default = unset[0]
    return (f"{args.params}: datasets.{args.dataset}.root is {raw['root']!r} and the environment "
            f"variable {var} is not set, so its default {default!r} was used; set {var} to the "
            f"folder holding the datasets (export {var}=/path/to/datasets) and rerun")
