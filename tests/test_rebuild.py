"""Rebuilding a lost lung (lungseg.rebuild) on phantoms whose lungs are known, the shipped
templates, the flag and the dashed outline it leaves."""

from __future__ import annotations

import numpy as np
import pytest

from lungseg.imageio import Radiograph
from lungseg.metrics import confusion
from lungseg.phantom import make_phantom
from lungseg.postprocess import LEFT, RIGHT
from lungseg.rebuild import (
    GRID,
    MAX_SHIFT,
    midline,
    mirror_shift,
    place,
    rebuild,
    sample,
)
from lungseg.report import LEFT_INDEX, overlay_indexed
from lungseg.segmenter import Segmenter
from lungseg.stats import lung_balance, lung_sizes, measure


def truth_labels(seed: int = 0, size: int = 384):
    ph = make_phantom(size, seed)
    labels = np.zeros(ph.lungs.shape, np.uint8)
    labels[ph.right > 0], labels[ph.left > 0] = RIGHT, LEFT
    return ph, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("lost", [RIGHT, LEFT])
def test_a_lost_lung_is_rebuilt_from_the_other(seed, lost):
    ph, labels = truth_labels(seed)
    truth = labels == lost
    damaged = np.where(truth, 0, labels).astype(np.uint8)
    out, side = rebuild(damaged, ph.image)
    assert side == lost
    assert np.array_equal(out == 3 - lost, labels == 3 - lost)  # the lung found is untouched
    assert confusion(out == lost, truth).dice > 0.8  # the val masks' median is 0.85
    again, side_again = rebuild(damaged, ph.image, lost=lost)  # the side judged by the caller
    assert side_again == lost and np.array_equal(again, out)


def test_part_of_the_lung_found_near_the_template_is_kept_a_far_blob_dropped():
    ph, labels = truth_labels()
    left = labels == LEFT
    rows = np.flatnonzero(left.any(axis=1))
    top = left & (np.arange(left.shape[0])[:, None] < rows[0] + 0.3 * len(rows))  # its apex
    damaged = np.where(left, 0, labels).astype(np.uint8)
    damaged[top] = LEFT
    damaged[:10, -10:] = LEFT  # a speck in the far corner, away from any lung
    out, side = rebuild(damaged, ph.image)
    assert side == LEFT
    assert (out[top] == LEFT).all() and not (out[:10, -10:] == LEFT).any()


def test_plausible_lungs_and_no_lungs_are_left_alone():
    ph, labels = truth_labels()
    assert lung_balance(lung_sizes(labels))[0] is None and rebuild(labels, ph.image)[1] is None
    empty = np.zeros_like(labels)
    assert rebuild(empty)[1] is None


def test_a_lung_of_plausible_area_but_half_the_height_is_lost():
    labels = np.zeros((200, 200), np.uint8)
    labels[40:140, 20:60] = RIGHT  # 100 rows x 40 = 4000 px
    labels[40:90, 100:160] = LEFT  # 50 rows x 60 = 3000 px: 75% of the area, 50% of the height
    assert lung_balance(lung_sizes(labels))[0] == LEFT
    labels[40:110, 100:160] = LEFT  # 70% of the height
    assert lung_balance(lung_sizes(labels))[0] is None


