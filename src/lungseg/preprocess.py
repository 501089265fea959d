"""One preprocessing path for train, evaluate and predict.

image (float32 HxW in [0,1], any size)
  -> resize keeping the aspect ratio (short side = size for "crop", long side for "letterbox")
  -> histogram normalisation ("equalize", "clahe" or "none")
  -> centre crop / zero-pad to size x size
The `Geometry` records the mapping so a prediction goes back onto the original pixel grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np

FITS = ("letterbox", "crop")
HIST_METHODS = ("equalize", "clahe", "none")


@dataclass(frozen=True)
class Geometry:
    """Original (h, w) -> resized (rh, rw) -> placed at (top, left) in a size x size canvas.
    `top`/`left` are >= 0 for padding (letterbox) and <= 0 for cropping."""

    h: int
    w: int
    rh: int
    rw: int
    top: int
    left: int
    size: int


def make_geometry(h: int, w: int, size: int, fit: str = "letterbox") -> Geometry:
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
    scale = size / (max(h, w) if fit == "letterbox" else min(h, w))
    rh, rw = max(1, round(h * scale)), max(1, round(w * scale))
    return Geometry(h, w, rh, rw, (size - rh) // 2, (size - rw) // 2, size)


def resize(array: np.ndarray, hw: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize HxW array to (h, w); area filter when shrinking, linear when enlarging."""
    h, w = hw
    if array.shape[:2] == (h, w):
        return array
    if nearest:
        interp = cv2.INTER_NEAREST
    else:
        interp = cv2.INTER_AREA if h < array.shape[0] else cv2.INTER_LINEAR
    return cv2.resize(array, (w, h), interpolation=interp)


def _overlap(g: Geometry) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """(canvas slices, resized-image slices) of the region the two share."""
    y0, x0 = max(g.top, 0), max(g.left, 0)
    sy, sx = max(-g.top, 0), max(-g.left, 0)
    hh, ww = min(g.rh - sy, g.size - y0), min(g.rw - sx, g.size - x0)
    return (slice(y0, y0 + hh), slice(x0, x0 + ww)), (slice(sy, sy + hh), slice(sx, sx + ww))


def place(array: np.ndarray, g: Geometry) -> np.ndarray:
    """Put a resized (rh, rw) array into the size x size canvas (pad with 0 or crop)."""
    out = np.zeros((g.size, g.size), dtype=array.dtype)
    canvas, image = _overlap(g)
    out[canvas] = array[image]
    return out


def unplace(canvas: np.ndarray, g: Geometry) -> np.ndarray:
    """Inverse of `place`: (size, size) -> (rh, rw); regions cropped away come back as 0."""
    out = np.zeros((g.rh, g.rw), dtype=canvas.dtype)
    on_canvas, image = _overlap(g)
    out[image] = canvas[on_canvas]
    return out


def to_original(prob: np.ndarray, g: Geometry, dsize: tuple[int, int] | None = None) -> np.ndarray:
    """Map a float32 (size, size) probability map back to the original (h, w) grid, or to
    `dsize` (width, height): the original film's extent on a grid of that size."""
    resized = unplace(prob.astype(np.float32), g)
    return cv2.resize(resized, dsize or (g.w, g.h), interpolation=cv2.INTER_LINEAR)


def resize_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Labels uint8 hxw (0 background, 1 right, 2 left) on a working grid -> the same lungs at
    `shape` HxW: the outline from the bilinear enlargement of the lung mask (pixel centres
    aligned, diagonal edges rather than steps); each pixel keeps its side on the blocky
    (nearest-neighbour) enlargement, and one that only the smooth outline adds takes the side of
    a labelled 3x3 neighbour on the small grid (LEFT where both lungs touch it)."""
    h, w = shape
    big = partial(cv2.resize, dsize=(w, h), interpolation=cv2.INTER_NEAREST)
    lungs = (labels > 0).view(np.uint8) * np.uint8(255)
    inside = cv2.resize(lungs, (w, h), interpolation=cv2.INTER_LINEAR) >= 128
    out = big(labels)
    rim = inside & (out == 0)  # inside the smooth outline, outside the blocky one
    if rim.any():
        grown = big(cv2.dilate(labels, np.ones((3, 3), np.uint8)))
        out[rim] = grown[rim]
    out[~inside] = 0
    return out


def normalize_histogram(image: np.ndarray, method: str = "equalize") -> np.ndarray:
    """float32 HxW in [0,1] -> float32 HxW in [0,1] with a normalised histogram."""
    if method not in HIST_METHODS:
        raise ValueError(f"hist must be one of {HIST_METHODS}, got {method!r}")
    if method == "none":
        return image.astype(np.float32)
    u8 = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if method == "equalize":
        out = cv2.equalizeHist(u8)
    else:
        out = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(u8)
    return out.astype(np.float32) / 255.0


def resize_for_model(image: np.ndarray, size: int, fit: str = "letterbox"):
    """Aspect-preserving resize only (first step); returns (resized image, Geometry)."""
    g = make_geometry(image.shape[0], image.shape[1], size, fit)
    return resize(image.astype(np.float32, copy=False), (g.rh, g.rw)), g


def resize_pair(image: np.ndarray, mask: np.ndarray, size: int, fit: str = "letterbox"):
    """A training pair's first step: image float32 HxW [0,1] and mask {0,1} HxW -> (resized
    image, resized mask uint8 {0,1}, Geometry), aspect kept (see resize_for_model)."""
    small, g = resize_for_model(image, size, fit)
    small_mask = (resize(mask.astype(np.float32), (g.rh, g.rw)) >= 0.5).astype(np.uint8)
    return small, small_mask, g


def finish(resized: np.ndarray, g: Geometry, hist: str = "equalize") -> np.ndarray:
    """Histogram-normalise a resized image and place it on the model canvas (float32 [0,1])."""
    return place(normalize_histogram(resized, hist), g)


def preprocess(
    image: np.ndarray, size: int = 512, fit: str = "letterbox", hist: str = "equalize"
) -> tuple[np.ndarray, Geometry]:
    """image float32 HxW in [0,1] -> (model input float32 size x size in [0,1], Geometry)."""
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {image.shape}")
    resized, g = resize_for_model(image, size, fit)
    return finish(resized, g, hist), g


def preprocess_mask(mask: np.ndarray, g: Geometry) -> np.ndarray:
    """uint8 {0,1} mask on the original grid -> uint8 {0,1} size x size, same geometry as image."""
    small = resize(mask.astype(np.float32), (g.rh, g.rw)) >= 0.5
    return place(small.astype(np.uint8), g)


def upright(array: np.ndarray, rad) -> np.ndarray:
    """A film's grid as displayed <-> upright (heart on the image right, head at the top), by
    the orientation its header gave (`rad`: a `Radiograph`, its `flipped` and `upside_down`;
    None: as displayed); its own inverse. The model is trained and run on upright films."""
    if rad is None or not (rad.flipped or rad.upside_down):
        return array
    return np.ascontiguousarray(array[:: -1 if rad.upside_down else 1, :: -1 if rad.flipped else 1])
