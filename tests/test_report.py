"""Overlays: outlines in the right colours on the film, written as palette PNGs; the sheets of
the overlays to check."""

import cv2
import numpy as np
import pytest
from PIL import Image

from lungseg.files import is_byproduct
from lungseg.png import write_png
from lungseg.postprocess import LEFT, RIGHT
from lungseg.report import (
    CAPTION,
    COLUMNS,
    GAP,
    LEFT_COLOR,
    PALETTE,
    RIGHT_COLOR,
    TILE,
    TRUTH_COLOR,
    _text,
    check_sheets,
    overlay,
    overlay_indexed,
)


def _film_and_labels():
    image = np.tile(np.linspace(0, 1, 200, dtype=np.float32), (160, 1))  # gray ramp, dark left
    labels = np.zeros((160, 200), np.uint8)
    labels[30:130, 20:80], labels[30:130, 120:180] = RIGHT, LEFT
    return image, labels


def test_overlay_outlines_each_lung_in_its_colour_and_keeps_the_film():
    image, labels = _film_and_labels()
    rgb = overlay(image, labels)
    assert rgb.shape == (160, 200, 3) and rgb.dtype == np.uint8
    is_right = (rgb == RIGHT_COLOR).all(axis=-1)
    is_left = (rgb == LEFT_COLOR).all(axis=-1)
    assert is_right[:, :100].sum() > 200 and not is_right[:, 100:].any()  # image left: right lung
    assert is_left[:, 100:].sum() > 200 and not is_left[:, :100].any()
    inside = rgb[60:100, 40:60]  # inside the lung: the film's gray ramp, untouched
    assert (inside[..., 0] == inside[..., 1]).all()
    expected = np.round(image[60:100, 40:60] * 251) * 255 / 251
    assert np.abs(inside[..., 0] - expected).max() <= 1.5


def test_overlay_of_an_8_bit_film_and_a_rebuilt_lung():
    """A uint8 film saturated past the palette (IndexError: index 255); `rebuilt` reached
    overlay_indexed only."""
    image, labels = _film_and_labels()
    u8 = np.round(image * 255).astype(np.uint8)
    np.testing.assert_array_equal(overlay(u8, labels), overlay(u8 / np.float32(255), labels))
    over = overlay(np.full(image.shape, 200, np.float32), labels)  # float over 1: white film
    assert (over[60:100, 40:60] == 255).all()
    dashed = overlay(image, labels, rebuilt=LEFT)
    np.testing.assert_array_equal(dashed, PALETTE[overlay_indexed(image, labels, rebuilt=LEFT)])
    assert (dashed != overlay(image, labels)).any()


def test_overlay_draws_truth_and_downscales_large_films():
    image, labels = _film_and_labels()
    truth = np.zeros_like(labels)
    truth[20:140, 10:190] = 1  # a ground truth larger than the prediction
    rgb = overlay(image, labels, truth, max_side=100)
    assert rgb.shape == (80, 100, 3)
    assert (rgb == TRUTH_COLOR).all(axis=-1).any()


def test_overlay_png_is_a_palette_image_with_the_same_picture(tmp_path):
    image, labels = _film_and_labels()
    idx = overlay_indexed(image, labels)
    write_png(tmp_path / "o.png", idx, PALETTE)
    with Image.open(tmp_path / "o.png") as im:
        assert im.mode == "P"
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), overlay(image, labels))


@pytest.mark.parametrize("org", [(40, 60), (-6, 4), (190, 159), (90, -3), (-40, 400)])
@pytest.mark.parametrize("t", [1, 3])
def test_text_drawn_on_a_patch_equals_text_drawn_on_the_whole_film(org, t):
    """The R/L marks are drawn on a small patch around the text: same pixels as OpenCV drawing
    on the whole film, also where the text runs off the film's edge."""
    expected = np.zeros((160, 200), np.uint8)
    ink = np.zeros_like(expected)
    cv2.putText(ink, "L", org, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * t, 255, 2 * t, cv2.LINE_8)
    expected[ink >= 128] = 7
    got = np.zeros_like(expected)
    _text(got, "L", org, 7, t)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("shift", [0, 25, -25])
