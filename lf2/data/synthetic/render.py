"""The renderer: one image of a planned spec in its domain's camera style (uint8 pixels)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from lf2.data.synthetic.draw import _Canvas, draw_person
from lf2.data.synthetic.people import Person, identity
from lf2.data.synthetic.plan import _SPLIT_CODE, ImageSpec, SyntheticConfig
from lf2.data.synthetic.style import _hsv, _rng, domain_style, make_camera


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
