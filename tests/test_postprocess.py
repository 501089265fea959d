"""Cleaning and right/left labelling on masks whose answer is known."""

from __future__ import annotations

import cv2
import numpy as np
from conftest import lung_masks

from lungseg.postprocess import (
    LEFT,
    RIGHT,
    clean,
    components,
    drop_unexposed,
    fill_holes,
    keep_largest,
    smooth,
)
from lungseg.sides import split_sides
from lungseg.stats import measure

H, W = 200, 160


# ---------------------------------------------------------------- cleaning


def test_clean_keeps_two_largest_and_removes_specks():
    a, b = lung_masks(H, W)
    mask = a | b
    noisy = mask.copy()
    noisy[5:8, 5:8] = 1  # speck
    noisy[190:194, 150:154] = 1  # speck
    cv2.circle(noisy, (80, 15), 8, 1, -1)  # third, mid-sized component
    assert len(components(noisy)[1]) == 5
    out = clean(noisy)
    assert out.dtype == np.uint8 and set(np.unique(out)) <= {0, 1}
    assert len(components(out).areas) == 2
    assert out[5:8, 5:8].sum() == 0 and out[190:194, 150:154].sum() == 0
    assert out[15, 80] == 0
    assert (out & mask).sum() / (out | mask).sum() > 0.97


def test_clean_drops_a_large_component_on_black_padding():
    """A film padded with black beside the body: the model may call the black band a lung and,
    being the largest component, it would win over a real lung (a real Montgomery failure)."""
    a, b = lung_masks(H, W)
    image = np.full((H, W), 0.6, np.float32)
    image[(a | b) > 0] = 0.3  # lungs: darker than the body, never black
    image[:, :14] = image[:25] = 0.0  # black padding at the image's left and top
    band = np.zeros((H, W), np.uint8)
    band[:, :20] = band[:30] = 1  # mostly on the padding, larger than either lung
    assert band.sum() > max(a.sum(), b.sum())
    mask = a | b | band
    assert (clean(mask) & band).sum() > 0  # without the film: the band is kept
    out = clean(mask, image)
    assert (out & band).sum() == 0
    assert (out & (a | b)).sum() / (out | a | b).sum() > 0.97


def test_clean_with_prob_prefers_a_confident_lung_to_a_larger_uncertain_blob():
    """A film shrunk into a noisy border: the model half-believes in a blob of background larger
    than the left lung (a val film under the portable-film corruption). Ranked by pixels the blob
    wins (without the side-by-side rule); ranked by summed probability the lung does."""
    a, b = lung_masks(H, W)
    blob = np.zeros((H, W), np.uint8)
    blob[166:200, :] = 1  # below both lungs and larger than either
    assert blob.sum() > b.sum() and not (blob & (a | b)).any()
    prob = np.where(a | b, 0.95, 0.0).astype(np.float32)
    prob[blob > 0] = 0.6
    mask = (prob >= 0.5).astype(np.uint8)
    assert not (clean(mask) & blob).any()  # by area, the blob does not pair with a lung
    assert (clean(mask, pairs=False) & blob).any()  # by area, without that rule: a lung is lost
    out = clean(mask, prob=prob)
    assert not (out & blob).any()
    assert (out & (a | b)).sum() / (out | a | b).sum() > 0.97
    weighted = keep_largest(mask, keep=1, weight=prob)
    assert (weighted & (a | b)).sum() == weighted.sum() > 0


def test_clean_keeps_the_two_lungs_side_by_side_over_a_heavier_blob_below():
    """A blob of the border below the lungs that outweighs a lung even by summed probability
    (a val film under the full portable look): the lungs lie side by side, a lung and the blob
    do not, so the lungs are kept."""
    a, b = lung_masks(H, W)
    blob = np.zeros((H, W), np.uint8)
    blob[158:200, :] = 1
    prob = np.where(a | b, 0.95, 0.0).astype(np.float32)
    prob[blob > 0] = 0.8
    assert (prob * blob).sum() > (prob * b).sum() and not (blob & (a | b)).any()
    out = clean((prob >= 0.5).astype(np.uint8), prob=prob)
    assert not (out & blob).any() and (out & (a | b)).sum() / (out | a | b).sum() > 0.97


def test_clean_keeps_one_lung_in_two_pieces_over_a_pair_with_a_speck():
    """One lung cut in two by opacity (the other lost) beside a small blob at the height of its
    upper piece: the pieces do not overlap in rows, the upper piece and the blob do, but that
    pair weighs far less than the two pieces, which stay."""
    a, _ = lung_masks(H, W)
    a[91:100] = 0  # upper piece rows 36-90, lower 100-156
    blob = np.zeros((H, W), np.uint8)
    blob[40:60, 100:111] = 1
    prob = np.where(a > 0, 0.95, 0.0).astype(np.float32)
    prob[blob > 0] = 0.6
    out = clean((prob >= 0.5).astype(np.uint8), prob=prob)
    assert not (out & blob).any()
    assert out[60:80].any() and out[120:140].any()  # both pieces


