"""Segmentation metrics from one confusion count: IoU, Dice and pixel accuracy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Confusion:
    tp: int
    fp: int
    fn: int
    tn: int

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(
            self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn
        )

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

    def as_dict(self) -> dict[str, float]:
        return {"iou": self.iou, "dice": self.dice, "pixel_accuracy": self.pixel_accuracy}


def confusion(pred: np.ndarray, truth: np.ndarray) -> Confusion:
    """pred, truth: HxW arrays (nonzero = lung) of the same shape."""
    if pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {truth.shape} differ in shape")
    p, t = pred.astype(bool), truth.astype(bool)
    tp = int(np.count_nonzero(p & t))
    fp = int(np.count_nonzero(p & ~t))
    fn = int(np.count_nonzero(~p & t))
    return Confusion(tp, fp, fn, p.size - tp - fp - fn)


def summarize(rows: list[dict]) -> dict:
    """Per-image rows (with dataset, iou, dice, pixel_accuracy) -> per-dataset and overall means.
    Means are over images (each image counts once), as in the reference study."""
    out: dict = {}
    keys = ("iou", "dice", "pixel_accuracy")
    for ds in sorted({r["dataset"] for r in rows}):
        sub = [r for r in rows if r["dataset"] == ds]
        out[ds] = {k: float(np.mean([r[k] for r in sub])) for k in keys}
        out[ds]["iou_min"] = float(np.min([r["iou"] for r in sub]))
        out[ds]["n"] = len(sub)
    if rows:
        out["overall"] = {k: float(np.mean([r[k] for r in rows])) for k in keys}
        out["overall"]["n"] = len(rows)
        out["mean_of_datasets"] = {
            k: float(np.mean([out[ds][k] for ds in out if ds != "overall"])) for k in keys
        }
    return out
