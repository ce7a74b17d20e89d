"""Dataset planning: the options of a synthetic dataset and which images it has.

The tree is written in the Market-1501 layout and naming (``SPLIT_DIRS``, ``ImageSpec``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lf2.data.synthetic.style import _rng, domain_style
from lf2.errors import ParamsError

SPLIT_DIRS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
_SPLIT_CODE = {"train": 1, "query": 2, "gallery": 3}


@dataclass(frozen=True)
class SyntheticConfig:
    domain: str = "a"
    seed: int = 0
    train_ids: int = 48
    test_ids: int = 48
    images_per_id: int = 8      # mean images per identity in train and in the gallery
    height: int = 64
    width: int = 32
    distractor_frac: float = 0.05
    twin_frac: float = 0.5      # fraction of identities that belong to a twin pair
    occlusion: float = 0.12     # probability of a partial occlusion per image

    def validate(self) -> None:
        domain_style(self.domain)
        for key in ("train_ids", "test_ids", "images_per_id"):
            if getattr(self, key) < 2:
                raise ParamsError(f"synthetic {key}={getattr(self, key)}; expected an integer >= 2")
        if self.height < 16 or self.width < 8:
            raise ParamsError(f"synthetic size {self.height}x{self.width}; expected at least 16x8")
        if self.train_ids + self.test_ids > 9999:
            raise ParamsError("synthetic train_ids + test_ids must be <= 9999 (4-digit Market ids)")


@dataclass(frozen=True)
class ImageSpec:
    split: str
    pid: int          # 0 = distractor
    cam: int          # 0-based
    index: int        # running number within the split (unique file names)
    key: int          # identity key for distractors (pid 0 has many people)

    @property
    def filename(self) -> str:
        return f"{self.pid:04d}_c{self.cam + 1}s1_{self.index:06d}_00.jpg"

    @property
    def relpath(self) -> str:
        return f"{SPLIT_DIRS[self.split]}/{self.filename}"


def _count(r: np.random.Generator, mean: int) -> int:
    return int(np.clip(round(r.normal(mean, mean / 4)), 2, 3 * mean))


def plan_dataset(cfg: SyntheticConfig) -> list[ImageSpec]:
    """Which images exist: ids, cameras and splits, deterministic in (seed, domain)."""
    cfg.validate()
    style = domain_style(cfg.domain)
    ncam = style.cameras
    r = _rng(cfg.seed, style.code, 101)
    specs: list[ImageSpec] = []
    n = {"train": 0, "query": 0, "gallery": 0}

    def add(split: str, pid: int, cam: int, key: int = 0) -> None:
        specs.append(ImageSpec(split, pid, int(cam), n[split], key))
        n[split] += 1

    for pid in range(1, cfg.train_ids + 1):
        cams = r.choice(ncam, r.integers(2, ncam + 1), replace=False)
        count = _count(r, cfg.images_per_id)
        seq = np.concatenate([cams, r.choice(cams, max(0, count - len(cams)))])[:count]
        for c in seq:
            add("train", pid, c)
    for pid in range(cfg.train_ids + 1, cfg.train_ids + cfg.test_ids + 1):
        # about one query per 4 gallery images (Market: 3,368 / 15,913), one per camera
        q = int(np.clip(round(r.normal(cfg.images_per_id / 4, 0.75)), 1, ncam - 1))
        cams = r.choice(ncam, r.integers(q + 1, ncam + 1), replace=False)
        qcams, others = cams[:q], cams[q:]
        for c in qcams:
            add("query", pid, c)
        count = _count(r, cfg.images_per_id)
        # the first gallery image is in a camera no query uses: a cross-camera match always exists
        seq = np.concatenate([others[:1], r.choice(cams, count - 1)])
        for c in seq:
            add("gallery", pid, c)
    n_distract = max(1, round(cfg.distractor_frac * n["gallery"]))
    for d in range(n_distract):
        add("gallery", 0, r.integers(ncam), key=d + 1)
    return specs
