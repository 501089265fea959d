"""Rebuild a lung the model lost: where one lung of a result is implausibly small or short
beside the other (a white-out or dense opacity read as "no lung"), the lost one is replaced by
the mean shape of that lung in the train masks, placed by the lung that was found and moved
towards that lung's mirror image about the film's mid-line. The lung field
follows the anatomy, not the air in it (issue 6); a rebuilt lung is an estimate, so `predict`
flags it for a look (`left_lung_rebuilt`, `right_lung_rebuilt`) and outlines it dashed.

`labels` uint8 HxW (0 background, 1 patient's right lung, 2 patient's left lung), as
`sides.split_sides` gives them. The shapes ship as `weights/lung_templates.npz`, made by
`python tools/lung_templates.py --data ../shared/data` from the train split only.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from .postprocess import BLACK_LEVEL, LEFT, RIGHT
from .stats import lung_balance, lung_sizes

TEMPLATES = Path(__file__).parent / "weights" / "lung_templates.npz"
# The template grid in the frame of the lung that was found, that lung drawn on the image left
# (film mirrored for the other side): u = (x - its medial edge) / its width, v = (y - its top) /
# its height, u in [U0, U1), v in [V0, V1), GRID = (width, height) cells.
U0, U1, V0, V1 = -0.6, 1.8, -0.3, 1.3
GRID = (120, 80)
NEAR = 0.05  # the model's own pixels of the lost lung kept within this x the width of it
# With the film given, the template is moved sideways halfway (MIRROR_WEIGHT) towards the found
# lung mirrored about the film's own mid-line (`midline`), by at most MAX_SHIFT x the width
# (not when the mid-line lies outside the gap between the lungs, GAP x the width allowed)
MIRROR_WEIGHT, MAX_SHIFT, GAP = 0.5, 0.04, 0.03


def rebuild(
    labels: np.ndarray,
    image: np.ndarray | None = None,
    templates: dict | None = None,
    lost: int | None = None,
) -> tuple[np.ndarray, int | None]:
    """Rebuild a lost lung (the side `stats.lung_balance` names): its template placed by the
    other lung, plus what the model found of it within NEAR x the image width of the template
    (a blob of heart or mediastinum taken for it lies further) -> (labels, the rebuilt side or
    None). `labels` and `image` upright: patient's right on the image left, head at the top.
    The template keeps off the other lung and, when the film `image` (float32 HxW [0,1]) is
    given, off its black level (padding, unexposed film) and is moved towards the found lung's
    mirror image (`mirror_shift`). `templates`: `load_templates()` unless given; `lost`: that
    side when the caller has judged it already."""
    lost = lost or lung_balance(lung_sizes(labels))[0]
    if lost is None:
        return labels, None
    found = RIGHT if lost == LEFT else LEFT
    mirror = found == LEFT  # the lung found on the image left: the left lung, mirrored
    view = labels[:, ::-1] if mirror else labels
    t = templates or load_templates()
    shape = place(t["left" if lost == LEFT else "right"], view == found)
    if image is not None:  # moved towards the found lung's mirror image about the mid-line
        film = image[:, ::-1] if mirror else image
        offset = t.get("offset", 0.0) * (-1 if mirror else 1)  # the lungs' centre right of it
        shape = _shift(shape, mirror_shift(film, view == found, shape, float(offset)))
    if mirror:
        shape = shape[:, ::-1]
    seen = labels == lost  # what the model kept of that lung: kept where near the template
    r = max(1, round(NEAR * labels.shape[1]))
    near = cv2.dilate(
        shape.view(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2)
    )
    out = np.where(seen, 0, labels).astype(np.uint8)
    new = (shape | (seen & (near > 0))) & (out == 0)
    if image is not None:
        new &= image > float(image.min()) + BLACK_LEVEL
    if not new.any():  # nowhere to draw it (black film): left as the model left it
        return labels, None
    out[new] = lost
    return out, lost


def midline(image: np.ndarray, rows: tuple[int, int]) -> float:
    """x (pixels) of the film's left-right mirror axis between `rows` (first, last): where the
    horizontal gradients (ribs, chest wall, spine) best match their mirror image, searched over
    the middle 40% of the width; `image` float32 HxW."""
    h, w = image.shape
    n = 256
    band = image[rows[0] : rows[1] + 1].astype(np.float32)
    band = cv2.resize(band, (n, max(8, round(n * band.shape[0] / w))), interpolation=cv2.INTER_AREA)
    g = np.abs(cv2.Sobel(band, cv2.CV_32F, 1, 0, ksize=3))
    axes = range(round(0.3 * n), round(0.7 * n))
    scores = []
    for a in axes:
        half = min(a, n - a)
        left, right = g[:, a - half : a][:, ::-1].ravel(), g[:, a : a + half].ravel()
        scores.append(np.corrcoef(left, right)[0, 1] if left.std() and right.std() else -1.0)
    return axes[int(np.argmax(scores))] * w / n


def mirror_shift(image: np.ndarray, found: np.ndarray, shape: np.ndarray, offset: float) -> int:
    """Columns to move `shape` (the placed template, bool HxW, image right) by: MIRROR_WEIGHT of
    the way to the `found` lung (bool HxW, image left) mirrored about `midline` (the lungs'
    centre lies `offset` x the width to the right of it), at most MAX_SHIFT x the width; 0 when
    that mid-line lies outside the gap between the found lung and `shape` (GAP x the width
    allowed: a chest too asymmetric, or cut off, to trust it)."""
    w = image.shape[1]
    rows = np.flatnonzero(found.any(axis=1))
    axis = midline(image, (rows[0], rows[-1]))
    cols = np.flatnonzero(shape.any(axis=0))
    inner = np.flatnonzero(found.any(axis=0))[-1]  # the found lung's medial edge
    if not len(cols) or not inner - GAP * w <= axis <= cols[0] + GAP * w:
        return 0  # no template, or a mid-line outside the gap between the lungs: not trusted
    mirrored = 2 * (axis + offset * w) - _cx(found)
    move = MIRROR_WEIGHT * (mirrored - _cx(shape))
    return round(float(np.clip(move, -MAX_SHIFT * w, MAX_SHIFT * w)))


def _cx(region: np.ndarray) -> float:
    return float(np.nonzero(region)[1].mean()) if region.any() else 0.0


def _shift(region: np.ndarray, dx: int) -> np.ndarray:
    """bool HxW moved `dx` columns to the right (emptied where it came from)."""
    out = np.zeros_like(region)
    if dx >= 0:
        out[:, dx:] = region[:, : region.shape[1] - dx]
    else:
        out[:, :dx] = region[:, -dx:]
    return out


def frame(lung: np.ndarray) -> np.ndarray:
    """bool HxW lung on the image left -> the 2x3 affine map from template cells to image pixels
    (x, y): the lung's medial (right-hand) edge and top at u = v = 0, its width and height as
    units."""
    x, y, w, h = cv2.boundingRect(lung.view(np.uint8))
    sx, sy = (U1 - U0) * w / GRID[0], (V1 - V0) * h / GRID[1]
    return np.float32([[sx, 0, x + w + U0 * w], [0, sy, y + V0 * h]])


def place(template: np.ndarray, lung: np.ndarray) -> np.ndarray:
    """float32 template (GRID, occupancy in [0,1]) -> bool HxW (the size of `lung`): where it is
    at least 0.5 once placed by the lung found (bool HxW, on the image left)."""
    size = (lung.shape[1], lung.shape[0])
    return cv2.warpAffine(template, frame(lung), size, flags=cv2.INTER_LINEAR) >= 0.5


def sample(other: np.ndarray, lung: np.ndarray) -> np.ndarray:
    """The `other` lung (bool HxW) on the template grid of `lung` (bool HxW, on the image left)
    -> float32 GRID[1] x GRID[0] in [0,1]; `tools/lung_templates.py` averages these."""
    m = cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR
    return cv2.warpAffine(other.astype(np.float32), frame(lung), GRID, flags=m)


@lru_cache(maxsize=1)
def load_templates(path: Path = TEMPLATES) -> dict[str, np.ndarray]:
    """The shipped templates: {'left': the patient's left lung placed by the right one, 'right':
    the right placed by the left, mirrored}, float32 occupancy on the GRID; 'offset': how far
    right of the film's `midline` the lungs' centre lies, over the width (0 when not stored)."""
    with np.load(path, allow_pickle=False) as z:
        if z["left"].shape != GRID[::-1] or not np.allclose(z["frame"], (U0, U1, V0, V1)):
            raise ValueError(
                f"{path}: made for another template grid; remake it with tools/lung_templates.py"
            )
        t = {k: z[k].astype(np.float32) / 255 for k in ("left", "right")}
        t["offset"] = float(z["offset"]) if "offset" in z else 0.0
        return t
