"""Post-processing on the original pixel grid: clean the mask, tell right from left, measure, and
flag implausible results. `mask` is uint8 HxW {0,1}; `labels` uint8 HxW (0 background,
1 patient's right lung = image left, 2 patient's left lung = image right)."""

from __future__ import annotations

import cv2
import numpy as np

RIGHT, LEFT = 1, 2
BLACK_LEVEL, MAX_BLACK_FRACTION = 0.02, 0.5  # drop_unexposed: what counts as lying on black
MIN_RATIO = 0.05  # keep_largest: a kept component is at least this fraction of the largest


def components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8-connected components -> (label image int32, areas of components 1..n). Labelling plus a
    bincount: 3x faster than OpenCV's connectedComponentsWithStats (its stats pass dominates)."""
    n, lab = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    return lab, np.bincount(lab.ravel(), minlength=n)[1:]


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill background regions not connected to the image border."""
    h, w = mask.shape
    pad = np.zeros((h + 2, w + 2), np.uint8)
    pad[1:-1, 1:-1] = mask > 0
    flood = pad.copy()
    cv2.floodFill(flood, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 1)
    holes = flood[1:-1, 1:-1] == 0
    return ((mask > 0) | holes).astype(np.uint8)


def keep_largest(
    mask: np.ndarray,
    keep: int = 2,
    min_ratio: float = MIN_RATIO,
    weight: np.ndarray | None = None,
    comps: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Keep the `keep` largest components; drop any smaller than min_ratio x the largest. With
    `weight` (float HxW, e.g. the probability) and more than `keep` components, a component's
    size is the sum of its weights. `comps`: `components(mask)` when already computed."""
    lab, areas = comps if comps is not None else components(mask)
    return _select(lab, _largest(lab, areas, np.ones(len(areas), bool), keep, min_ratio, weight))


def _largest(lab, areas, alive, keep: int, min_ratio: float, weight) -> np.ndarray:
    """Per component (bool): among the `alive` ones, the `keep` largest (see keep_largest)."""
    sizes = areas.astype(np.float64)
    if weight is not None and alive.sum() > keep:  # (with fewer, the choice is already made)
        sizes = np.bincount(lab.ravel(), weights=weight.ravel(), minlength=len(areas) + 1)[1:]
    sizes = np.where(alive, sizes, -1.0)
    chosen = np.zeros(len(areas), bool)
    order = np.argsort(-sizes, kind="stable")[:keep]  # ties: the first in raster order
    if len(order):
        chosen[[i for i in order if sizes[i] >= min_ratio * sizes[order[0]]]] = True
    return chosen & alive


