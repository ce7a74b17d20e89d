"""Domain styles and cameras of the synthetic benchmark, and its seeding and colour helpers.

A *domain* is a rendering style: background, illumination, colour cast, haze, noise,
blur, number of cameras and per-camera viewpoint (scale, shift, aspect) and lighting.
Domain "a" is a bright warm indoor scene with 6 cameras; domain "b" a darker, bluish,
hazy, noisy and blurred outdoor scene with 8 cameras and smaller figures. Identity cues
are of the same kind in both, so source -> target is a real but transferable shift.

``_rng`` is the one source of randomness of the package: ``numpy.random.default_rng``
seeded by a tuple of (seed, domain, purpose, identity, image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lf2.errors import ParamsError


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
