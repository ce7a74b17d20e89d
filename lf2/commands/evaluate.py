"""``lf2 evaluate``: mAP / CMC / mINP of a checkpoint (or saved features) on a test split.

Two inputs: ``--checkpoint`` (features are extracted from the manifest's query and
gallery images with the checkpoint's model, teacher by default) or ``--features`` (an
``.npz`` with arrays ``query`` and ``gallery``, rows in manifest order). The distance is
``1 - cos`` of L2-normalised features, or the k-reciprocal re-ranked distance with
``--rerank``; distances and ranking run on the resolved device (``--device``, else the
params' ``device``: the GPU when there is one). The metrics JSON is written atomically.
``timings.distance`` is 0 with ``--rerank`` (the re-ranked distance, original distance
included, counts as ``rerank``), and ``timings.extract`` is 0 with ``--features``.

Settings come from, in order: the flags, ``--params`` (with ``--set``), the params stored
in the checkpoint, the schema's defaults of the ``evaluate`` section.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lf2.commands._common import add_overrides_argument

if TYPE_CHECKING:
    from lf2.settings import EvaluateSettings

SPLIT_NOTE = "query/gallery test split"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="checkpoint file (lf2 pretrain / finetune output)")
    src.add_argument("--features", help=".npz with arrays 'query' and 'gallery' (manifest order)")
    parser.add_argument(
        "--manifest", required=True, help="prepared dataset folder or its manifest.csv"
    )
    parser.add_argument("--out", required=True, help="metrics JSON to write")
    parser.add_argument(
        "--rerank",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="k-reciprocal re-ranking (default: params evaluate.rerank)",
    )
    parser.add_argument(
        "--params", default=None, help="params file (default: the checkpoint's params)"
    )
    add_overrides_argument(parser)
    parser.add_argument(
        "--which",
        choices=("auto", "teacher", "student"),
        default="auto",
        help="weights to evaluate; auto = teacher when present (default: %(default)s)",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="extraction batch size")
    parser.add_argument("--no-flip", action="store_true", help="no flip augmentation at test time")
    parser.add_argument(
        "--device", default=None, help="auto | cpu | cuda | cuda:N (default: params)"
    )
    parser.add_argument(
        "--max-rank", type=int, default=50, help="length of the CMC curve (default: 50)"
    )
    parser.add_argument(
        "--save-features",
        default=None,
        metavar="NPZ",
        help="also write the extracted features (query, gallery) to this .npz",
    )


def run(args: argparse.Namespace) -> int:
    from lf2.data.manifest import load_manifest
    from lf2.errors import DatasetError, LF2Error
    from lf2.io import remove_stale_temporaries, sha256_file, write_json
    from lf2.train.runtime import resolve_device

    t_start = time.perf_counter()
    remove_stale_temporaries(Path(args.out).parent, Path(args.out).name)  # a shared folder: own file only
    if args.max_rank < 10:
        raise LF2Error(f"--max-rank {args.max_rank}: expected at least 10 (Rank-10 is reported)")
    if args.batch_size is not None and args.batch_size < 1:
        raise LF2Error(f"--batch-size {args.batch_size}: expected a positive integer")
    if args.save_features and args.features:
        raise LF2Error(
            "--save-features needs --checkpoint (with --features the features already exist)"
        )
    manifest = load_manifest(args.manifest)
    ids = {s: (manifest.pids(s), manifest.camids(s)) for s in ("query", "gallery")}
    timings = {"extract": 0.0, "distance": 0.0, "rerank": 0.0, "ranking": 0.0}
    checkpoint = None
    if args.checkpoint:
        feats, params, checkpoint = _extract(args, manifest, timings)
        checkpoint["sha256"] = sha256_file(args.checkpoint)
        features_path = args.save_features
        if features_path:
            _save_npz(features_path, feats)
    else:
        params = _params(args, None)
        feats = _load_npz(args.features)
        features_path = args.features
    for split in ("query", "gallery"):
        n = len(ids[split][0])
        if feats[split].shape[0] != n:
            src = args.features or args.checkpoint
            raise DatasetError(
                f"{src}: {feats[split].shape[0]} {split} features but the manifest "
                f"{args.manifest} has {n} {split} images; expected one row per image"
            )
    settings = _settings(args, params)
    device = resolve_device(args.device or params.get("device", "auto"))
    metrics = _rank(feats, ids, settings, args.max_rank, timings, args.manifest, device)
    timings["total"] = time.perf_counter() - t_start
    cmc = [float(v) for v in metrics["cmc"]]
    out = {
        "mAP": float(metrics["mAP"]),
        "rank1": cmc[0],
        "rank5": cmc[4],
        "rank10": cmc[9],
        "mINP": float(metrics["mINP"]),
        "cmc": cmc,
        "num_query": int(metrics["num_query"]),
        "num_valid_query": int(metrics["num_valid_query"]),
        "num_gallery": int(feats["gallery"].shape[0]),
        "feature_dim": int(feats["query"].shape[1]),
        "rerank": bool(settings.rerank),
        "timings": {k: round(float(v), 4) for k, v in timings.items()},
        "checkpoint": checkpoint,
        "features": str(features_path) if features_path else None,
        "manifest": str(args.manifest),
        "dataset": manifest.name,
        "split_note": SPLIT_NOTE,
    }
    write_json(args.out, out)
    skipped = out["num_query"] - out["num_valid_query"]
    print(
        f"{manifest.name}: mAP {100 * out['mAP']:.1f}%  Rank-1 {100 * out['rank1']:.1f}%  "
        f"Rank-5 {100 * out['rank5']:.1f}%  Rank-10 {100 * out['rank10']:.1f}%"
        f"{'  (re-ranked)' if out['rerank'] else ''}"
        f"{f'  [{skipped} queries without a match skipped]' if skipped else ''}  -> {args.out}"
    )
    return 0


# --------------------------------------------------------------------------- steps


def _extract(args: argparse.Namespace, manifest: Any, timings: dict[str, float]):
    from lf2.eval.features import extract_features, iter_eval_batches
    from lf2.train.checkpoint import load_model
    from lf2.train.runtime import (
        configure_threads,
        precision_name,
        resolve_device,
        resolve_precision,
    )

    model, ckpt = load_model(args.checkpoint, which=args.which, device="cpu")
    params = _params(args, ckpt.get("params"))
    configure_threads(int(params.get("threads", 0) or 0))  # as the training stages do
    device = resolve_device(args.device or params.get("device", "auto"))
    model.to(device)
    inp = (ckpt.get("params") or params).get("input", {})
    height, width = _input_size(inp, args.checkpoint)
    batch_size = args.batch_size or _evaluate_settings(params).batch_size
    # stored params may be partial (a checkpoint of an older lf2): these two keep fallbacks
    flip = not args.no_flip and bool(params.get("model", {}).get("flip_test", True))
    amp_dtype = resolve_precision(params.get("precision", "auto"), device)
    amp = amp_dtype is not None
    workers = int(params.get("input", {}).get("workers", 0))
    t0 = time.perf_counter()
    feats = {}
    for split in ("query", "gallery"):
        batches = iter_eval_batches(
            manifest.paths(split), height, width, batch_size, workers=workers
        )
        feats[split] = extract_features(
            model, batches, flip=flip, device=device, amp=amp, progress=None
        )
    timings["extract"] = time.perf_counter() - t0
    # the precision of this extraction and of the training (older checkpoints: None)
    return feats, params, {"path": str(args.checkpoint), "sha256": None,
                           "precision": precision_name(amp_dtype),
                           "trained_precision": (ckpt.get("meta") or {}).get("precision")}


def _rank(
    feats: dict,
    ids: dict,
    settings: EvaluateSettings,
    max_rank: int,
    timings: dict[str, float],
    manifest_path: str,
    device: Any,
) -> dict:
    """Distances (plain or re-ranked) and metrics, on ``device`` (the GPU when resolved)."""
    import torch

    from lf2.errors import DatasetError
    from lf2.eval.ranking import evaluate_features, evaluate_ranking

    (qp, qc), (gp, gc) = ids["query"], ids["gallery"]
    try:
        if settings.rerank:
            import numpy as np

            from lf2.eval.rerank import rerank

            q, g = (_l2(feats[s]) for s in ("query", "gallery"))
            t0 = time.perf_counter()
            dist = rerank(
                q,
                g,
                k1=settings.k1,
                k2=settings.k2,
                lambda_value=settings.lambda_,
                device=device,
            )
            timings["rerank"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            dist_t = torch.from_numpy(np.asarray(dist)).to(device)
            res = evaluate_ranking(dist_t, qp, gp, qc, gc, max_rank=max_rank)
            timings["ranking"] = time.perf_counter() - t0
            return res
        return evaluate_features(
            torch.from_numpy(feats["query"]).to(device),
            torch.from_numpy(feats["gallery"]).to(device),
            qp,
            gp,
            qc,
            gc,
            max_rank=max_rank,
            metric="cosine",
            timings=timings,
        )
    except ValueError as exc:
        raise DatasetError(f"evaluating on {manifest_path}: {exc}") from exc


# --------------------------------------------------------------------------- helpers


def _params(args: argparse.Namespace, stored: dict | None) -> dict:
    from lf2.errors import ParamsError

    if args.params:
        from lf2.config import load_params

        return load_params(args.params, args.overrides)
    if args.overrides:
        raise ParamsError("--set needs --params (the checkpoint's params are used as stored)")
    return stored or {}


def _settings(args: argparse.Namespace, params: dict) -> EvaluateSettings:
    """The evaluate settings with the ``--rerank`` flag; checked, as stored params were not."""
    import dataclasses

    from lf2.errors import ParamsError
    from lf2.params_checks import k_bound_problem

    ev = _evaluate_settings(params)
    if args.rerank is not None:
        ev = dataclasses.replace(ev, rerank=args.rerank)
    lam = ev.lambda_
    problem = k_bound_problem("evaluate", ev.k1, ev.k2)
    if problem:
        raise ParamsError(problem)
    if not 0.0 <= float(lam) <= 1.0:
        raise ParamsError(f"evaluate.lambda={lam!r}: expected a number in [0, 1]")
    return ev


def _evaluate_settings(params: dict) -> EvaluateSettings:
    """``params.evaluate`` over the schema's defaults (stored params may predate a key)."""
    from lf2.config import section_defaults
    from lf2.settings import EvaluateSettings, build

    section = {**section_defaults("evaluate"), **(params.get("evaluate") or {})}
    return build(EvaluateSettings, section, "evaluate")


