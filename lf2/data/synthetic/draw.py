"""Drawing: person-like figures painted with vectorised numpy at the target size (no assets)."""

from __future__ import annotations

import math

import numpy as np

from lf2.data.synthetic.people import Person


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
