"""Post-processing on the original pixel grid: clean the mask and tell right from left (the
measurements and quality flags of the result are in `stats`). `mask` is uint8 HxW {0,1};
`labels` uint8 HxW (0 background, 1 patient's right lung = image left, 2 patient's left lung =
image right)."""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

RIGHT, LEFT = 1, 2
BLACK_LEVEL, MAX_BLACK_FRACTION = 0.02, 0.5  # drop_unexposed: what counts as lying on black
MIN_RATIO = 0.05  # keep_largest: a kept component is at least this fraction of the largest


class Components(NamedTuple):
    """8-connected components of a mask, labelled on its foreground's bounding box `box` (rows,
    cols slices): `labels` int32 (0 background, 1..n), `areas` of components 1..n."""

    labels: np.ndarray
    areas: np.ndarray
    box: tuple[slice, slice]


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, slice]:
    """(rows, cols) slices of the foreground's bounding box grown by `margin` px, clipped to the
    image (empty slices for an empty mask). Labelling, filling and smoothing run on it instead
    of the whole film (the lungs' box is about two thirds of a film, often less)."""
    return _grown(cv2.boundingRect(mask.astype(np.uint8, copy=False)), margin, mask.shape)


def _grown(rect, margin: int, shape: tuple[int, int], origin=(0, 0)) -> tuple[slice, slice]:
    """OpenCV rectangle (x, y, w, h) of a region whose (row, col) `origin` lies in an image of
    `shape` -> that image's (rows, cols) slices around it, grown by `margin`, clipped."""
    x, y, w, h = rect
    if not w:
        return slice(0, 0), slice(0, 0)
    # starts on even rows and columns: OpenCV labels 2x2 blocks, so a box labels its components
    # in the same order as the whole image would (which decides ties in keep_largest)
    return tuple(
        slice(max(0, start + o - margin) & ~1, min(n, start + o + size + margin))
        for start, size, n, o in ((y, h, shape[0], origin[0]), (x, w, shape[1], origin[1]))
    )


def components(mask: np.ndarray) -> Components:
    """8-connected components -> Components. Labelling plus a count per label: 3x faster than
    OpenCV's connectedComponentsWithStats (its stats pass dominates)."""
    box = bounding_box(mask)
    if box[1].stop == 0:  # empty mask (OpenCV cannot label a 0x0 image)
        return Components(np.zeros((0, 0), np.int32), np.zeros(0, np.int64), box)
    n, lab = cv2.connectedComponents(mask[box].astype(np.uint8, copy=False), connectivity=8)
    return Components(lab, _areas(lab, n), box)


def _areas(lab: np.ndarray, n: int) -> np.ndarray:
    """Pixels of each label 1..n-1 of an int32 label image. A few (the usual two lungs): one
    OpenCV count each, 4x faster than a bincount (which first copies the labels to int64)."""
    if n <= 8:
        counts = [cv2.countNonZero((lab == k).view(np.uint8)) for k in range(1, n)]
        return np.array(counts, np.int64)
    return np.bincount(lab.ravel(), minlength=n)[1:]


