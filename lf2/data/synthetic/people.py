"""Person appearance: palettes, random persons, twins, and the person behind each identity.

Identity is carried by global traits (height, build, skin, hair, hat) and part-local
ones (upper garment colour/pattern/sleeves, lower garment colour/pattern/cut, shoes,
bag). Half the identities come in *twins*: two people with the same global look who
differ in the upper OR the lower garment only, so part features matter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lf2.data.synthetic.plan import SyntheticConfig
from lf2.data.synthetic.style import _hsv, _rng, domain_style

SKIN = np.array([(0.96, 0.80, 0.69), (0.90, 0.72, 0.58), (0.78, 0.58, 0.43),
                 (0.62, 0.44, 0.30), (0.45, 0.31, 0.22), (0.98, 0.86, 0.76)], np.float32)
HAIR = np.array([(0.08, 0.06, 0.05), (0.25, 0.15, 0.08), (0.45, 0.30, 0.15),
                 (0.85, 0.72, 0.45), (0.6, 0.6, 0.6), (0.55, 0.2, 0.08)], np.float32)
LOWER = np.array([(0.15, 0.22, 0.45), (0.08, 0.08, 0.1), (0.62, 0.55, 0.4),
                  (0.45, 0.45, 0.48), (0.3, 0.22, 0.15), (0.85, 0.85, 0.82)], np.float32)
SHOES = np.array([(0.06, 0.06, 0.06), (0.9, 0.9, 0.9), (0.35, 0.2, 0.1), (0.5, 0.1, 0.1)],
                 np.float32)
UPPER_PATTERNS = ("plain", "hstripes", "vstripes", "checks")
LOWER_PATTERNS = ("plain", "sidestripe", "checks")
LOWER_CUTS = ("trousers", "shorts", "skirt")
BAGS = ("none", "left", "right", "backpack")


@dataclass
class Person:
    height: float          # fraction of the frame
    build: float           # width multiplier
    skin: np.ndarray
    hair: np.ndarray
    long_hair: bool
    hat: np.ndarray | None
    upper: np.ndarray
    upper2: np.ndarray
    upper_pattern: str
    upper_period: float    # fraction of figure height
    long_sleeves: bool
    lower: np.ndarray
    lower2: np.ndarray
    lower_pattern: str
    lower_cut: str
    shoes: np.ndarray
    bag: str
    bag_color: np.ndarray
    twin_of: int | None = field(default=None)


def _garment_colour(r: np.random.Generator) -> np.ndarray:
    return _hsv(r.uniform(), r.uniform(0.35, 1.0), r.uniform(0.3, 0.95))


def _contrast(r: np.random.Generator, c: np.ndarray) -> np.ndarray:
    """A second pattern colour clearly different from ``c``."""
    if r.uniform() < 0.5:
        return np.where(c.mean() > 0.5, 0.08, 0.95).astype(np.float32) * np.ones(3, np.float32)
    for _ in range(8):
        c2 = _garment_colour(r)
        if np.abs(c2 - c).sum() > 0.6:
            return c2
    return 1.0 - c


def _draw_upper(r: np.random.Generator, p: Person) -> None:
    p.upper = _garment_colour(r)
    p.upper2 = _contrast(r, p.upper)
    p.upper_pattern = UPPER_PATTERNS[r.choice(4, p=[0.4, 0.25, 0.15, 0.2])]
    p.upper_period = float(r.uniform(0.035, 0.07))
    p.long_sleeves = bool(r.uniform() < 0.6)


def _draw_lower(r: np.random.Generator, p: Person) -> None:
    p.lower = (LOWER[r.integers(len(LOWER))] * r.uniform(0.85, 1.1) if r.uniform() < 0.6
               else _garment_colour(r)).astype(np.float32)
    p.lower2 = _contrast(r, p.lower)
    p.lower_pattern = LOWER_PATTERNS[r.choice(3, p=[0.65, 0.2, 0.15])]
    p.lower_cut = LOWER_CUTS[r.choice(3, p=[0.65, 0.18, 0.17])]


def random_person(r: np.random.Generator) -> Person:
    p = Person(
        height=float(r.uniform(0.84, 0.98)), build=float(r.uniform(0.78, 1.25)),
        skin=(SKIN[r.integers(len(SKIN))] * r.uniform(0.95, 1.05)).astype(np.float32),
        hair=HAIR[r.integers(len(HAIR))], long_hair=bool(r.uniform() < 0.35),
        hat=_garment_colour(r) if r.uniform() < 0.15 else None,
        upper=None, upper2=None, upper_pattern="", upper_period=0.0, long_sleeves=True,  # type: ignore[arg-type]
        lower=None, lower2=None, lower_pattern="", lower_cut="",  # type: ignore[arg-type]
        shoes=SHOES[r.integers(len(SHOES))], bag=BAGS[r.choice(4, p=[0.5, 0.18, 0.18, 0.14])],
        bag_color=_garment_colour(r),
    )
    _draw_upper(r, p)
    _draw_lower(r, p)
    return p


def make_twin(base: Person, r: np.random.Generator, twin_of: int) -> Person:
    """Same global look and accessories as ``base``; a visibly different upper OR lower part."""
    twin = Person(**{**base.__dict__, "twin_of": twin_of})
    part = "upper" if r.uniform() < 0.5 else "lower"
    for _ in range(16):
        (_draw_upper if part == "upper" else _draw_lower)(r, twin)
        old, new = getattr(base, part), getattr(twin, part)
        if np.abs(old - new).sum() > 0.5:
            break
    return twin


def identity(cfg: SyntheticConfig, pid: int, key: int = 0) -> Person:
    """The person behind ``pid`` (``key`` picks the individual for distractors, pid 0)."""
    code = domain_style(cfg.domain).code
    if pid == 0:
        return random_person(_rng(cfg.seed, code, 202, key))
    first_test = cfg.train_ids + 1
    local = pid - 1 if pid < first_test else pid - first_test
    pair = local // 2
    paired = (pair * 0.6180339887) % 1.0 < cfg.twin_frac  # spread twin pairs evenly
    if paired and local % 2 == 1:
        return make_twin(identity(cfg, pid - 1), _rng(cfg.seed, code, 303, pid), twin_of=pid - 1)
    return random_person(_rng(cfg.seed, code, 404, pid))
