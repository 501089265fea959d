"""Measurements and the quality flag (lungseg.stats) on label maps whose answer is known."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import lung_masks

from lungseg.imageio import Radiograph
from lungseg.postprocess import LEFT, RIGHT
from lungseg.sides import split_sides
from lungseg.stats import measure

H, W = 200, 160


def test_measure_areas_and_ok():
    a, b = lung_masks(H, W)
    labels = split_sides(a | b)
    s = measure(labels)
    assert s["height"] == H and s["width"] == W
    assert s["right_area_px"] == int(a.sum()) and s["left_area_px"] == int(b.sum())
    assert s["right_area_mm2"] is None and s["left_area_mm2"] is None
    assert s["lung_image_ratio"] == pytest.approx((a.sum() + b.sum()) / (H * W), abs=1e-4)
    assert s["components"] == 2
    assert s["flags"] == "" and s["quality"] == "ok"


def test_measure_mm2_with_spacing():
    a, b = lung_masks(H, W)
    s = measure(split_sides(a | b), spacing=(0.2, 0.5))
    assert s["right_area_mm2"] == pytest.approx(round(int(a.sum()) * 0.1, 1))
    assert s["left_area_mm2"] == pytest.approx(round(int(b.sum()) * 0.1, 1))


def test_lung_heights_in_px_and_mm():
    """Each lung's height: the rows its label spans, in mm by the row spacing (not the column's)."""
    labels = np.zeros((H, W), np.uint8)
    labels[20:150, 10:60] = RIGHT  # 130 rows
    labels[30:120, 90:150] = LEFT  # 90 rows
    labels[140, 120] = LEFT  # a speck below: the extent reaches it (111 rows)
    s = measure(labels)
    assert (s["right_height_px"], s["left_height_px"]) == (130, 111)
    assert s["right_height_mm"] is None and s["left_height_mm"] is None
    s = measure(labels, spacing=(0.2, 0.5))
    assert (s["right_height_mm"], s["left_height_mm"]) == (26.0, 22.2)
    assert measure(np.zeros((H, W), np.uint8))["right_height_px"] == 0


def test_flag_no_lung():
    s = measure(np.zeros((H, W), np.uint8))
    assert s["flags"] == "no_lung" and s["quality"] == "check"
    assert s["right_area_px"] == 0 and s["lung_image_ratio"] == 0


def test_flag_one_lung_missing():
    a, _ = lung_masks(H, W)
    labels = a * RIGHT  # labels built by hand: only the patient's right lung
    s = measure(labels)
    assert "one_lung_missing" in s["flags"].split(";") and s["quality"] == "check"


def test_flag_lung_area_ratio_for_unequal_lungs():
    a, _ = lung_masks(H, W)
    small = np.zeros((H, W), np.uint8)
    cv2.ellipse(small, (int(W * 0.7), H // 2), (int(W * 0.1), int(H * 0.13)), 0, 0, 360, 1, -1)
    labels = a * RIGHT + small * LEFT
    assert 0.15 < small.sum() / a.sum() < 0.45
    assert "lung_area_ratio" in measure(labels)["flags"].split(";")


def test_flag_fragments():
    a, b = lung_masks(H, W)
    labels = split_sides(a | b)
    s = measure(labels, raw_components=5)
    assert s["components"] == 5 and "fragments" in s["flags"].split(";")
    # counted from the labels when not given
    frag = labels.copy()
    frag[5:10, 5:10] = RIGHT
    frag[5:10, 150:155] = LEFT
    assert "fragments" in measure(frag)["flags"].split(";")


def test_flag_lung_area():
    a, b = lung_masks(H, W)
    labels = split_sides(a | b)
    big = np.zeros((H * 4, W * 4), np.uint8)  # same lungs on a much larger film
    big[:H, :W] = labels
    s = measure(big)
    assert s["lung_image_ratio"] < 0.05 and "lung_area" in s["flags"].split(";")
    full = np.zeros((H, W), np.uint8)
    full[:, : W // 2] = RIGHT
    full[:, W // 2 :] = LEFT
    assert "lung_area" in measure(full)["flags"].split(";")


def test_flag_low_confidence_from_prob():
    a, b = lung_masks(H, W)
    labels = split_sides(a | b)
    sure = (a | b).astype(np.float32)
    s = measure(labels, prob=sure)
    assert s["uncertain_fraction"] == 0 and s["flags"] == ""
    unsure = np.where(a | b, 0.55, 0.0).astype(np.float32)
    s = measure(labels, prob=unsure)
    assert s["uncertain_fraction"] == pytest.approx(1.0)
    assert s["flags"] == "low_confidence" and s["quality"] == "check"


def test_flag_vertical_extent():
    a, _ = lung_masks(H, W)
    short = np.zeros((H, W), np.uint8)
    cv2.ellipse(short, (int(W * 0.7), H // 2), (int(W * 0.25), int(H * 0.14)), 0, 0, 360, 1, -1)
    labels = a * RIGHT + short * LEFT
    assert short.sum() >= 0.45 * a.sum()
    assert "vertical_extent" in measure(labels)["flags"].split(";")


@pytest.mark.parametrize(
    "view,part,modality,flags",
    [
        ("", "", "", []),  # a PNG: the header says nothing
        ("PA", "CHEST", "DX", []),
        ("AP", "PORT CHEST", "CR", []),
        ("", "UNKNOWN", "OT", []),  # a secondary capture of unknown part: nothing to say
        ("LL", "CHEST", "DX", ["not_frontal_view"]),
        ("RLD", "", "CR", ["not_frontal_view"]),  # decubitus
        ("AP", "ABDOMEN", "CR", ["not_chest"]),
        ("", "CHEST", "CT", ["not_radiograph"]),
        ("LATERAL", "KNEE", "MG", ["not_frontal_view", "not_chest", "not_radiograph"]),
    ],
)
def test_the_dicom_header_flags_films_the_model_was_not_made_for(view, part, modality, flags):
    """Plausible lungs on a lateral, a knee or a CT slice still ask for a look: the header's
    reasons come first, before those of the outline, and the view goes in its column."""
    a, b = lung_masks(H, W)
    film = Radiograph(np.zeros((H, W), np.float32), view=view, body_part=part, modality=modality)
    s = measure(split_sides(a | b), film=film)
    assert (s["flags"].split(";") if s["flags"] else []) == flags
    assert s["quality"] == ("check" if flags else "ok") and s["view"] == view
    one = measure(split_sides(a), film=film)["flags"].split(";")  # and the outline's after them
    assert one == [*flags, "one_lung_missing"]