def _select(lab: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Label image + per-component bool -> uint8 {0,1} mask of the chosen components."""
    return np.concatenate([[0], chosen]).astype(np.uint8)[lab]


def smooth(mask: np.ndarray, radius: int | None = None) -> np.ndarray:
    """Light morphological opening then closing with a disc of `radius` (default ~0.4% of size)."""
    r = radius if radius is not None else max(1, round(0.004 * min(mask.shape)))
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    out = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, k)
    return cv2.morphologyEx(out, cv2.MORPH_CLOSE, k)


def drop_unexposed(
    mask: np.ndarray,
    image: np.ndarray,
    level: float = BLACK_LEVEL,
    max_fraction: float = MAX_BLACK_FRACTION,
    comps: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Remove components lying mostly (> max_fraction) on the film's black level (within `level`
    of its minimum): padding, unexposed borders, air outside the collimated field. No lung pixel
    of the train and val films is at that level (at most 0.07% of one lung), but black padding
    beside the body can look like an empty lung to the model. `image` float32 HxW [0,1], the
    mask's size. Nothing is removed if every component is dark."""
    lab, areas = comps if comps is not None else components(mask)
    return _select(lab, _exposed(lab, areas, mask, image, level, max_fraction))


def _exposed(lab, areas, mask, image, level: float, max_fraction: float) -> np.ndarray:
    """Per component (bool): not mostly on the black level (all True if every one is)."""
    dark = (image <= float(image.min()) + level) & (mask > 0)
    black = np.bincount(lab[dark], minlength=len(areas) + 1)[1:]
    keep = black <= max_fraction * areas
    return keep if keep.any() else np.ones(len(areas), bool)


def clean(
    mask: np.ndarray,
    image: np.ndarray | None = None,
    prob: np.ndarray | None = None,
    comps: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """The default post-processing: components on the film's black level dropped (when `image`
    is given), the two largest kept (by summed probability when `prob` float32 HxW is given, so
    a large but uncertain blob in a noisy border loses to a confident lung), holes filled,
    lightly smoothed. `comps`: `components(mask)` when already computed (labelled once)."""
    lab, areas = comps if comps is not None else components(mask)
    alive = np.ones(len(areas), bool)
    if image is not None:
        alive = _exposed(lab, areas, mask, image, BLACK_LEVEL, MAX_BLACK_FRACTION)
    out = fill_holes(_select(lab, _largest(lab, areas, alive, 2, MIN_RATIO, prob)))
    out = smooth(out)
    return fill_holes(keep_largest(out))


def split_sides(mask: np.ndarray, flipped: bool = False) -> np.ndarray:
    """Label each lung: components on the image left are the patient's right (unless `flipped`).
    A single component spanning the midline (both lungs merged) is cut at its narrowest column
    in its middle third; a lone lung is labelled by the image half it lies in."""
    n, lab = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if n < 2:
        return np.zeros(mask.shape, np.uint8)
    w = mask.shape[1]
    # pixels per (component, column): areas, centroids and extents in one pass over the image
    cols = np.bincount((lab * w + np.arange(w, dtype=lab.dtype)).ravel(), minlength=n * w)
    cols = cols.reshape(n, w)[1:]
    areas = cols.sum(axis=1)
    cx = cols @ np.arange(w) / areas
    order = np.argsort(areas)[::-1]
    x0, x1 = np.flatnonzero(cols[order[0]])[[0, -1]]
    lone = len(areas) < 2 or areas[order[1]] < 0.1 * areas[order[0]]
    # one component holding both lungs: it spans the midline with a good part on each side
    merged = lone and x0 < 0.4 * w and x1 > 0.6 * w
    biggest = lab == order[0] + 1 if merged else None
    if merged:  # cut at its narrowest column in the middle third
        lo, hi = x0 + (x1 - x0) // 3, x0 + 2 * (x1 - x0) // 3 + 1
        split = lo + int(np.argmin(cols[order[0], lo:hi]))
    elif lone:  # one lung (the other missing): its side is where it lies in the image
        split = w / 2
    else:
        split = (cx[order[0]] + cx[order[1]]) / 2
    side = np.where(cx < split, RIGHT, LEFT).astype(np.uint8)
    labels = np.concatenate([[0], side]).astype(np.uint8)[lab]  # each component by its centroid
    if merged:
        image_left = np.arange(w)[None, :] < split
        labels[biggest & image_left] = RIGHT
        labels[biggest & ~image_left] = LEFT
    if flipped:
        labels = np.where(labels > 0, 3 - labels, 0).astype(np.uint8)
    return labels


def measure(
    labels: np.ndarray,
    prob: np.ndarray | None = None,
    spacing: tuple[float, float] | None = None,
    raw_components: int | None = None,
) -> dict:
    """Areas (px, and mm² when `spacing` is known), lung/image ratio, components and a quality
    flag ('ok' or 'check') with the reasons in `flags`."""
    h, w = labels.shape
    right, left = int((labels == RIGHT).sum()), int((labels == LEFT).sum())
    px_mm2 = spacing[0] * spacing[1] if spacing else None
    s = {
        "height": h,
        "width": w,
        "right_area_px": right,
        "left_area_px": left,
        "right_area_mm2": round(right * px_mm2, 1) if px_mm2 else None,
        "left_area_mm2": round(left * px_mm2, 1) if px_mm2 else None,
        "lung_image_ratio": round((right + left) / (h * w), 4),
        "components": raw_components
        if raw_components is not None
        else len(components(labels > 0)[1]),
    }
    if prob is not None:
        candidate = prob > 0.2
        uncertain = candidate & (prob < 0.8)
        s["uncertain_fraction"] = round(float(uncertain.sum() / max(1, candidate.sum())), 4)
    s["flags"] = ";".join(quality_flags(labels, s))
    s["quality"] = "ok" if not s["flags"] else "check"
    return s


def quality_flags(labels: np.ndarray, s: dict) -> list[str]:
    """Reasons to check a result by eye (empty list: plausible)."""
    right, left = s["right_area_px"], s["left_area_px"]
    if right + left == 0:
        return ["no_lung"]
    flags = []
    small, large = sorted((right, left))
    if small < 0.15 * large:
        flags.append("one_lung_missing")
    elif small < 0.45 * large:
        flags.append("lung_area_ratio")
    if not 0.05 <= s["lung_image_ratio"] <= 0.65:
        flags.append("lung_area")
    if s["components"] > 2:
        flags.append("fragments")
    if s.get("uncertain_fraction", 0) > 0.15:
        flags.append("low_confidence")
    if small >= 0.15 * large:
        rows = [np.nonzero((labels == side).any(axis=1))[0] for side in (RIGHT, LEFT)]
        extent = [r[-1] - r[0] + 1 for r in rows]
        if min(extent) < 0.6 * max(extent):
            flags.append("vertical_extent")
    return flags