def _check_shapes(mask: np.ndarray, **arrays: np.ndarray | None) -> None:
    for name, a in arrays.items():
        if a is not None and a.shape != mask.shape:
            raise ValueError(f"{name} is {a.shape}, the mask {mask.shape}: they must match")


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill background regions not connected to the image border."""
    return ((mask > 0) | _holes(mask)).view(np.uint8)


def _holes(mask: np.ndarray) -> np.ndarray:
    """bool HxW: the background regions of `mask` not connected to the image border."""
    h, w = mask.shape
    flood = np.zeros((h + 2, w + 2), np.uint8)
    flood[1:-1, 1:-1] = mask > 0
    cv2.floodFill(flood, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 1)
    return flood[1:-1, 1:-1] == 0


def keep_largest(
    mask: np.ndarray,
    keep: int = 2,
    min_ratio: float = MIN_RATIO,
    weight: np.ndarray | None = None,
) -> np.ndarray:
    """Keep the `keep` largest components; drop any smaller than min_ratio x the largest. With
    `weight` (float HxW, e.g. the probability) and more than `keep` components, a component's
    size is the sum of its weights."""
    _check_shapes(mask, weight=weight)
    c = components(mask)
    alive = np.ones(len(c.areas), bool)
    sizes = _sizes(c, alive, keep, None if weight is None else weight[c.box])
    return _keep(mask, c, _largest(sizes, alive, keep, min_ratio))


def _keep(mask: np.ndarray, c: Components, chosen: np.ndarray) -> np.ndarray:
    """`mask` (labelled as `c`) with only the `chosen` components, uint8 {0,1}."""
    if chosen.all():  # (the usual case) nothing to drop
        return (mask.astype(np.uint8, copy=False) != 0).view(np.uint8)  # as labelled
    return _select(c, chosen, mask.shape)


def _sizes(c: Components, alive: np.ndarray, keep: int, weight) -> np.ndarray:
    """float64 per component: its pixels, or its summed `weight` (float on `c.box`) when more
    than `keep` are `alive` (with fewer, the choice is already made)."""
    if weight is None or alive.sum() <= keep:
        return c.areas.astype(np.float64)
    return np.bincount(c.labels.ravel(), weights=weight.ravel(), minlength=len(c.areas) + 1)[1:]


def _largest(sizes: np.ndarray, alive: np.ndarray, keep: int, min_ratio: float) -> np.ndarray:
    """Per component (bool): among the `alive` ones, the `keep` largest by `sizes` (see
    keep_largest)."""
    sizes = np.where(alive, sizes, -1.0)
    chosen = np.zeros(len(sizes), bool)
    order = np.argsort(-sizes, kind="stable")[:keep]  # ties: the first labelled by OpenCV
    if len(order):
        chosen[[i for i in order if sizes[i] >= min_ratio * sizes[order[0]]]] = True
    return chosen & alive


PAIR_CANDIDATES, PAIR_OVERLAP, PAIR_WEIGHT = 4, 0.5, 0.75  # _side_by_side


def _side_by_side(c: Components, alive: np.ndarray, sizes, chosen: np.ndarray) -> np.ndarray:
    """`chosen` (the two largest by `sizes`, `_sizes`) unless their row spans overlap by less than
    PAIR_OVERLAP of the shorter: then the heaviest pair of the PAIR_CANDIDATES largest that do,
    if it weighs PAIR_WEIGHT as much (a lung and a blob of the border below it do not pair; one
    lung in two pieces, the other lost, stays as it was)."""
    top = [i for i in np.argsort(-np.where(alive, sizes, -1.0), kind="stable") if alive[i]]
    spans = {i: np.flatnonzero((c.labels == i + 1).any(1))[[0, -1]] for i in top[:PAIR_CANDIDATES]}
    pairs = [
        (sizes[a] + sizes[b], a, b)
        for a in spans
        for b in spans
        if a < b
        and min(spans[a][1], spans[b][1]) - max(spans[a][0], spans[b][0]) + 1
        >= PAIR_OVERLAP * (1 + min(np.diff(spans[a])[0], np.diff(spans[b])[0]))
        and min(sizes[a], sizes[b]) >= MIN_RATIO * max(sizes[a], sizes[b])
    ]
    best = max(pairs, default=None)
    if best is None or best[0] < PAIR_WEIGHT * sizes[chosen].sum():
        return chosen
    out = np.zeros(len(c.areas), bool)
    out[[best[1], best[2]]] = True
    return out


def _select(c: Components, chosen: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Components + per-component bool -> uint8 {0,1} HxW (`shape`) mask of the chosen ones."""
    out = np.zeros(shape, np.uint8)
    out[c.box] = _picked(c, chosen)
    return out


def _picked(c: Components, chosen: np.ndarray) -> np.ndarray:
    """uint8 {0,1} on `c.box`: the pixels of the chosen components. All or at most two of them
    (the lungs): by comparisons, 3-5x faster than the table lookup that serves more."""
    if chosen.all():
        return (c.labels != 0).view(np.uint8)
    picked = np.flatnonzero(chosen) + 1
    if len(picked) > 2:
        return np.take(np.concatenate([[0], chosen]).astype(np.uint8), c.labels)
    out = np.zeros(c.labels.shape, bool)
    for k in picked:
        out |= c.labels == k
    return out.view(np.uint8)


def smooth_radius(shape: tuple[int, int]) -> int:
    """The default smoothing radius for an image of `shape`: about 0.4% of its short side."""
    return max(1, round(0.004 * min(shape)))


def smooth(mask: np.ndarray, radius: int | None = None) -> np.ndarray:
    """Light morphological opening then closing with a disc of `radius` (default
    `smooth_radius(mask.shape)`)."""
    r = radius if radius is not None else smooth_radius(mask.shape)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    out = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, k)
    return cv2.morphologyEx(out, cv2.MORPH_CLOSE, k)


