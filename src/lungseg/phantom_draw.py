"""Drawing primitives of the phantom (`phantom.py`): a random similarity map from anatomical
units (thorax ~ [0, 1]^2) to the pixels of a film, closed and open splines through control
points drawn there, and a Gaussian blur in pixels."""

from __future__ import annotations

import cv2
import numpy as np


def spline(pts, n: int = 12, closed: bool = True) -> np.ndarray:
    """Catmull-Rom curve through K control points (K, 2) -> (M, 2) dense points."""
    p = np.asarray(pts, dtype=np.float64)
    p = np.vstack([p[-1], p, p[:2]] if closed else [2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    t = np.linspace(0, 1, n, endpoint=False)[:, None, None]
    a, b, c, d = p[:-3], p[1:-2], p[2:-1], p[3:]
    q = b + 0.5 * t * ((c - a) + (2 * a - 5 * b + 4 * c - d) * t + (3 * b - a - 3 * c + d) * t**2)
    return np.vstack([q.transpose(1, 0, 2).reshape(-1, 2)] + ([] if closed else [p[-2][None]]))


def ring(u: float, v: float, a: float, b: float, n: int = 12) -> list:
    """Control points of an ellipse centred (u, v) with semi-axes (a, b)."""
    q = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return list(zip(u + a * np.cos(q), v + b * np.sin(q), strict=True))


class Frame:
    """Random similarity map anatomical (u, v) -> pixel (x, y) of an HxW film, plus U, V grids."""

    def __init__(self, h: int, w: int, rng: np.random.Generator):
        ang = np.deg2rad(rng.uniform(-4, 4))
        self.h, self.w, self.c, self.s = h, w, np.cos(ang), np.sin(ang)
        self.k = min(h, w) * rng.uniform(0.9, 1.06)  # pixels per anatomical unit
        self.x0, self.y0 = np.array([w / 2, h / 2]) + rng.uniform((-0.03, -0.04), (0.03, 0.03)) * w
        self.ys, self.xs = np.mgrid[0:h, 0:w].astype(np.float32)
        dx, dy = (self.xs - self.x0) / self.k, (self.ys - self.y0) / self.k
        self.U = 0.5 + self.c * dx + self.s * dy
        self.V = 0.45 - self.s * dx + self.c * dy

    def px(self, pts) -> np.ndarray:
        p = np.asarray(pts, dtype=np.float64).reshape(-1, 2) - (0.5, 0.45)
        x = self.x0 + self.k * (self.c * p[:, 0] - self.s * p[:, 1])
        return np.stack([x, self.y0 + self.k * (self.s * p[:, 0] + self.c * p[:, 1])], 1)

    def fill(self, ctrl, value: float = 1.0, canvas=None) -> np.ndarray:
        """Closed spline through control points, filled (float32 HxW, or onto ``canvas``)."""
        out = np.zeros((self.h, self.w), np.float32) if canvas is None else canvas
        poly = np.round(self.px(spline(ctrl)) * 16).astype(np.int32)
        cv2.fillPoly(out, [poly], float(value), cv2.LINE_8, 4)
        return out

    def line(self, canvas, pts, width: float, value: float, n: int = 8) -> None:
        """Draw an open spline of ``width`` anatomical units onto ``canvas`` (in place)."""
        poly = np.round(self.px(spline(pts, n, closed=False) if n > 1 else pts)).astype(np.int32)
        cv2.polylines(canvas, [poly], False, float(value), max(1, round(width * self.k)))


def blur(a: np.ndarray, sigma_px: float) -> np.ndarray:
    return cv2.GaussianBlur(a, (0, 0), max(sigma_px, 0.3)) if sigma_px > 0 else a
