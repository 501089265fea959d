"""Rebuild a lung the model lost: where one lung of a result is implausibly small or short
beside the other (a white-out or dense opacity read as "no lung"), the lost one is replaced by
the mean shape of that lung in the train masks, placed by the lung that was found. The lung field
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
from .stats import AREA_RATIO, EXTENT_RATIO

TEMPLATES = Path(__file__).parent / "weights" / "lung_templates.npz"
# The template grid in the frame of the lung that was found, that lung drawn on the image left
# (film mirrored for the other side): u = (x - its medial edge) / its width, v = (y - its top) /
# its height, u in [U0, U1), v in [V0, V1), GRID = (width, height) cells.
U0, U1, V0, V1 = -0.6, 1.8, -0.3, 1.3
GRID = (120, 80)
NEAR = 0.05


def lost_side(labels: np.ndarray) -> int | None:
    """RIGHT or LEFT when that lung is lost beside the other, else None (also when there is no
    lung at all: nothing to place a template by). Lost: less than `stats.AREA_RATIO` of the
    other's pixels or `stats.EXTENT_RATIO` of its height, the thresholds of the quality flags
    `lung_area_ratio` and `vertical_extent`."""
    areas = {side: int(np.count_nonzero(labels == side)) for side in (RIGHT, LEFT)}
    small, large = sorted(areas, key=areas.get)
    if areas[large] == 0:
        return None
    if areas[small] < AREA_RATIO * areas[large]:
        return small
    heights = {side: _height(labels == side) for side in (RIGHT, LEFT)}
    short, tall = sorted(heights, key=heights.get)
    return short if heights[short] < EXTENT_RATIO * heights[tall] else None


def _height(region: np.ndarray) -> int:
    rows = np.flatnonzero(region.any(axis=1))
    return int(rows[-1] - rows[0] + 1) if len(rows) else 0


def rebuild(labels: np.ndarray, image: np.ndarray | None = None) -> tuple[np.ndarray, int | None]:
    """Rebuild a lost lung (`lost_side`): its template placed by the other lung, plus what the
    model found of it within NEAR x the image width of the template (a blob of heart or
    mediastinum taken for it lies further) -> (labels, the rebuilt side or None). `labels` and
    `image` upright: patient's right on the image left, head at the top. The template keeps
    off the other lung and, when the film `image` (float32 HxW [0,1]) is given, off its black
    level (padding, unexposed film)."""
    lost = lost_side(labels)
    if lost is None:
        return labels, None
    found = RIGHT if lost == LEFT else LEFT
    mirror = found == LEFT  # the lung found on the image left: the left lung, mirrored
    view = labels[:, ::-1] if mirror else labels
    template = load_templates()["left" if lost == LEFT else "right"]
    shape = place(template, view == found)
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
    out[new] = lost
    return out, lost


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
    the right placed by the left, mirrored}, float32 occupancy on the GRID."""
    with np.load(path, allow_pickle=False) as z:
        if z["left"].shape != GRID[::-1] or not np.allclose(z["frame"], (U0, U1, V0, V1)):
            raise ValueError(
                f"{path}: made for another template grid; remake it with tools/lung_templates.py"
            )
        return {k: z[k].astype(np.float32) / 255 for k in ("left", "right")}