def drop_unexposed(
    mask: np.ndarray,
    image: np.ndarray,
    level: float = BLACK_LEVEL,
    max_fraction: float = MAX_BLACK_FRACTION,
) -> np.ndarray:
    """Remove components lying mostly (> max_fraction) on the film's black level (within `level`
    of its minimum): padding, unexposed borders, air outside the collimated field. No lung pixel
    of the train and val films is at that level (at most 0.07% of one lung), but black padding
    beside the body can look like an empty lung to the model. `image` float32 HxW [0,1], the
    mask's size. Nothing is removed if every component is dark."""
    _check_shapes(mask, image=image)
    c = components(mask)
    return _select(c, _exposed(c, image, level, max_fraction), mask.shape)


def _exposed(c: Components, image: np.ndarray, level: float, max_fraction: float) -> np.ndarray:
    """Per component (bool): not mostly on the black level (all True if every one is)."""
    dark = (image[c.box] <= float(image.min()) + level) & (c.labels > 0)
    black = np.bincount(c.labels[dark], minlength=len(c.areas) + 1)[1:]
    keep = black <= max_fraction * c.areas
    return keep if keep.any() else np.ones(len(c.areas), bool)


def clean(
    mask: np.ndarray,
    image: np.ndarray | None = None,
    prob: np.ndarray | None = None,
    comps: Components | None = None,
    pairs: bool = True,
) -> np.ndarray:
    """The default post-processing: components on the film's black level dropped (when `image`
    is given), the two largest kept (by summed probability when `prob` float32 HxW is given, so
    a large but uncertain blob in a noisy border loses to a confident lung; two that lie side
    by side rather than one above the other, `_side_by_side`, unless `pairs` is False), holes
    filled, lightly smoothed. `comps`: `components(mask)` when already computed (labelled once).
    Filling and smoothing run on the lungs' box grown by 2 x the smoothing radius + 1: exact,
    as nothing they do can reach the box's edge. `image` and `prob` have the mask's shape."""
    return clean_labelled(mask, image, prob, comps, pairs)[0]


def clean_labelled(
    mask: np.ndarray,
    image: np.ndarray | None = None,
    prob: np.ndarray | None = None,
    comps: Components | None = None,
    pairs: bool = True,
) -> tuple[np.ndarray, Components]:
    """`clean` -> (cleaned mask, its Components), so that `split_sides` need not label it again
    (the final labelling of `clean` is reused when filling its holes changed nothing)."""
    _check_shapes(mask, image=image, prob=prob)
    c = comps if comps is not None else components(mask)
    alive = np.ones(len(c.areas), bool)
    if image is not None:
        alive = _exposed(c, image, BLACK_LEVEL, MAX_BLACK_FRACTION)
    weight = None if prob is None else prob[c.box]
    sizes = _sizes(c, alive, 2, weight)  # by summed probability, computed once for both
    chosen = _largest(sizes, alive, 2, MIN_RATIO)
    if pairs and alive.sum() > 2 and chosen.sum() == 2:
        chosen = _side_by_side(c, alive, sizes, chosen)
    lungs = _picked(c, chosen)  # on c.box
    radius = smooth_radius(mask.shape)
    x, y, w, h = cv2.boundingRect(lungs)
    y0, x0 = c.box[0].start + y, c.box[1].start + x  # the chosen lungs' top left in `mask`
    box = _grown((x, y, w, h), 2 * radius + 1, mask.shape, (c.box[0].start, c.box[1].start))
    out = np.zeros(mask.shape, np.uint8)
    if box[1].stop == 0:  # nothing chosen
        return out, components(out)
    region = np.zeros((box[0].stop - box[0].start, box[1].stop - box[1].start), np.uint8)
    top, left = y0 - box[0].start, x0 - box[1].start
    region[top : top + h, left : left + w] = lungs[y : y + h, x : x + w]
    smoothed = smooth(fill_holes(region), radius)
    last = components(smoothed)  # keep_largest, labelled here to be reused
    kept = _largest(last.areas.astype(np.float64), np.ones(len(last.areas), bool), 2, MIN_RATIO)
    lungs = _keep(smoothed, last, kept)
    holes = _holes(lungs)
    out[box] = lungs | holes
    if not len(kept) or not kept.all() or holes.any():
        return out, components(out)
    rows, cols = (
        slice(b.start + o.start, b.start + o.stop) for b, o in zip(box, last.box, strict=True)
    )
    return out, Components(last.labels, last.areas, (rows, cols))  # the box components() gives
