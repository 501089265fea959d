"""Measurements of a segmentation and the quality flag that marks implausible results, from the
labels of `sides.split_sides` (uint8 HxW: 0 background, 1 right lung, 2 left lung)."""

from __future__ import annotations

import numpy as np

from .imageio import Radiograph
from .postprocess import LEFT, RIGHT, bounding_box, components

# DICOM ViewPosition of the films trained on; the others (LL, RL, LLD, RLO, ...) were not
FRONTAL_VIEWS = ("PA", "AP")
# BodyPartExamined naming the chest (also in Spanish/Portuguese and German: TORAX, PECHO, BRUST)
CHEST_PARTS = ("CHEST", "THORAX", "LUNG", "TORSO", "TORAX", "PECHO", "BRUST")
SIDE_NAMES = {RIGHT: "right", LEFT: "left"}
# Plausible lungs: the smaller has at least AREA_RATIO of the larger's pixels (MISSING_RATIO:
# one is missing) and EXTENT_RATIO of its height
MISSING_RATIO, AREA_RATIO, EXTENT_RATIO = 0.15, 0.45, 0.6
UNCERTAIN_MAX = 0.15  # above: `low_confidence` (`uncertain_fraction`)
NOT_RADIOGRAPHS = ("CT", "MR", "PT", "NM", "US", "MG", "IO", "PX", "OP", "OPT", "ES", "SM", "XC")


def measure(
    labels: np.ndarray,
    prob: np.ndarray | None = None,
    spacing: tuple[float, float] | None = None,
    raw_components: int | None = None,
    film: Radiograph | None = None,
    rebuilt: int | None = None,
) -> dict:
    """Areas and heights (px, and mm² / mm when `spacing` is known; a lung's height: its rows'
    extent on the film, apex to its lowest point), lung/image ratio, components and a quality
    flag ('ok' or 'check') with the reasons in `flags`: those of the outline
    (`quality_flags`) after those of the film's DICOM header (`film_flags`), whose view
    position is the `view` column. `rebuilt`: the side (RIGHT or LEFT) whose lung the model
    lost and `rebuild` replaced by a template (flag `right_lung_rebuilt` or `left_lung_rebuilt`,
    before the others)."""
    h, w = labels.shape
    lungs = labels[bounding_box(labels)]  # counted on the lungs' box, not the whole film
    sizes = lung_sizes(lungs)
    (right, right_rows), (left, left_rows) = sizes[RIGHT], sizes[LEFT]
    px_mm2 = spacing[0] * spacing[1] if spacing else None
    s = {
        "height": h,
        "width": w,
        "right_area_px": right,
        "left_area_px": left,
        "right_area_mm2": round(right * px_mm2, 1) if px_mm2 else None,
        "left_area_mm2": round(left * px_mm2, 1) if px_mm2 else None,
        "lung_image_ratio": round((right + left) / (h * w), 4),
        "right_height_px": right_rows,
        "left_height_px": left_rows,
        "right_height_mm": round(right_rows * spacing[0], 1) if spacing else None,
        "left_height_mm": round(left_rows * spacing[0], 1) if spacing else None,
        "components": raw_components
        if raw_components is not None
        else len(components(labels > 0).areas),
    }
    if prob is not None:
        s["uncertain_fraction"] = round(uncertain_fraction(prob), 4)
    s["view"] = film.view if film else ""
    flags = film_flags(film) + ([f"{SIDE_NAMES[rebuilt]}_lung_rebuilt"] if rebuilt else [])
    s["flags"] = ";".join(flags + quality_flags(s))
    s["quality"] = "ok" if not s["flags"] else "check"
    return s


def film_flags(film: Radiograph | None) -> list[str]:
    """Reasons from a DICOM header to check a result by eye, whatever the outline: a view other
    than PA or AP (`not_frontal_view`: lateral, oblique, decubitus), a body part named that is
    not the chest (`not_chest`; absent, UNKNOWN or OTHER say nothing) and a modality that is not
    a projection radiograph (`not_radiograph`: CT, MR, ultrasound, mammography, ...)."""
    if film is None:
        return []
    flags = []
    if film.view and film.view not in FRONTAL_VIEWS:
        flags.append("not_frontal_view")
    part = film.body_part
    if part and part not in ("UNKNOWN", "OTHER") and not any(c in part for c in CHEST_PARTS):
        flags.append("not_chest")
    if film.modality in NOT_RADIOGRAPHS:
        flags.append("not_radiograph")
    return flags


def uncertain_fraction(prob: np.ndarray) -> float:
    """Of the pixels with probability > 0.2 (float32 HxW in [0,1]), the fraction below 0.8."""
    candidate = int(np.count_nonzero(prob > 0.2))
    return (candidate - int(np.count_nonzero(prob >= 0.8))) / max(1, candidate)


def lung_sizes(labels: np.ndarray) -> dict[int, tuple[int, int]]:
    """{RIGHT, LEFT: (pixels, rows spanned)} of `labels` uint8 HxW (0 background, RIGHT, LEFT, as
    `sides.split_sides` gives them): each lung's area and height."""
    out = {}
    for side in (RIGHT, LEFT):
        region = labels == side
        rows = np.flatnonzero(region.any(axis=1))
        out[side] = (int(np.count_nonzero(region)), int(rows[-1] - rows[0] + 1) if len(rows) else 0)
    return out


def lung_balance(sizes: dict[int, tuple[int, int]]) -> tuple[int | None, list[str]]:
    """The lung implausibly small or short beside the other (RIGHT or LEFT; None when both are
    plausible or there is no lung) and why: `one_lung_missing` (under MISSING_RATIO of the
    other's pixels), `lung_area_ratio` (under AREA_RATIO) and `vertical_extent` (under
    EXTENT_RATIO of its height, when neither is missing). `sizes`: `lung_sizes`. The quality
    flags and `rebuild` both judge by it."""
    areas = {side: area for side, (area, _) in sizes.items()}
    heights = {side: rows for side, (_, rows) in sizes.items()}
    small, large = sorted(areas, key=areas.get)
    if areas[large] == 0:
        return None, []
    if areas[small] < MISSING_RATIO * areas[large]:
        return small, ["one_lung_missing"]
    reasons = ["lung_area_ratio"] if areas[small] < AREA_RATIO * areas[large] else []
    short, tall = sorted(heights, key=heights.get)
    if heights[short] < EXTENT_RATIO * heights[tall]:
        reasons.append("vertical_extent")
    return (small if "lung_area_ratio" in reasons else short if reasons else None), reasons


def quality_flags(s: dict) -> list[str]:
    """Reasons to check a result by eye (empty list: plausible) from the measurements of
    `measure`."""
    if s["right_area_px"] + s["left_area_px"] == 0:
        return ["no_lung"]
    sizes = {
        side: (s[f"{name}_area_px"], s[f"{name}_height_px"]) for side, name in SIDE_NAMES.items()
    }
    flags = lung_balance(sizes)[1]
    if not 0.05 <= s["lung_image_ratio"] <= 0.65:
        flags.append("lung_area")
    if s["components"] > 2:
        flags.append("fragments")
    if s.get("uncertain_fraction", 0) > UNCERTAIN_MAX:
        flags.append("low_confidence")
    return flags