def _input_size(inp: dict, path: str) -> tuple[int, int]:
    from lf2.errors import CheckpointError

    try:
        return int(inp["height"]), int(inp["width"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint {path}: params.input.height/width missing or invalid; "
            "expected the resolved params saved by lf2 pretrain / finetune"
        ) from exc


def _l2(x: Any) -> Any:
    import numpy as np

    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _load_npz(path: str) -> dict:
    import numpy as np

    from lf2.errors import DatasetError

    p = Path(path)
    if not p.is_file():
        raise DatasetError(
            f"features file {p} does not exist; expected an .npz written by "
            "`lf2 evaluate --save-features`"
        )
    try:
        with np.load(p, allow_pickle=False) as npz:
            missing = [k for k in ("query", "gallery") if k not in npz.files]
            if missing:
                raise DatasetError(
                    f"{p}: missing array(s) {', '.join(missing)}; expected 'query' and "
                    f"'gallery' (found {', '.join(npz.files) or 'none'})"
                )
            feats = {k: np.asarray(npz[k]) for k in ("query", "gallery")}
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{p}: not a readable .npz file ({exc})") from exc
    for k, a in feats.items():
        if a.ndim != 2 or not np.issubdtype(a.dtype, np.number):
            raise DatasetError(
                f"{p}: array {k!r} has shape {a.shape} and dtype {a.dtype}; "
                "expected a 2-D numeric (num_images x dim) array"
            )
        if not np.isfinite(a).all():
            raise DatasetError(
                f"{p}: array {k!r} has NaN or infinite values; expected finite features"
            )
    if feats["query"].shape[1] != feats["gallery"].shape[1]:
        raise DatasetError(
            f"{p}: query features are {feats['query'].shape[1]}-d but gallery features "
            f"are {feats['gallery'].shape[1]}-d; expected the same dimension"
        )
    return feats


def _save_npz(path: str, feats: dict) -> None:
    import numpy as np

    from lf2.io import atomic_path

    with atomic_path(path, suffix=".npz.tmp") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, query=feats["query"], gallery=feats["gallery"])
