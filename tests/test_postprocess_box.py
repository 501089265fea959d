"""Post-processing works on the lungs' bounding box, not the whole film (for speed): compared pixel
for pixel with the same steps done on the whole image by OpenCV directly. Large films are
post-processed on a smaller grid and their lungs mapped back (`resize_labels`)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lungseg.postprocess import (
    MIN_RATIO,
    bounding_box,
    clean,
    clean_labelled,
    components,
    fill_holes,
    smooth,
    smooth_radius,
)
from lungseg.preprocess import resize_labels
from lungseg.sides import _column_counts, split_sides

# These tests compare the box-wise post-processing with the whole-image reference below, which
# keeps the two largest components (`pairs=False`); the side-by-side choice among more than two
# (`postprocess._side_by_side`) has its own tests in test_postprocess.py.


def _keep_largest_whole(mask: np.ndarray, keep: int = 2) -> np.ndarray:
    """keep_largest as it was before the bounding box: whole-image labels, ties to the lower
    label, components under MIN_RATIO x the largest dropped."""
    n, lab = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    areas = np.bincount(lab.ravel(), minlength=n)[1:].astype(float)
    order = np.argsort(-areas, kind="stable")[:keep]
    chosen = [i + 1 for i in order if areas[i] >= MIN_RATIO * areas[order[0]]]
    return np.isin(lab, chosen).astype(np.uint8)


def _clean_on_whole_image(mask: np.ndarray) -> np.ndarray:
    out = smooth(fill_holes(_keep_largest_whole(mask)), smooth_radius(mask.shape))
    return fill_holes(_keep_largest_whole(out))


@pytest.mark.parametrize("seed", range(8))
def test_clean_on_the_lung_box_equals_clean_on_the_whole_image(seed):
    """Lungs anywhere (touching an edge, a corner, or well inside), specks, pinholes and a line
    across the film."""
    rng = np.random.default_rng(seed)
    h, w = 301, 259
    mask = np.zeros((h, w), np.uint8)
    for _ in range(2):
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        axes = (int(rng.integers(20, 90)), int(rng.integers(30, 120)))
        cv2.ellipse(mask, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    mask ^= (rng.random((h, w)) < 0.02).astype(np.uint8)
    mask[rng.integers(0, h), :] = 1
    np.testing.assert_array_equal(clean(mask, pairs=False), _clean_on_whole_image(mask))


def test_ties_are_broken_as_on_the_whole_image():
    """Three equal squares, two to keep: OpenCV numbers components by 2x2 blocks, and the tie
    goes to the lower number. On a box starting on an odd row, the top rows 3 and 4 would share
    a block row and the squares would be numbered left to right (keeping the two on the left);
    on the whole image the square starting on row 3 comes first."""
    mask = np.zeros((200, 200), np.uint8)
    for y, x in [(3, 151), (4, 11), (4, 81)]:
        mask[y : y + 25, x : x + 25] = 1
    expected = _clean_on_whole_image(mask)
    assert expected[10, 160] == 1 and expected[10, 90] == 0  # the one on row 3 is kept
    np.testing.assert_array_equal(clean(mask, pairs=False), expected)


def test_split_sides_on_the_box_uses_the_whole_width():
    """A lone lung is labelled by the half of the FILM it lies in, not the half of its box."""
    mask = np.zeros((100, 400), np.uint8)
    mask[20:80, 210:260] = 1  # just right of the film's middle
    assert set(np.unique(split_sides(mask))) == {0, 2}  # image right: the patient's left lung
    mask = np.zeros((100, 400), np.uint8)
    mask[20:80, 140:190] = 1
    assert set(np.unique(split_sides(mask))) == {0, 1}


def test_bounding_box_and_empty_masks():
    mask = np.zeros((50, 40), np.uint8)
    assert len(components(mask).areas) == 0
    assert clean(mask).sum() == 0 and clean(mask).shape == (50, 40)
    assert split_sides(mask).sum() == 0
    mask[10:20, 5:8] = 1
    assert bounding_box(mask) == (slice(10, 20), slice(4, 8))  # starts on even columns/rows
    assert bounding_box(mask, margin=6) == (slice(4, 26), slice(0, 14))  # clipped at the edge


def test_shapes_must_match():
    with pytest.raises(ValueError, match="prob is"):
        clean(np.zeros((10, 10), np.uint8), prob=np.zeros((10, 11), np.float32))


@pytest.mark.parametrize("n", [3, 25])  # few components: column sums; many: one bincount
def test_column_counts(n):
    lab = np.random.default_rng(n).integers(0, n, (40, 30)).astype(np.int32)
    expected = np.stack([(lab == k).sum(axis=0) for k in range(1, n)])
    np.testing.assert_array_equal(_column_counts(lab, n), expected)


def test_resize_labels_gives_the_lungs_drawn_at_the_large_size():
    def lungs(scale: int) -> np.ndarray:
        out = np.zeros((100 * scale, 120 * scale), np.uint8)
        cv2.ellipse(out, (35 * scale, 50 * scale), (20 * scale, 35 * scale), 0, 0, 360, 1, -1)
        cv2.ellipse(out, (85 * scale, 50 * scale), (20 * scale, 35 * scale), 0, 0, 360, 2, -1)
        return out

    big = resize_labels(lungs(1), (300, 360))
    truth = lungs(3)
    assert big.shape == truth.shape and set(np.unique(big)) == {0, 1, 2}
    for side in (1, 2):
        inter = np.count_nonzero((big == side) & (truth == side))
        assert 2 * inter / (np.count_nonzero(big == side) + np.count_nonzero(truth == side)) > 0.98
    # every disagreement lies within one small-grid pixel (3 px here) of the true outline
    square = np.ones((3, 3), np.uint8)
    edge = cv2.morphologyEx((truth > 0).view(np.uint8), cv2.MORPH_GRADIENT, square)
    near_edge = cv2.dilate(edge, np.ones((7, 7), np.uint8)) > 0
    assert not ((big != truth) & ~near_edge).any()


@pytest.mark.parametrize("seed", range(12))
def test_clean_hands_split_sides_the_labels_of_its_result(seed):
    """`clean_labelled` returns the cleaned mask's components (reused from its last labelling
    when filling holes changed nothing): the same as labelling the result afresh, and the same
    sides. Masks with specks (dropped), C shapes that smoothing closes into rings (new holes),
    and lungs at the film's edge."""
    rng = np.random.default_rng(seed)
    h, w = 240, 260
    mask = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        axes = (int(rng.integers(15, 70)), int(rng.integers(20, 90)))
        cv2.ellipse(mask, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    if seed % 3 == 0:  # a ring with a gap narrower than the smoothing disc
        cv2.circle(mask, (130, 120), 40, 1, 12)
        mask[118:122, 160:175] = 0
    if seed % 2:
        mask ^= (rng.random((h, w)) < 0.01).astype(np.uint8)
    out, comps = clean_labelled(mask, pairs=False)
    np.testing.assert_array_equal(out, _clean_on_whole_image(mask))
    fresh = components(out)
    assert comps.box == fresh.box
    np.testing.assert_array_equal(comps.labels, fresh.labels)
    np.testing.assert_array_equal(comps.areas, fresh.areas)
    np.testing.assert_array_equal(split_sides(out, comps=comps), split_sides(out))


@pytest.mark.parametrize("specks", [3, 40])  # few components: a count each; many: one bincount
def test_component_areas(specks):
    rng = np.random.default_rng(specks)
    mask = np.zeros((60, 70), np.uint8)
    for y, x in zip(rng.integers(0, 30, specks) * 2, rng.integers(0, 35, specks) * 2, strict=True):
        mask[y, x] = 1
    mask[10:20, 10:30] = 1
    c = components(mask)
    n, lab = cv2.connectedComponents(mask, connectivity=8)
    assert len(c.areas) == n - 1
    np.testing.assert_array_equal(np.sort(c.areas), np.sort(np.bincount(lab.ravel())[1:]))
