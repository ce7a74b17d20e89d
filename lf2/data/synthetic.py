"""The embedded synthetic two-domain re-ID benchmark.

Person-like figures are drawn with vectorised numpy at the target size (no assets).
Identity is carried by global traits (height, build, skin, hair, hat) and part-local
ones (upper garment colour/pattern/sleeves, lower garment colour/pattern/cut, shoes,
bag). Half the identities come in *twins*: two people with the same global look who
differ in the upper OR the lower garment only, so part features matter.

A *domain* is a rendering style: background, illumination, colour cast, haze, noise,
blur, number of cameras and per-camera viewpoint (scale, shift, aspect) and lighting.
Domain "a" is a bright warm indoor scene with 6 cameras; domain "b" a darker, bluish,
hazy, noisy and blurred outdoor scene with 8 cameras and smaller figures. Identity cues
are of the same kind in both, so source -> target is a real but transferable shift.

Every random draw comes from ``numpy.random.default_rng`` seeded by a tuple of
(seed, domain, purpose, identity, image), so the same options give byte-identical files.
The tree is written in the Market-1501 layout and naming.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from lf2.errors import ParamsError

SPLIT_DIRS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
_SPLIT_CODE = {"train": 1, "query": 2, "gallery": 3}
JPEG_QUALITY = 95


# ----------------------------------------------------------------------------- domains
@dataclass(frozen=True)
class DomainStyle:
    """How a domain looks. Camera-specific values are drawn from ranges given here."""

    code: int
    cameras: int
    outdoor: bool
    cast: tuple[float, float, float]      # per-channel gain of the whole domain
    brightness: tuple[float, float]       # per-camera global gain range
    saturation: float                     # 1 = unchanged, < 1 washes colours out
    haze: float                           # mix towards a grey veil
    noise: float                          # Gaussian noise sigma (0..1 intensity units)
    blur: float                           # Gaussian blur radius, fraction of the height
    fig_scale: tuple[float, float]        # per-camera figure height, fraction of the frame
    shift: float                          # per-camera horizontal offset range (fraction of W)
    gradient: float                       # per-camera left-right light ramp amplitude


DOMAINS: dict[str, DomainStyle] = {
    "a": DomainStyle(code=1, cameras=6, outdoor=False, cast=(1.06, 1.0, 0.9),
                     brightness=(0.9, 1.15), saturation=1.15, haze=0.0, noise=0.01, blur=0.0,
                     fig_scale=(0.9, 1.0), shift=0.06, gradient=0.12),
    "b": DomainStyle(code=2, cameras=8, outdoor=True, cast=(0.88, 0.97, 1.1),
                     brightness=(0.7, 0.9), saturation=0.75, haze=0.12, noise=0.018, blur=1 / 128,
                     fig_scale=(0.8, 0.95), shift=0.1, gradient=0.22),
}


@dataclass(frozen=True)
class Camera:
    scale: float
    dx: float          # fraction of W
    dy: float          # fraction of H
    aspect: float      # width multiplier (viewpoint)
    gain: np.ndarray   # (3,) lighting colour of this camera
    wall: np.ndarray   # (3,) background colours
    floor: np.ndarray
    horizon: float     # fraction of H where the floor starts
    ramp: float        # left-right illumination ramp


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([int(k) & 0xFFFFFFFF for k in key])


def domain_style(domain: str) -> DomainStyle:
    if domain not in DOMAINS:
        raise ParamsError(f"synthetic domain {domain!r}; expected one of {', '.join(DOMAINS)}")
    return DOMAINS[domain]


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - math.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i], np.float32)


def make_camera(style: DomainStyle, cam: int) -> Camera:
    """A camera's viewpoint and lighting: a property of the domain (not of the seed)."""
    r = _rng(7919, style.code, cam)
    if style.outdoor:
        wall = _hsv(r.uniform(0.2, 0.45), r.uniform(0.25, 0.5), r.uniform(0.3, 0.5))  # foliage
        floor = _hsv(r.uniform(0.05, 0.15), r.uniform(0.05, 0.2), r.uniform(0.35, 0.5))  # road
    else:
        wall = _hsv(r.uniform(0.05, 0.6), r.uniform(0.05, 0.2), r.uniform(0.7, 0.88))
        floor = _hsv(r.uniform(0.05, 0.12), r.uniform(0.1, 0.3), r.uniform(0.45, 0.65))
    gain = np.array(style.cast, np.float32) * r.uniform(*style.brightness)
    gain = gain * r.uniform(0.94, 1.06, 3).astype(np.float32)
    return Camera(
        scale=float(r.uniform(*style.fig_scale)), dx=float(r.uniform(-style.shift, style.shift)),
        dy=float(r.uniform(-0.02, 0.02)), aspect=float(r.uniform(0.88, 1.12)), gain=gain,
        wall=wall, floor=floor, horizon=float(r.uniform(0.55, 0.75)),
        ramp=float(r.uniform(-style.gradient, style.gradient)),
    )


