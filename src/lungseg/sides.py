"""Right and left lung: which component of a cleaned lung mask is which. `labels` uint8 HxW
(0 background, RIGHT = 1 patient's right lung = image left, LEFT = 2 patient's left lung =
image right, unless the film is displayed mirrored)."""

from __future__ import annotations

import cv2
import numpy as np

from .postprocess import LEFT, RIGHT, Components, components


def split_sides(
    mask: np.ndarray, flipped: bool = False, comps: Components | None = None
) -> np.ndarray:
    """Label each lung: components on the image left are the patient's right (unless `flipped`).
    A single component spanning the midline (both lungs merged) is cut at its narrowest column
    in its middle third; a lone lung is labelled by the image half it lies in. `comps`:
    `components(mask)` when already computed."""
    out = np.zeros(mask.shape, np.uint8)
    lab, areas, box = comps if comps is not None else components(mask)
    if not len(areas):  # no lung
        return out
    w, bw, x = mask.shape[1], lab.shape[1], box[1].start  # image width; box width and left
    cols = _column_counts(lab, len(areas) + 1)  # pixels per (component, column)
    cx = cols @ np.arange(x, x + bw) / areas
    order = np.argsort(areas)[::-1]
    x0, x1 = x + np.flatnonzero(cols[order[0]])[[0, -1]]
    lone = len(areas) < 2 or areas[order[1]] < 0.1 * areas[order[0]]
    # one component holding both lungs: it spans the midline with a good part on each side
    merged = lone and x0 < 0.4 * w and x1 > 0.6 * w
    if merged:  # cut at its narrowest column in the middle third
        lo, hi = x0 + (x1 - x0) // 3, x0 + 2 * (x1 - x0) // 3 + 1
        split = lo + int(np.argmin(cols[order[0], lo - x : hi - x]))
    elif lone:  # one lung (the other missing): its side is where it lies in the image
        split = w / 2
    else:
        split = (cx[order[0]] + cx[order[1]]) / 2
    side = np.where(cx < split, RIGHT, LEFT).astype(np.uint8)
    labels = np.take(np.concatenate([[0], side]).astype(np.uint8), lab)  # by their centroids
    if merged:
        biggest = lab == order[0] + 1
        image_left = np.arange(x, x + bw)[None, :] < split
        labels[biggest & image_left] = RIGHT
        labels[biggest & ~image_left] = LEFT
    if flipped:
        labels = np.where(labels > 0, 3 - labels, 0).astype(np.uint8)
    out[box] = labels
    return out


def _column_counts(lab: np.ndarray, n: int) -> np.ndarray:
    """Label image (0..n-1) -> pixels of each component 1..n-1 in each column, (n-1) x width.
    A few components (the usual two lungs): one OpenCV column sum each; many: one bincount."""
    if n <= 8:
        return np.stack(
            [
                cv2.reduce((lab == k).view(np.uint8), 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S)[0]
                for k in range(1, n)
            ]
        )
    w = lab.shape[1]
    cols = np.bincount((lab * w + np.arange(w, dtype=lab.dtype)).ravel(), minlength=n * w)
    return cols.reshape(n, w)[1:]
