"""Confusion counts and IoU / Dice / accuracy, checked against hand-computed values; the largest
regions where a prediction and its mask disagree, on masks drawn with a known answer."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lungseg.metrics import (
    Confusion,
    boundary_distances,
    confusion,
    largest_disagreement,
    side_dice,
    summarize,
)


def test_hand_computed_confusion():
    pred = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 1]], np.uint8)
    truth = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0]], np.uint8)
    c = confusion(pred, truth)
    assert c == Confusion(tp=2, fp=2, fn=1, tn=4)
    assert c.iou == pytest.approx(2 / 5)
    assert c.dice == pytest.approx(4 / 7)
    assert c.pixel_accuracy == pytest.approx(6 / 9)
    assert c.as_dict() == pytest.approx({"iou": 0.4, "dice": 4 / 7, "pixel_accuracy": 6 / 9})


def test_nonzero_values_count_as_lung():
    pred = np.array([[255, 0], [7, 0]], np.uint8)
    truth = np.array([[True, True], [True, False]])
    c = confusion(pred, truth)
    assert c == Confusion(2, 0, 1, 1)
    assert c.iou == pytest.approx(2 / 3) and c.dice == pytest.approx(0.8)


def test_perfect_and_disjoint():
    t = np.zeros((4, 4), np.uint8)
    t[1:3, 1:3] = 1
    c = confusion(t, t)
    assert (c.iou, c.dice, c.pixel_accuracy) == (1.0, 1.0, 1.0)
    p = np.zeros_like(t)
    p[0, 0] = 1
    c = confusion(p, t)
    assert c == Confusion(0, 1, 4, 11)
    assert c.iou == 0.0 and c.dice == 0.0 and c.pixel_accuracy == pytest.approx(11 / 16)


def test_both_empty_is_perfect():
    z = np.zeros((5, 6), np.uint8)
    c = confusion(z, z)
    assert c == Confusion(0, 0, 0, 30)
    assert c.iou == 1.0 and c.dice == 1.0 and c.pixel_accuracy == 1.0
    assert Confusion(0, 0, 0, 0).pixel_accuracy == 1.0


def test_empty_prediction_nonempty_truth_is_zero():
    t = np.zeros((5, 5), np.uint8)
    t[2, 2] = 1
    c = confusion(np.zeros_like(t), t)
    assert c.iou == 0.0 and c.dice == 0.0
    assert c.pixel_accuracy == pytest.approx(24 / 25)


def test_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        confusion(np.zeros((4, 5)), np.zeros((5, 4)))


def test_area_error_is_the_measured_areas_signed_error():
    truth = np.zeros((10, 10), np.uint8)
    truth[2:6, 2:7] = 1  # 20 px
    pred = np.zeros_like(truth)
    pred[2:7, 2:7] = 1  # 25 px: 5 extra
    assert confusion(pred, truth).area_error == pytest.approx(0.25)
    assert confusion(truth, pred).area_error == pytest.approx(-0.2)
    shifted = np.roll(truth, 3, axis=1)  # as large, elsewhere: no area error, poor Dice
    assert confusion(shifted, truth).area_error == 0.0
    assert np.isnan(confusion(pred, np.zeros_like(truth)).area_error)


def test_boundary_distances_of_known_outlines():
    """Two concentric discs 5 px apart in radius: every outline pixel is about 5 px from the
    other outline; a mask against itself: 0; a mask against nothing: the image diagonal."""
    small, large = np.zeros((200, 200), np.uint8), np.zeros((200, 200), np.uint8)
    cv2.circle(small, (100, 100), 20, 1, -1)
    cv2.circle(large, (100, 100), 25, 1, -1)
    d = boundary_distances(small, large)
    assert d["hd95"] == pytest.approx(5.0, abs=0.5) and d["assd"] == pytest.approx(5.0, abs=0.5)
    assert boundary_distances(large, small) == d  # symmetric
    assert boundary_distances(large, large.astype(bool)) == {"hd95": 0.0, "assd": 0.0}
    shifted = np.roll(large, 12, axis=1)  # 12 px to the right: its far edges 12 px off
    assert boundary_distances(shifted, large)["hd95"] == pytest.approx(12.0, abs=0.5)
    empty = np.zeros_like(large)
    diagonal = np.hypot(200, 200)
    assert boundary_distances(empty, large) == {"hd95": diagonal, "assd": diagonal}
    assert boundary_distances(empty, empty) == {"hd95": 0.0, "assd": 0.0}


def _brute_distances(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """The definition, by brute force: outline pixels (a 4-neighbour outside the mask or the
    image), each one's distance to the nearest of the other outline, both ways pooled."""

    def outline(m):
        pad = np.pad(m > 0, 1)
        inner = pad[1:-1, 1:-1] & pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
        return np.argwhere((m > 0) & ~inner)

    pa, pb = outline(a), outline(b)
    d = np.hypot(*(pa[:, None, :] - pb[None, :, :]).transpose(2, 0, 1))
    pooled = np.concatenate([d.min(1), d.min(0)])
    return {"hd95": float(np.percentile(pooled, 95)), "assd": float(pooled.mean())}


