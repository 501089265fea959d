"""Segmentation metrics from one confusion count: IoU, Dice and pixel accuracy, of the lungs and
of each lung, and the area's error; the distances between the outlines; and where a prediction
and its mask disagree most."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .postprocess import LEFT, RIGHT
from .sides import split_sides

# slivers along an outline are no region
OPENING = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))


@dataclass(frozen=True)
class Confusion:
    """Pixel counts of a prediction against its truth: IoU, Dice, accuracy and area error."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def iou(self) -> float:
        """|P∩G| / |P∪G|; 1.0 when both prediction and ground truth are empty."""
        union = self.tp + self.fp + self.fn
        return 1.0 if union == 0 else self.tp / union

    @property
    def dice(self) -> float:
        """2|P∩G| / (|P|+|G|); 1.0 when both are empty."""
        denom = 2 * self.tp + self.fp + self.fn
        return 1.0 if denom == 0 else 2 * self.tp / denom

    @property
    def pixel_accuracy(self) -> float:
        total = self.tp + self.fp + self.fn + self.tn
        return 1.0 if total == 0 else (self.tp + self.tn) / total

    @property
    def area_error(self) -> float:
        """(|P| - |G|) / |G|: how far the lung area measured from the prediction is off, signed
        (0.05: 5% too large); NaN when the ground truth is empty."""
        truth = self.tp + self.fn
        return (self.fp - self.fn) / truth if truth else float("nan")

    def as_dict(self) -> dict[str, float]:
        return {"iou": self.iou, "dice": self.dice, "pixel_accuracy": self.pixel_accuracy}


def _check_shapes(pred: np.ndarray, truth: np.ndarray) -> None:
    if pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {truth.shape} differ in shape")


def confusion(pred: np.ndarray, truth: np.ndarray) -> Confusion:
    """pred, truth: HxW arrays (nonzero = lung) of the same shape."""
    _check_shapes(pred, truth)
    p, t = pred.astype(bool), truth.astype(bool)
    tp = int(np.count_nonzero(p & t))
    fp = int(np.count_nonzero(p & ~t))
    fn = int(np.count_nonzero(~p & t))
    return Confusion(tp, fp, fn, p.size - tp - fp - fn)


KEYS = ("iou", "dice", "pixel_accuracy")  # every row of `summarize` has them
SIDE_KEYS = ("right_dice", "left_dice")  # each lung's Dice (`side_dice`)
DISTANCE_KEYS = ("hd95_px", "assd_px")  # `boundary_distances`, in pixels


def side_dice(labels: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Dice of the patient's right and of the left lung: `labels` uint8 HxW (0, 1 right, 2 left)
    against the lung mask `truth` HxW split into its two lungs as the prediction was
    (`sides.split_sides`: the lung on the image left is the patient's right, for an upright
    film). A side that both leave empty scores 1.0."""
    _check_shapes(labels, truth)
    sides = split_sides((truth > 0).view(np.uint8))
    return {
        k: confusion(labels == side, sides == side).dice
        for k, side in zip(SIDE_KEYS, (RIGHT, LEFT), strict=True)
    }


def boundary_distances(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Distances in pixels between the outlines of `pred` and `truth` (HxW, nonzero = lung), the
    distances of both ways pooled: `hd95` their 95th percentile (a robust Hausdorff distance, as
    MedPy's hd95; MONAI's takes the larger of the two ways' percentiles, higher on poor
    results) and `assd` their mean (average symmetric surface distance). Times the pixel
    spacing for mm. An outline is a mask's pixels with a 4-neighbour that is background or
    outside the image. Both empty: 0; one empty: the image diagonal, the largest distance
    there is."""
    _check_shapes(pred, truth)
    p, t = _outline(pred), _outline(truth)
    if not p.any() or not t.any():
        worst = 0.0 if p.any() == t.any() else float(np.hypot(*pred.shape))
        return {"hd95": worst, "assd": worst}
    d = np.concatenate([_distance_to(t)[p], _distance_to(p)[t]])
    return {"hd95": float(np.percentile(d, 95)), "assd": float(d.mean())}


def _outline(mask: np.ndarray) -> np.ndarray:
    m = (mask > 0).view(np.uint8)
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    return (m - cv2.erode(m, cross, borderType=cv2.BORDER_CONSTANT, borderValue=0)) > 0


def _distance_to(outline: np.ndarray) -> np.ndarray:
    """float32 HxW: each pixel's Euclidean distance to the nearest pixel of `outline` (bool)."""
    return cv2.distanceTransform((~outline).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def summarize(rows: list[dict]) -> dict:
    """Per-image rows (with dataset, iou, dice, pixel_accuracy; and right_dice, left_dice,
    area_error, hd95_px, assd_px when every row has them) -> per-dataset and overall means,
    plus the mean of |area_error| as area_error_abs, and the worst IoU (`iou_min`) of each
    dataset and overall. Means are over images (each image counts once), as in the reference
    study."""
    optional = (*SIDE_KEYS, "area_error", *DISTANCE_KEYS)
    keys = [*KEYS, *(k for k in optional if all(k in r for r in rows))]
    out: dict = {}
    for ds in sorted({r["dataset"] for r in rows}):
        sub = [r for r in rows if r["dataset"] == ds]
        out[ds] = {**_means(sub, keys), "iou_min": float(np.min([r["iou"] for r in sub]))}
        out[ds]["n"] = len(sub)
    if rows:
        per_dataset = list(out.values())
        worst = float(np.min([r["iou"] for r in rows]))
        out["overall"] = {**_means(rows, keys), "iou_min": worst, "n": len(rows)}
        out["mean_of_datasets"] = {
            k: float(np.mean([m[k] for m in per_dataset]))
            for k in out["overall"]
            if k not in ("n", "iou_min")
        }
    return out


def _means(rows: list[dict], keys: list[str]) -> dict[str, float]:
    out = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    if "area_error" in keys:  # signed: a bias; and how far off a film's area is
        out["area_error_abs"] = float(np.mean([abs(r["area_error"]) for r in rows]))
    return out


def largest_disagreement(pred: np.ndarray, truth: np.ndarray) -> dict:
    """The largest connected region the prediction misses and the largest it adds (after a 5 px
    opening, on the arrays' own grid), each as a fraction of the mask's area (NaN for an empty
    mask), with its place, a purely geometric test: "under" when most of it lies below the other
    outline's lowest pixel in the same columns (on chest films: lung where the heart or a
    diaphragm dome hides it, or an opaque base), else "beside" ("" when there is none).
    pred, truth: HxW arrays (nonzero = lung) of the same shape."""
    _check_shapes(pred, truth)
    p, t = pred > 0, truth > 0
    area = int(np.count_nonzero(t)) or float("nan")
    out = {}
    for name, region, other in (("missed", t & ~p, p), ("extra", p & ~t, t)):
        out[name], out[f"{name}_place"] = _largest_region(region, other, area)
    return out


def _largest_region(region: np.ndarray, other: np.ndarray, area: float) -> tuple[float, str]:
    region = cv2.morphologyEx(region.astype(np.uint8), cv2.MORPH_OPEN, OPENING)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(region, connectivity=8)
    if n < 2:
        return 0.0, ""
    i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    rows, cols = np.nonzero(lab == i)
    has = other.any(axis=0)
    bottom = np.where(has, other.shape[0] - 1 - np.argmax(other[::-1], axis=0), -1)
    under = np.mean(has[cols] & (rows > bottom[cols])) > 0.5
    return float(stats[i, cv2.CC_STAT_AREA] / area), "under" if under else "beside"