# --------------------------------------------------------------------------- identities
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


# ------------------------------------------------------------------------------ config
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


# ---------------------------------------------------------------------------- drawing
class _Canvas:
    """Float RGB image with anti-aliased shape painting restricted to bounding boxes."""

    def __init__(self, img: np.ndarray):
        self.img = img
        self.h, self.w = img.shape[:2]
        self.ys = np.arange(self.h, dtype=np.float32) + 0.5
        self.xs = np.arange(self.w, dtype=np.float32) + 0.5

    def _window(self, y0: float, y1: float, x0: float, x1: float):
        ya, yb = max(int(math.floor(y0)), 0), min(int(math.ceil(y1)) + 1, self.h)
        xa, xb = max(int(math.floor(x0)), 0), min(int(math.ceil(x1)) + 1, self.w)
        if ya >= yb or xa >= xb:
            return None
        return ya, yb, xa, xb, self.ys[ya:yb, None], self.xs[None, xa:xb]

    def _blend(self, win, alpha: np.ndarray, colour: np.ndarray) -> None:
        ya, yb, xa, xb = win[:4]
        region = self.img[ya:yb, xa:xb]
        region += alpha[..., None] * (colour - region)

    def quad(self, y0, y1, cx0, cx1, hw0, hw1, colour, *, shade=0.0, pattern=None) -> None:
        """A trapezoid between rows y0..y1 whose centre and half-width vary linearly."""
        if y1 <= y0:
            return
        win = self._window(y0, y1, min(cx0 - hw0, cx1 - hw1), max(cx0 + hw0, cx1 + hw1))
        if win is None:
            return
        ys, xs = win[4], win[5]
        s = np.clip((ys - y0) / (y1 - y0), 0.0, 1.0)
        cx = cx0 + (cx1 - cx0) * s
        hw = hw0 + (hw1 - hw0) * s
        dx = xs - cx
        d = np.minimum(hw - np.abs(dx), np.minimum(ys - y0, y1 - ys))
        alpha = np.clip(d + 0.5, 0.0, 1.0)
        col = pattern(ys, xs, y0, cx) if pattern is not None else np.asarray(colour, np.float32)
        if shade:
            col = col * (1.0 - shade * (dx / hw) ** 2)[..., None]
        self._blend(win, alpha, col)

    def ellipse(self, cy, cx, ry, rx, colour, *, clip_y: float | None = None) -> None:
        win = self._window(cy - ry, min(cy + ry, clip_y or 1e9), cx - rx, cx + rx)
        if win is None:
            return
        ys, xs = win[4], win[5]
        rho = np.sqrt(((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2)
        d = (1.0 - rho) * min(rx, ry)
        if clip_y is not None:
            d = np.minimum(d, clip_y - ys)
        self._blend(win, np.clip(d + 0.5, 0.0, 1.0), np.asarray(colour, np.float32))

    def rect(self, y0, y1, x0, x1, colour) -> None:
        self.quad(y0, y1, (x0 + x1) / 2, (x0 + x1) / 2, (x1 - x0) / 2, (x1 - x0) / 2, colour)


def _pattern(kind: str, c1: np.ndarray, c2: np.ndarray, period: float):
    if kind == "plain":
        return None

    def fn(ys, xs, y0, cx):
        ry = np.floor((ys - y0) / period).astype(np.int32) % 2
        rx = np.floor((xs - cx) / period + 0.5).astype(np.int32) % 2
        if kind == "hstripes":
            m = np.broadcast_to(ry, (ys.shape[0], xs.shape[1]))
        elif kind == "vstripes":
            m = np.broadcast_to(rx, (ys.shape[0], xs.shape[1]))
        else:  # checks
            m = ry ^ rx
        return np.where(m[..., None] == 1, c2, c1)

    return fn


def draw_person(canvas: _Canvas, p: Person, *, top: float, cx: float, fig_h: float,
                aspect: float, swing: float, arm: float) -> None:
    """Paint ``p`` front-facing with its head at row ``top``; ``swing``/``arm`` set the pose."""
    u = fig_h
    wu = fig_h * aspect * p.build

    def Y(t: float) -> float:
        return top + t * u

    sh_hw, waist_hw = 0.118 * wu, 0.098 * wu
    # backpack peeks out behind the torso
    if p.bag == "backpack":
        canvas.quad(Y(0.19), Y(0.47), cx, cx, sh_hw + 0.035 * wu, sh_hw + 0.03 * wu, p.bag_color)
    if p.long_hair:
        canvas.quad(Y(0.04), Y(0.23), cx, cx, 0.06 * wu, 0.07 * wu, p.hair)
    # legs
    lower_pat = _pattern("checks" if p.lower_pattern == "checks" else "plain", p.lower, p.lower2,
                         0.05 * u)
    for side in (-1.0, 1.0):
        hip_x = cx + side * 0.05 * wu
        ankle_x = hip_x + side * swing * 0.045 * u + side * 0.01 * wu
        knee_t = 0.74
        legs_c = p.lower if p.lower_cut == "trousers" else p.skin
        canvas.quad(Y(0.57), Y(0.95), hip_x, ankle_x, 0.045 * wu, 0.032 * wu, legs_c, shade=0.25,
                    pattern=lower_pat if p.lower_cut == "trousers" else None)
        if p.lower_cut == "shorts":
            kx = hip_x + (ankle_x - hip_x) * (knee_t - 0.57) / 0.38
            canvas.quad(Y(0.56), Y(knee_t - 0.03), hip_x, kx, 0.05 * wu, 0.044 * wu, p.lower,
                        shade=0.2, pattern=lower_pat)
        if p.lower_pattern == "sidestripe" and p.lower_cut == "trousers":
            off = side * 0.032 * wu
            canvas.quad(Y(0.6), Y(0.93), hip_x + off, ankle_x + off * 0.7, 0.009 * wu, 0.007 * wu,
                        p.lower2)
        canvas.quad(Y(0.935), Y(0.995), ankle_x + side * 0.01 * wu, ankle_x + side * 0.018 * wu,
                    0.036 * wu, 0.04 * wu, p.shoes)
    # hips / skirt
    if p.lower_cut == "skirt":
        canvas.quad(Y(0.5), Y(0.76), cx, cx, waist_hw, 0.15 * wu, p.lower, shade=0.25,
                    pattern=lower_pat)
    else:
        canvas.quad(Y(0.5), Y(0.62), cx, cx, waist_hw, 0.1 * wu, p.lower, shade=0.25,
                    pattern=lower_pat)
    # arms (behind the torso edge)
    for side in (-1.0, 1.0):
        sx = cx + side * (sh_hw - 0.02 * wu)
        hx = cx + side * (sh_hw + 0.03 * wu) - side * arm * 0.02 * u
        hand_t = 0.53
        elbow_t = 0.47 if p.long_sleeves else 0.31
        ex = sx + (hx - sx) * (elbow_t - 0.18) / (hand_t - 0.18)
        canvas.quad(Y(0.18), Y(hand_t), sx, hx, 0.03 * wu, 0.022 * wu, p.skin)
        canvas.quad(Y(0.17), Y(elbow_t), sx, ex, 0.034 * wu, 0.028 * wu, p.upper, shade=0.3)
    # torso
    canvas.quad(Y(0.165), Y(0.53), cx, cx, sh_hw, waist_hw, p.upper, shade=0.35,
                pattern=_pattern(p.upper_pattern, p.upper, p.upper2, p.upper_period * u))
    if p.bag == "backpack":
        for side in (-1.0, 1.0):
            canvas.quad(Y(0.17), Y(0.4), cx + side * 0.06 * wu, cx + side * 0.065 * wu,
                        0.014 * wu, 0.014 * wu, p.bag_color * 0.7)
    elif p.bag in ("left", "right"):
        side = -1.0 if p.bag == "left" else 1.0
        canvas.quad(Y(0.17), Y(0.47), cx - side * 0.07 * wu, cx + side * (sh_hw + 0.02 * wu),
                    0.012 * wu, 0.012 * wu, p.bag_color * 0.75)
        bx = cx + side * (sh_hw + 0.05 * wu)
        canvas.quad(Y(0.44), Y(0.62), bx, bx, 0.06 * wu, 0.065 * wu, p.bag_color, shade=0.2)
    # neck, head, hair, hat
    canvas.quad(Y(0.12), Y(0.175), cx, cx, 0.025 * wu, 0.027 * wu, p.skin * 0.9)
    canvas.ellipse(Y(0.08), cx, 0.064 * u, 0.05 * wu * 1.05, p.skin)
    canvas.ellipse(Y(0.074), cx, 0.064 * u, 0.054 * wu * 1.05, p.hair, clip_y=Y(0.05))
    if p.hat is not None:
        canvas.quad(Y(0.005), Y(0.05), cx, cx, 0.05 * wu, 0.058 * wu, p.hat)
        canvas.quad(Y(0.04), Y(0.06), cx, cx, 0.075 * wu, 0.075 * wu, p.hat * 0.85)


# --------------------------------------------------------------------------- renderer
class Renderer:
    """Renders images of one configuration; caches per-camera backgrounds and lighting."""

    def __init__(self, cfg: SyntheticConfig):
        cfg.validate()
        self.cfg = cfg
        self.style = domain_style(cfg.domain)
        self.cameras = [make_camera(self.style, c) for c in range(self.style.cameras)]
        self._bg: dict[int, np.ndarray] = {}
        self._light: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._noise: np.ndarray | None = None
        self._people: dict[tuple[int, int], Person] = {}

    def person(self, pid: int, key: int) -> Person:
        k = (pid, key if pid == 0 else 0)
        if k not in self._people:
            self._people[k] = identity(self.cfg, pid, key)
        return self._people[k]

    def background(self, cam: int) -> np.ndarray:
        if cam not in self._bg:
            self._bg[cam] = self._make_background(cam)
        return self._bg[cam]

    def _make_background(self, cam: int) -> np.ndarray:
        h, w = self.cfg.height, self.cfg.width
        c = self.cameras[cam]
        r = _rng(7919, self.style.code, cam, 1)
        yy = (np.arange(h, dtype=np.float32) + 0.5)[:, None] / h
        xx = (np.arange(w, dtype=np.float32) + 0.5)[None, :] / w
        floor = (yy >= c.horizon).astype(np.float32)[..., None]
        bg = c.wall * (1 - floor) + c.floor * floor
        if self.style.outdoor:  # low-frequency foliage/road texture
            coarse = r.uniform(0.7, 1.3, (6, 3, 3)).astype(np.float32)
            tex = np.asarray(Image.fromarray(((coarse / 1.5) * 255).astype(np.uint8)).resize(
                (w, h), Image.Resampling.BICUBIC), np.float32) / 255 * 1.5
            bg = bg * tex
            bg = bg * (1 - 0.15 * floor * (xx > 0.5)[..., None])  # kerb
        else:  # wall panels and floor tiles
            panel = (np.floor(xx * 4 + c.horizon * 3) % 2).astype(np.float32)[..., None]
            bg = bg * (1 - 0.06 * panel * (1 - floor))
            tiles = ((np.floor((yy - c.horizon) * 12) % 2) * floor[..., 0])[..., None]
            bg = bg * (1 - 0.08 * tiles)
        return np.ascontiguousarray(bg, np.float32)

    def lighting(self, cam: int) -> tuple[np.ndarray, np.ndarray]:
        """(colour matrix, left-right ramp) of a camera: gain, cast, saturation and haze
        folded into one 3x3 matrix so an image costs one matmul."""
        if cam not in self._light:
            style, c, w = self.style, self.cameras[cam], self.cfg.width
            s = style.saturation
            sat = s * np.eye(3, dtype=np.float32) + (1 - s) / 3 * np.ones((3, 3), np.float32)
            matrix = (np.diag(c.gain) @ sat * (1 - style.haze)).astype(np.float32)
            xx = (np.arange(w, dtype=np.float32) + 0.5) / w - 0.5
            ramp = (1 + 2 * c.ramp * xx).astype(np.float32)[None, :, None]
            self._light[cam] = (matrix, ramp)
        return self._light[cam]

    def noise_bank(self) -> np.ndarray:
        """Sensor noise (int16, 0..255 units) of this domain; images take random windows."""
        if self._noise is None:
            h, w = self.cfg.height, self.cfg.width
            r = _rng(7919, self.style.code, 99, h, w)
            bank = r.standard_normal((2 * h, 2 * w, 3), dtype=np.float32) * (self.style.noise * 255)
            self._noise = np.round(bank).astype(np.int16)
        return self._noise

    def render(self, spec: ImageSpec) -> np.ndarray:
        """One image as uint8 (H, W, 3)."""
        cfg, style, cam = self.cfg, self.style, self.cameras[spec.cam]
        h, w = cfg.height, cfg.width
        r = _rng(cfg.seed, style.code, 505, _SPLIT_CODE[spec.split], spec.pid, spec.index)
        p = self.person(spec.pid, spec.key)
        img = self.background(spec.cam) * np.float32(r.uniform(0.93, 1.07))
        canvas = _Canvas(img)
        fig_h = h * p.height * cam.scale * r.uniform(0.94, 1.04)
        top = (h - fig_h) * (0.5 + cam.dy * 8 + r.uniform(-0.2, 0.2)) + r.normal(0, 0.01) * h
        cx = w * (0.5 + cam.dx + r.normal(0, 0.035))
        aspect = cam.aspect * r.uniform(0.95, 1.05) * (2 * w / h)  # frames are usually 2:1
        draw_person(canvas, p, top=top, cx=cx, fig_h=fig_h, aspect=aspect,
                    swing=float(r.uniform(-1, 1)), arm=float(r.uniform(-1, 1)))
        if r.uniform() < cfg.occlusion:
            self._occlude(canvas, r)
        matrix, ramp = self.lighting(spec.cam)
        img = (canvas.img @ matrix) * ramp
        if style.haze:
            img += np.float32(style.haze * 0.55)
        pixels = (np.clip(img, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
        if style.blur:
            blurred = Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(style.blur * h))
            pixels = np.asarray(blurred, dtype=np.uint8)
        if style.noise:
            oy, ox = int(r.integers(h + 1)), int(r.integers(w + 1))
            noisy = pixels.astype(np.int16) + self.noise_bank()[oy : oy + h, ox : ox + w]
            pixels = np.clip(noisy, 0, 255).astype(np.uint8)
        return pixels

    def _occlude(self, canvas: _Canvas, r: np.random.Generator) -> None:
        h, w = canvas.h, canvas.w
        colour = _hsv(r.uniform(), r.uniform(0, 0.5), r.uniform(0.2, 0.8))
        if r.uniform() < 0.5:  # something in front of the legs
            y0 = h * r.uniform(0.65, 0.8)
            canvas.rect(y0, h + 1, -1, w + 1, colour)
        else:  # a pole or passer-by at one side
            half = w * r.uniform(0.12, 0.25)
            x = w * (0.15 if r.uniform() < 0.5 else 0.85) + r.normal(0, 0.05 * w)
            canvas.rect(-1, h + 1, x - half, x + half, colour)


def encode_jpeg(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0,
                                 optimize=False)
    return buf.getvalue()


# ---------------------------------------------------------------------- dataset writer
def _render_chunk(args: tuple[SyntheticConfig, Sequence[ImageSpec], str]) -> int:
    cfg, specs, out_dir = args
    renderer = Renderer(cfg)
    for spec in specs:
        with open(os.path.join(out_dir, spec.relpath), "wb") as fh:
            fh.write(encode_jpeg(renderer.render(spec)))
    return len(specs)


def render_dataset(cfg: SyntheticConfig, images_dir: Path, *, workers: int = 1) -> list[ImageSpec]:
    """Write every planned image under ``images_dir`` in the Market-1501 layout.

    Files depend only on ``cfg`` (not on ``workers``): each image has its own seed.
    """
    specs = plan_dataset(cfg)
    images_dir = Path(images_dir)
    for sub in SPLIT_DIRS.values():
        (images_dir / sub).mkdir(parents=True, exist_ok=True)
    if workers <= 1 or len(specs) < 512:
        _render_chunk((cfg, specs, str(images_dir)))
    else:
        from concurrent.futures import ProcessPoolExecutor

        chunks = [specs[i : i + 256] for i in range(0, len(specs), 256)]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(_render_chunk, [(cfg, c, str(images_dir)) for c in chunks]))
    return specs


def contact_sheet(cfg: SyntheticConfig, path: Path, *, rows: int = 8, cols: int = 8,
                  zoom: int | None = None) -> Path:
    """A PNG grid: ``rows`` train identities (twins adjacent) x ``cols`` of their images."""
    from lf2.io import atomic_path

    renderer = Renderer(cfg)
    specs = [s for s in plan_dataset(cfg) if s.split == "train"]
    by_pid: dict[int, list[ImageSpec]] = {}
    for s in specs:
        by_pid.setdefault(s.pid, []).append(s)
    pids = sorted(by_pid)[:rows]
    h, w = cfg.height, cfg.width
    zoom = zoom or max(1, 128 // h)
    gap = 2
    sheet = np.full(((h + gap) * len(pids), (w + gap) * cols, 3), 255, np.uint8)
    for i, pid in enumerate(pids):
        for j, spec in enumerate(by_pid[pid][:cols]):
            sheet[i * (h + gap) : i * (h + gap) + h, j * (w + gap) : j * (w + gap) + w] = renderer.render(spec)
    im = Image.fromarray(sheet)
    if zoom > 1:
        im = im.resize((im.width * zoom, im.height * zoom), Image.Resampling.NEAREST)
    with atomic_path(path, suffix=".png") as tmp:
        im.save(tmp, format="PNG")
    return Path(path)