def test_boundary_distances_match_the_definition_on_random_blobs():
    """Random shapes, many touching the image border, one inside another or beside it: the
    distance transform gives the brute-force figures (pooled both ways, 4-neighbour outlines,
    outside the image counted as background)."""
    rng = np.random.default_rng(3)
    for _ in range(30):
        a, b = (
            cv2.GaussianBlur(rng.random((40, 48)).astype(np.float32), (0, 0), 3) > 0.5
            for _ in range(2)
        )
        if not a.any() or not b.any():
            continue
        got, want = boundary_distances(a, b), _brute_distances(a, b)
        assert got["hd95"] == pytest.approx(want["hd95"], abs=1e-3)
        assert got["assd"] == pytest.approx(want["assd"], abs=1e-3)


def test_summarize_per_dataset_and_overall():
    rows = [
        {"dataset": "jsrt", "iou": 0.9, "dice": 0.95, "pixel_accuracy": 0.97},
        {"dataset": "jsrt", "iou": 0.7, "dice": 0.80, "pixel_accuracy": 0.93},
        {"dataset": "montgomery", "iou": 0.8, "dice": 0.85, "pixel_accuracy": 0.90},
    ]
    s = summarize(rows)
    assert set(s) == {"jsrt", "montgomery", "overall", "mean_of_datasets"}
    assert s["jsrt"]["iou"] == pytest.approx(0.8)
    assert s["jsrt"]["dice"] == pytest.approx(0.875)
    assert s["jsrt"]["pixel_accuracy"] == pytest.approx(0.95)
    assert s["jsrt"]["iou_min"] == pytest.approx(0.7)
    assert s["jsrt"]["n"] == 2
    assert s["montgomery"]["iou_min"] == pytest.approx(0.8) and s["montgomery"]["n"] == 1
    # overall: each image once
    assert s["overall"]["iou"] == pytest.approx(2.4 / 3)
    assert s["overall"]["dice"] == pytest.approx(2.6 / 3)
    assert s["overall"]["n"] == 3 and s["overall"]["iou_min"] == pytest.approx(0.7)
    # mean of the per-dataset means
    assert s["mean_of_datasets"]["iou"] == pytest.approx(0.8)
    assert s["mean_of_datasets"]["dice"] == pytest.approx((0.875 + 0.85) / 2)
    assert "iou_min" not in s["mean_of_datasets"]  # (no mean of worst films)
    assert summarize([]) == {}


def _lungs() -> np.ndarray:
    """Two 60x30 'lungs' on a 100x100 grid."""
    m = np.zeros((100, 100), np.uint8)
    m[20:80, 10:40] = 1
    m[20:80, 60:90] = 1
    return m


def test_side_dice_scores_each_lung_against_the_same_side_of_the_mask():
    """The lung on the image left is the patient's right (1): labels naming it so score 1.0 per
    lung, labels with the sides swapped 0.0 per lung though the union is perfect, and a lung the
    prediction leaves out scores 0.0 on its side only."""
    truth = _lungs()
    right = np.zeros_like(truth)
    right[:, :50] = truth[:, :50]
    labels = np.where(right > 0, 1, truth * 2).astype(np.uint8)  # image left 1, image right 2
    assert side_dice(labels, truth) == {"right_dice": 1.0, "left_dice": 1.0}
    swapped = np.where(labels > 0, 3 - labels, 0).astype(np.uint8)
    assert side_dice(swapped, truth) == {"right_dice": 0.0, "left_dice": 0.0}
    assert confusion(swapped > 0, truth).dice == 1.0
    no_left = np.where(labels == 2, 0, labels).astype(np.uint8)
    assert side_dice(no_left, truth.astype(bool)) == {"right_dice": 1.0, "left_dice": 0.0}
    half = labels.copy()
    half[20:50, 60:90] = 0  # the top half of the left lung lost
    assert side_dice(half, truth)["left_dice"] == pytest.approx(2 * 900 / (900 + 1800))


