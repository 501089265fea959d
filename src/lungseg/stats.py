"""Measurements of a segmentation and the quality flag that marks implausible results, from the
labels of `postprocess.split_sides` (uint8 HxW: 0 background, 1 right lung, 2 left lung)."""

from __future__ import annotations

import numpy as np

from .postprocess import LEFT, RIGHT, bounding_box, components


def measure(
    labels: np.ndarray,
    prob: np.ndarray | None = None,
    spacing: tuple[float, float] | None = None,
    raw_components: int | None = None,
) -> dict:
    """Areas (px, and mm² when `spacing` is known), lung/image ratio, components and a quality
    flag ('ok' or 'check') with the reasons in `flags`."""
    h, w = labels.shape
    lungs = labels[bounding_box(labels)]  # counted on the lungs' box, not the whole film
    right, left = int(np.count_nonzero(lungs == RIGHT)), int(np.count_nonzero(lungs == LEFT))
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
        else len(components(labels > 0).areas),
    }
    if prob is not None:
        candidate = int(np.count_nonzero(prob > 0.2))
        uncertain = candidate - int(np.count_nonzero(prob >= 0.8))  # 0.2 < prob < 0.8
        s["uncertain_fraction"] = round(uncertain / max(1, candidate), 4)
    s["flags"] = ";".join(quality_flags(lungs, s))
    s["quality"] = "ok" if not s["flags"] else "check"
    return s


def quality_flags(labels: np.ndarray, s: dict) -> list[str]:
    """Reasons to check a result by eye (empty list: plausible). `labels`: the film's labels, or
    any crop of them holding both lungs; `s`: the measurements of `measure`."""
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