def test_outlines_traced_on_the_lungs_box_equal_outlines_traced_on_the_film(shift):
    """Outlines are traced on the lungs' box only: the same pixels as tracing the whole film,
    also for a lung cut by the film's edge."""
    image, labels = _film_and_labels()
    labels = np.roll(labels, shift, axis=1)
    if shift:
        labels[:, :shift] = 0 if shift > 0 else labels[:, :shift]
    labels[:10, 90:110] = LEFT  # a lung fragment touching the top edge
    got = overlay_indexed(image, labels)
    expected = cv2.convertScaleAbs(image, alpha=251.0)
    t = max(1, round(min(expected.shape) / 300))
    for side in (RIGHT, LEFT):
        region = (labels == side).view(np.uint8)
        contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(expected, contours, -1, 252 if side == RIGHT else 253, t, cv2.LINE_8)
    text = got != expected  # only the R/L marks may differ: small patches above each lung
    assert np.isin(got[text], [252, 253]).all()
    assert text.sum() < 0.01 * text.size


def _flagged_run(out, n_check: int, n_ok: int = 3) -> list[dict]:
    """`out` as predict leaves it: one overlay per film, a flat colour each (film k: k + 1 as its
    red), 200 x 120 px (a portrait film); rows as results.csv has them, the ok films first."""
    rows = []
    for k in range(n_ok + n_check):
        stem = f"film{k:03d}"
        colour = np.array([k + 1, 100, 200], np.uint8)
        write_png(out / f"{stem}_overlay.png", np.tile(colour, (200, 120, 1)))
        quality = "ok" if k < n_ok else "check"
        rows.append({"mask": f"{stem}_mask.png", "quality": quality, "flags": "low_confidence"})
    return rows


def test_check_sheets_tile_the_flagged_overlays_in_order(tmp_path):
    rows = _flagged_run(tmp_path, 33)
    rows.append({"mask": "gone_mask.png", "quality": "check", "flags": "fragments"})  # no overlay
    rows.append({"file": "bad.png", "quality": "error", "mask": ""})
    pages = check_sheets(tmp_path, rows)
    assert [p.name for p in pages] == ["check_overlays_01.png", "check_overlays_02.png"]
    first, last = (np.asarray(Image.open(p).convert("RGB")) for p in pages)
    assert first.shape == (5 * (TILE + CAPTION), COLUMNS * (TILE + GAP) - GAP, 3)  # 30 films
    assert last.shape[0] == TILE + CAPTION  # 3 films: one row of tiles
    for page, k, film in ((first, 0, 3), (first, 7, 10), (first, 29, 32), (last, 2, 35)):
        y, x = (k // COLUMNS) * (TILE + CAPTION), (k % COLUMNS) * (TILE + GAP)
        assert tuple(page[y + TILE // 2, x + TILE // 2]) == (film + 1, 100, 200)
        assert (page[y + TILE // 2, x + 10] == 255).all()  # the portrait film is centred
        assert (page[y + TILE + 5 : y + TILE + CAPTION, x : x + TILE] < 128).any()  # its caption
    assert (last[:, 3 * (TILE + GAP) :] == 255).all()  # nothing after the third film
    assert all(is_byproduct(p) for p in pages)  # never taken for films by a later predict


def test_check_sheets_remove_an_earlier_runs_extra_pages_only(tmp_path):
    check_sheets(tmp_path, _flagged_run(tmp_path, 40))
    foreign = tmp_path / "check_overlays_09.png"  # not written by lungseg: kept
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(foreign)
    pages = check_sheets(tmp_path, _flagged_run(tmp_path, 4))
    mine = tmp_path / "check_overlays_02.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(mine)  # a user's file of a page's name
    assert check_sheets(tmp_path, _flagged_run(tmp_path, 40)) == [
        tmp_path / "check_overlays_01.png"
    ]
    assert np.asarray(Image.open(mine)).shape == (8, 8)  # not replaced
    mine.unlink()
    pages = check_sheets(tmp_path, _flagged_run(tmp_path, 4))
    assert sorted(p.name for p in tmp_path.glob("check_overlays_*.png")) == [
        "check_overlays_01.png",
        "check_overlays_09.png",
    ]
    assert pages == [tmp_path / "check_overlays_01.png"]
    assert check_sheets(tmp_path, _flagged_run(tmp_path, 0)) == []
    assert not (tmp_path / "check_overlays_01.png").exists()
