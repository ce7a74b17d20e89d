"""``lf2 prepare``: parse a dataset, decode every image once, write manifest.csv + meta.json.

For the synthetic benchmark the images are first rendered into ``OUT/images`` (Market-1501
layout), then read back by the project's own Market-1501 parser, exactly as a real tree.
Nothing appears in ``OUT`` unless the whole preparation succeeded.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from lf2.data.datasets import (
    PARSERS,
    ParsedDataset,
    check_official_counts,
    format_counts,
    load_dataset,
    parse_market_style,
)
from lf2.data.images import find_corrupt
from lf2.data.manifest import MANIFEST_NAME, META_NAME, write_manifest
from lf2.errors import DatasetError, ParamsError

log = logging.getLogger(__name__)

KINDS = ("synthetic", *PARSERS)
REAL_OPTIONS = {"skip_corrupt", "cuhk03_type", "workers", "validate"}
SYNTHETIC_GENERAL = {"contact_sheet", "workers", "validate", "skip_corrupt"}
MAX_LISTED = 50


def prepare_dataset(kind: str, out: Path, *, root: Path | None = None, **options: Any) -> Path:
    """Prepare dataset ``kind`` into ``out``; return the path of ``out/manifest.csv``.

    Real datasets (``market1501``, ``dukemtmc``, ``msmt17``, ``cuhk03``) need ``root`` and
    accept ``skip_corrupt`` (bool), ``cuhk03_type`` (detected|labeled), ``workers`` (decoding
    processes, 0 = all cores) and ``validate`` (decode every image; default True).
    ``synthetic`` accepts the :class:`lf2.data.synthetic.SyntheticConfig` fields plus
    ``contact_sheet`` (PNG path), ``workers`` (render processes) and ``validate``.
    """
    out = Path(out)
    if kind == "synthetic":
        return _prepare_synthetic(out, **options)
    if kind not in PARSERS:
        raise ParamsError(f"unknown dataset kind {kind!r}; expected one of {', '.join(KINDS)}")
    unknown = set(options) - REAL_OPTIONS
    if unknown:
        raise ParamsError(f"{kind}: unknown option(s) {sorted(unknown)}; expected {sorted(REAL_OPTIONS)}")
    if root is None:
        raise ParamsError(f"{kind}: a dataset root is needed (--root DIR or datasets.<name>.root)")
    parser_opts = {"cuhk03_type": options["cuhk03_type"]} if options.get("cuhk03_type") else {}
    parsed = load_dataset(kind, Path(root), **parser_opts)
    log.info("parsed\n%s", format_counts(parsed))
    warnings = check_official_counts(parsed)
    skipped = _validate(parsed, options)
    meta = {
        "kind": kind,
        "source": str(parsed.root),
        "options": {k: v for k, v in options.items() if k != "workers"},
        "left_out": parsed.dropped,
        "corrupt_skipped": skipped,
        "count_warnings": warnings,
    }
    return write_manifest(out, parsed.table, root=parsed.root, name=parsed.name, extra_meta=meta)


def _validate(parsed: ParsedDataset, options: dict[str, Any]) -> list[str]:
    """Decode every image; raise on corrupt ones unless ``skip_corrupt`` (then drop them)."""
    if not options.get("validate", True):
        log.info("%s: image decoding skipped (validate=False)", parsed.name)
        return []
    rel = parsed.table["path"].tolist()
    bad = find_corrupt([parsed.root / p for p in rel], workers=int(options.get("workers", 0) or 0))
    if not bad:
        log.info("%s: all %d images decode", parsed.name, len(rel))
        return []
    listing = "\n".join(f"  {parsed.root / rel[i]}: {why.split(': ', 1)[-1]}" for i, why in bad[:MAX_LISTED])
    more = f"\n  ... and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
    if not options.get("skip_corrupt", False):
        raise DatasetError(
            f"{len(bad)} corrupt or unreadable image(s) in {parsed.root}:\n{listing}{more}\n"
            "fix or remove them, or pass --skip-corrupt to leave them out"
        )
    log.warning("%s: leaving out %d corrupt image(s):\n%s%s", parsed.name, len(bad), listing, more)
    drop = [i for i, _ in bad]
    parsed.table = parsed.table.drop(index=parsed.table.index[drop]).reset_index(drop=True)
    return [rel[i] for i in drop]


def synthetic_config(options: dict[str, Any]):
    """Build a SyntheticConfig from options, rejecting unknown keys by name."""
    from lf2.data.synthetic import SyntheticConfig

    names = {f.name for f in fields(SyntheticConfig)}
    unknown = set(options) - names - SYNTHETIC_GENERAL
    if unknown:
        raise ParamsError(
            f"synthetic: unknown option(s) {sorted(unknown)}; expected {sorted(names | SYNTHETIC_GENERAL)}"
        )
    cfg = SyntheticConfig(**{k: v for k, v in options.items() if k in names and v is not None})
    cfg.validate()
    return cfg


def _prepare_synthetic(out: Path, **options: Any) -> Path:
    from lf2.data.synthetic import DOMAINS, contact_sheet, render_dataset

    cfg = synthetic_config(options)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    try:
        images = staging / "images"
        specs = render_dataset(cfg, images, workers=int(options.get("workers") or 1))
        parsed = parse_market_style(images, "synthetic")
        if len(parsed.table) != len(specs):
            raise DatasetError(
                f"synthetic: rendered {len(specs)} images but the Market-1501 parser read "
                f"{len(parsed.table)} from {images}"
            )
        skipped = _validate(parsed, {**options, "skip_corrupt": False})
        meta = {
            "kind": "synthetic",
            "synthetic": asdict(cfg),
            "cameras": DOMAINS[cfg.domain].cameras,
            "corrupt_skipped": skipped,
        }
        out.mkdir(parents=True, exist_ok=True)
        final_images = out / "images"
        for stale in (out / MANIFEST_NAME, out / META_NAME):  # never pair old manifest, new images
            stale.unlink(missing_ok=True)
        if final_images.exists():
            shutil.rmtree(final_images)
        images.rename(final_images)
        parsed.root = final_images
        log.info("rendered synthetic domain %s\n%s", cfg.domain, format_counts(parsed))
        manifest = write_manifest(out, parsed.table, root=final_images,
                                  name=f"synthetic-{cfg.domain}", extra_meta=meta)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if options.get("contact_sheet"):
        contact_sheet(cfg, Path(options["contact_sheet"]))
    return manifest