def test_drop_unexposed_keeps_lungs_and_never_empties():
    a, b = lung_masks(H, W)
    image = np.full((H, W), 0.5, np.float32)
    image[0, 0] = 0.0  # the film's black level exists, but no lung is on it
    np.testing.assert_array_equal(drop_unexposed(a | b, image), a | b)
    black = np.zeros((H, W), np.float32)  # everything dark: nothing is removed
    np.testing.assert_array_equal(drop_unexposed(a | b, black), a | b)


def test_keep_largest_drops_small_second_component():
    a, _ = lung_masks(H, W)
    m = a.copy()
    m[5:8, 150:153] = 1  # 9 px, far below 5% of the lung
    out = keep_largest(m)
    np.testing.assert_array_equal(out, a)
    assert keep_largest(np.zeros((10, 10), np.uint8)).sum() == 0


def test_fill_holes():
    a, b = lung_masks(H, W)
    holed = (a | b).copy()
    holed[90:110, 40:55] = 0  # hole inside the image-left lung
    out = fill_holes(holed)
    np.testing.assert_array_equal(out, a | b)
    ring = np.zeros((30, 30), np.uint8)
    cv2.circle(ring, (15, 15), 10, 1, 2)
    filled = fill_holes(ring)
    assert filled[15, 15] == 1 and filled[0, 0] == 0
    # a gap open to the border is not a hole
    notch = np.ones((20, 20), np.uint8)
    notch[0:10, 8:12] = 0
    np.testing.assert_array_equal(fill_holes(notch), notch)


def test_clean_fills_holes():
    a, b = lung_masks(H, W)
    holed = (a | b).copy()
    holed[95:105, 44:50] = 0
    out = clean(holed)
    assert out[100, 47] == 1


def test_smoothing_keeps_large_disc():
    disc = np.zeros((H, W), np.uint8)
    cv2.circle(disc, (80, 100), 50, 1, -1)
    out = smooth(disc, radius=3)
    assert (out != disc).sum() <= 0.01 * disc.sum()
    out = clean(disc)
    assert (out != disc).sum() <= 0.01 * disc.sum()


def test_smoothing_removes_thin_spur():
    disc = np.zeros((H, W), np.uint8)
    cv2.circle(disc, (80, 100), 40, 1, -1)
    spur = disc.copy()
    spur[98:99, 120:150] = 1  # 1 px wide line sticking out
    out = smooth(spur, radius=2)
    assert out[98, 140] == 0


# ---------------------------------------------------------------- sides


def test_split_sides_two_lungs():
    a, b = lung_masks(H, W)
    labels = split_sides(a | b)
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels == RIGHT, a > 0)  # image left = patient's right
    np.testing.assert_array_equal(labels == LEFT, b > 0)
    assert (RIGHT, LEFT) == (1, 2)


def test_split_sides_flipped():
    a, b = lung_masks(H, W)
    labels = split_sides(a | b, flipped=True)
    np.testing.assert_array_equal(labels == LEFT, a > 0)
    np.testing.assert_array_equal(labels == RIGHT, b > 0)


def test_split_sides_merged_blob_cut_at_bridge():
    a, b = lung_masks(H, W)
    merged = a | b
    merged[95:105, 60:100] = 1  # bridge between the lungs
    assert len(components(merged)[1]) == 1
    labels = split_sides(merged)
    assert set(np.unique(labels)) == {0, RIGHT, LEFT}
    assert ((labels > 0) == (merged > 0)).all()
    assert np.all(labels[a > 0] == RIGHT)
    assert np.all(labels[b > 0] == LEFT)
    r, l_ = (labels == RIGHT).sum(), (labels == LEFT).sum()
    assert abs(int(r) - int(l_)) < 0.1 * (r + l_)


def test_split_sides_empty():
    assert split_sides(np.zeros((20, 20), np.uint8)).sum() == 0


def test_split_sides_lone_lung_on_the_image_right_is_the_left_lung():
    _, b = lung_masks(H, 400)  # the image-right lung only, far from the image's left edge
    labels = split_sides(b)
    np.testing.assert_array_equal(labels == LEFT, b > 0)
    np.testing.assert_array_equal(split_sides(b, flipped=True) == RIGHT, b > 0)


def test_split_sides_single_lung_is_not_cut():
    a, _ = lung_masks(H, W)  # only the image-left (patient's right) lung
    labels = split_sides(a)
    np.testing.assert_array_equal(labels == RIGHT, a > 0)
    assert "one_lung_missing" in measure(labels)["flags"]