def test_summarize_averages_each_lungs_dice_when_every_row_has_it():
    rows = [
        {"dataset": "jsrt", "iou": 0.9, "dice": 0.95, "pixel_accuracy": 0.97,
         "right_dice": 0.96, "left_dice": 0.90},
        {"dataset": "jsrt", "iou": 0.7, "dice": 0.80, "pixel_accuracy": 0.93,
         "right_dice": 0.84, "left_dice": 0.70},
    ]  # fmt: skip
    s = summarize(rows)
    assert s["jsrt"]["right_dice"] == pytest.approx(0.90)
    assert s["overall"]["left_dice"] == pytest.approx(0.80)
    assert s["mean_of_datasets"]["left_dice"] == pytest.approx(0.80)
    rows[0]["area_error"], rows[1]["area_error"] = 0.10, -0.04
    s = summarize(rows)
    assert s["jsrt"]["area_error"] == pytest.approx(0.03)  # signed: a bias
    assert s["jsrt"]["area_error_abs"] == pytest.approx(0.07)  # how far off a film is
    assert s["mean_of_datasets"]["area_error_abs"] == pytest.approx(0.07)
    del rows[1]["left_dice"]  # not every row: not averaged
    assert "left_dice" not in summarize(rows)["jsrt"] and "right_dice" in summarize(rows)["jsrt"]


def test_disagreement_missed_under_the_prediction():
    truth = _lungs()
    truth[80:90, 60:90] = 1  # the mask goes on below the right-hand lung (behind the diaphragm)
    pred = _lungs()
    pred[20:80, 87:90] = 0  # a 3 px sliver along the rim: removed by the opening, no region
    d = largest_disagreement(pred, truth)
    assert d["missed"] == pytest.approx(300 / truth.sum(), rel=0.03)  # the opening rounds corners
    assert d["missed_place"] == "under"
    assert (d["extra"], d["extra_place"]) == (0.0, "")


def test_disagreement_extra_beside_the_mask():
    truth = _lungs()
    pred = _lungs()
    pred[20:80, 40:48] = 1  # the prediction runs 8 px past the medial border, full height
    pred[10:12, 10:40] = 1  # and a 2 px line above the apex: too thin to count
    d = largest_disagreement(pred, truth)
    assert d["extra"] == pytest.approx(480 / truth.sum(), rel=0.03)
    assert d["extra_place"] == "beside"
    assert d["missed"] == 0.0


def test_disagreement_missed_apex_is_beside_even_above_the_prediction():
    truth = _lungs()
    truth[10:20, 10:40] = (
        1  # the mask starts 10 rows higher: above the predicted lung, same columns
    )
    d = largest_disagreement(_lungs(), truth)
    assert d["missed"] == pytest.approx(300 / truth.sum(), rel=0.03)
    assert d["missed_place"] == "beside"


def test_disagreement_empty_mask_gives_nan_fractions():
    d = largest_disagreement(_lungs(), np.zeros((100, 100), np.uint8))
    assert np.isnan(d["extra"]) and d["extra_place"] == "beside"
    assert (d["missed"], d["missed_place"]) == (0.0, "")


def test_disagreement_picks_the_largest_region_and_checks_shapes():
    truth = _lungs()
    pred = _lungs()
    pred[20:30, 10:40] = 0  # 300 px missed at the top of one lung ...
    pred[50:80, 60:90] = 0  # ... and 900 px at the base of the other: this one is reported
    d = largest_disagreement(pred, truth)
    assert d["missed"] == pytest.approx(900 / truth.sum(), rel=0.03)
    assert d["missed_place"] == "under"  # below what is left of the predicted lung
    with pytest.raises(ValueError, match="shape"):
        largest_disagreement(pred, truth[:50])