def test_the_template_is_not_drawn_on_the_black_level():
    ph, labels = truth_labels()
    image = ph.image.copy()
    image[:, image.shape[1] // 2 + 40 :] = 0.0  # the film's right part unexposed
    damaged = np.where(labels == LEFT, 0, labels).astype(np.uint8)
    out, _ = rebuild(damaged, image)
    assert not (out[:, image.shape[1] // 2 + 40 :] == LEFT).any()


def test_sample_then_place_gives_back_the_same_lung():
    _, labels = truth_labels()
    right, left = labels == RIGHT, labels == LEFT
    again = place(sample(left, right), right)
    assert sample(left, right).shape == GRID[::-1]
    assert confusion(again, left).dice > 0.97  # only the grid's resolution is lost


def test_segmenter_flags_and_outlines_a_rebuilt_lung():
    ph = make_phantom(768, 9, "white-out")
    film = Radiograph(ph.image)
    seg = Segmenter(device="cpu")
    res, plain = seg(film), Segmenter(device="cpu", rebuild=False)(film)
    if (
        lung_balance(lung_sizes(plain.labels))[0] != LEFT
    ):  # (it does at git 2026-12-06; a new model may not)
        pytest.skip("the shipped model did not lose this phantom's left lung")
    assert res.rebuilt == LEFT and res.stats["flags"].split(";")[0] == "left_lung_rebuilt"
    assert res.stats["quality"] == "check"
    assert confusion(res.mask, ph.lungs).dice > confusion(plain.mask, ph.lungs).dice
    below = np.flatnonzero((res.labels == LEFT).any(axis=1))[0] + 60  # below the R/L marks
    dashed = overlay_indexed(ph.image, res.labels, rebuilt=LEFT)[below:] == LEFT_INDEX
    solid = overlay_indexed(ph.image, res.labels)[below:] == LEFT_INDEX
    assert 0.3 * solid.sum() < dashed.sum() < 0.7 * solid.sum()  # about half the outline


def test_a_mirrored_film_is_rebuilt_on_its_own_side():
    ph, labels = truth_labels()
    damaged = np.where(labels == LEFT, 0, labels).astype(np.uint8)
    upright, side = rebuild(damaged, ph.image)
    seg = Segmenter(device="cpu")
    mirrored = Radiograph(ph.image[:, ::-1].copy(), flipped=True)
    unsure = 0.6 * (damaged > 0)[:, ::-1].astype(np.float32)  # every lung pixel uncertain
    _, got, _, rebuilt = seg._clean(unsure, mirrored.image, mirrored, True)
    assert rebuilt == side == LEFT
    assert confusion(got[:, ::-1] == LEFT, upright == LEFT).dice > 0.95


def test_a_film_displayed_upside_down_and_mirrored_is_rebuilt_upright():
    ph, labels = truth_labels(1)
    damaged = np.where(labels == RIGHT, 0, labels).astype(np.uint8)  # the right lung lost
    upright, side = rebuild(damaged, ph.image)
    turned = Radiograph(ph.image[::-1, ::-1].copy(), flipped=True, upside_down=True)
    unsure = 0.6 * (damaged > 0)[::-1, ::-1].astype(np.float32)
    _, got, _, rebuilt = Segmenter(device="cpu")._clean(unsure, turned.image, turned, True)
    assert rebuilt == side == RIGHT
    assert confusion(got[::-1, ::-1] == RIGHT, upright == RIGHT).dice > 0.95


def test_a_small_lung_the_model_is_sure_of_is_left_alone():
    """Volume loss (a collapsed or destroyed lung, drawn small in its mask too) is found with
    confidence; a white lung lost is not (`stats.uncertain_fraction` above UNCERTAIN_MAX)."""
    ph, labels = truth_labels()
    left = labels == LEFT
    rows = np.flatnonzero(left.any(axis=1))
    small = np.where(left & (np.arange(left.shape[0])[:, None] > rows[0] + 0.4 * len(rows)), 0,
                     labels).astype(np.uint8)  # fmt: skip
    seg = Segmenter(device="cpu")
    film = Radiograph(ph.image)
    for p, expected in ((1.0, None), (0.6, LEFT)):  # sure of every pixel / of none
        _, got, _, rebuilt = seg._clean(p * (small > 0).astype(np.float32), ph.image, film, True)
        assert rebuilt == expected
    assert lung_balance(lung_sizes(small))[0] == LEFT


def test_measure_names_the_rebuilt_side_first():
    _, labels = truth_labels()
    assert measure(labels, rebuilt=RIGHT)["flags"].split(";")[0] == "right_lung_rebuilt"
    assert measure(labels, rebuilt=RIGHT)["quality"] == "check"


def test_midline_follows_a_chest_moved_sideways():
    ph, labels = truth_labels()
    rows = np.flatnonzero(labels.any(axis=1))
    rows = (rows[0], rows[-1])
    moved = np.pad(ph.image, ((0, 0), (30, 0)), mode="edge")[:, : ph.image.shape[1]]
    assert abs(midline(moved, rows) - midline(ph.image, rows) - 30) <= 3  # 1.5 px per cell


def test_the_film_moves_the_template_at_most_max_shift():
    ph, labels = truth_labels()
    w = labels.shape[1]
    right, left = labels == RIGHT, labels == LEFT
    far = np.zeros_like(left)
    far[:, -20:] = True  # a "template" at the film's edge: pulled back, by MAX_SHIFT at most
    move = mirror_shift(ph.image, right, far, 0.0)
    assert move == -round(MAX_SHIFT * w)
    assert abs(mirror_shift(ph.image, right, left, 0.0)) < MAX_SHIFT * w  # already about there


def test_the_film_places_a_rebuilt_lung_better_on_phantoms():
    """The phantom's chest is about symmetric: the film moves the template towards the lung's
    true place where its mid-line lies between the lungs (seeds 0-5, each lung lost in turn;
    measured 0.801 -> 0.815, 7 of 12 moved, the worst change -0.015)."""
    gains = []
    for seed in range(6):
        ph, labels = truth_labels(seed)
        for lost in (RIGHT, LEFT):
            damaged = np.where(labels == lost, 0, labels).astype(np.uint8)
            d = [confusion(rebuild(damaged, im)[0] == lost, labels == lost).dice
                 for im in (None, ph.image)]  # fmt: skip
            gains.append(d[1] - d[0])
    assert np.mean(gains) > 0.01 and min(gains) > -0.02


def test_a_mid_line_outside_the_gap_between_the_lungs_moves_nothing():
    ph, labels = truth_labels()
    right = labels == RIGHT
    assert mirror_shift(ph.image, right, right, 0.0) == 0  # "template" on the found lung itself


def test_a_lung_with_nowhere_to_go_is_not_called_rebuilt():
    _, labels = truth_labels()
    damaged = np.where(labels == LEFT, 0, labels).astype(np.uint8)
    black = np.zeros(labels.shape, np.float32)  # all at the black level
    out, side = rebuild(damaged, black)
    assert side is None and np.array_equal(out, damaged)
