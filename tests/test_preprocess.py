"""Geometry round trips (letterbox / crop), padding and cropping, histogram normalisation."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from lungseg.preprocess import (
    make_geometry,
    normalize_histogram,
    place,
    preprocess,
    preprocess_mask,
    to_original,
    unplace,
)

SHAPES = [(80, 64), (64, 80), (100, 100), (97, 61), (61, 97), (333, 257), (257, 333), (50, 40)]


def ellipse(h, w, center=None, axes=None) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    s = min(h, w)
    center = center or (w // 2, h // 2)
    axes = axes or (int(s * 0.3), int(s * 0.4))  # inside the central square: survives crop
    cv2.ellipse(m, center, axes, 0, 0, 360, 1, -1)
    return m


def bbox(m) -> np.ndarray:
    ys, xs = np.nonzero(m)
    return np.array([ys.min(), ys.max(), xs.min(), xs.max()])


def iou(a, b) -> float:
    a, b = a > 0, b > 0
    return (a & b).sum() / (a | b).sum()


@pytest.mark.parametrize("fit", ["letterbox", "crop"])
@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("hw", SHAPES)
def test_mask_round_trip(hw, size, fit):
    h, w = hw
    g = make_geometry(h, w, size, fit)
    mask = ellipse(h, w)
    canvas = preprocess_mask(mask, g)
    assert canvas.shape == (size, size) and canvas.dtype == np.uint8
    assert set(np.unique(canvas)) == {0, 1}
    back = to_original(canvas.astype(np.float32), g)
    assert back.shape == (h, w) and back.dtype == np.float32
    back = back >= 0.5
    assert iou(back, mask) > 0.97
    tol = max(2, math.ceil(h / g.rh))  # one canvas pixel, in original pixels
    assert np.abs(bbox(back) - bbox(mask)).max() <= tol


@pytest.mark.parametrize("fit", ["letterbox", "crop"])
@pytest.mark.parametrize("hw", [(80, 64), (64, 80), (97, 61), (61, 97)])
def test_off_centre_mask_round_trip(hw, fit):
    """An off-centre blob comes back where it was (offsets not swapped or mis-signed)."""
    h, w = hw
    s = min(h, w)
    cy, cx = h // 2 + s // 6, w // 2 - s // 6  # lower-left of centre, inside the central square
    mask = ellipse(h, w, center=(cx, cy), axes=(s // 8, s // 7))
    g = make_geometry(h, w, 64, fit)
    back = to_original(preprocess_mask(mask, g).astype(np.float32), g) >= 0.5
    assert iou(back, mask) > 0.85
    assert np.abs(bbox(back) - bbox(mask)).max() <= 2


@pytest.mark.parametrize("fit", ["letterbox", "crop"])
def test_image_and_mask_share_geometry(fit):
    h, w = 97, 61
    mask = ellipse(h, w, center=(w // 3, h // 2 + 5), axes=(10, 14))
    x, g = preprocess(mask.astype(np.float32), 64, fit, hist="none")
    m = preprocess_mask(mask, g)
    assert iou(x > 0.5, m) > 0.9


def test_letterbox_geometry_pads_with_zeros_and_keeps_whole_image():
    h, w = 64, 128
    image = np.ones((h, w), np.float32)
    x, g = preprocess(image, 64, "letterbox", hist="none")
    assert (g.rh, g.rw, g.top, g.left) == (32, 64, 16, 0)
    assert x.shape == (64, 64) and x.dtype == np.float32
    assert np.all(x[:16] == 0) and np.all(x[48:] == 0)  # zero padding
    assert np.all(x[16:48] == 1)  # whole image, nothing cut
    # with histogram equalisation the padding stays 0
    img = np.random.default_rng(0).random((h, w)).astype(np.float32) * 0.5 + 0.5
    x, _ = preprocess(img, 64, "letterbox", hist="equalize")
    assert np.all(x[:16] == 0) and np.all(x[48:] == 0)
    assert x[16:48].min() >= 0 and x[16:48].max() == 1.0


def test_letterbox_portrait_pads_left_and_right():
    x, g = preprocess(np.ones((128, 96), np.float32), 64, "letterbox", hist="none")
    assert (g.rh, g.rw, g.top, g.left) == (64, 48, 0, 8)
    assert np.all(x[:, :8] == 0) and np.all(x[:, 56:] == 0) and np.all(x[:, 8:56] == 1)


def test_crop_removes_edges():
    h, w = 64, 128
    image = np.tile(np.linspace(0, 1, w, dtype=np.float32), (h, 1))
    x, g = preprocess(image, 64, "crop", hist="none")
    assert (g.rh, g.rw, g.top, g.left) == (64, 128, 0, -32)
    np.testing.assert_allclose(x, image[:, 32:96])  # scale 1: exactly the centre columns
    assert (x > 0).all()  # no padding

    m = np.zeros((h, w), np.uint8)
    m[:, :10] = 1  # only on the cropped-away edge
    canvas = preprocess_mask(m, g)
    assert canvas.sum() == 0
    assert to_original(canvas.astype(np.float32), g).max() == 0  # comes back as 0


def test_place_unplace_inverse():
    rng = np.random.default_rng(1)
    for h, w, fit in [(80, 64, "letterbox"), (80, 64, "crop"), (61, 97, "crop")]:
        g = make_geometry(h, w, 48, fit)
        a = rng.random((g.rh, g.rw)).astype(np.float32)
        canvas = place(a, g)
        assert canvas.shape == (48, 48)
        back = unplace(canvas, g)
        assert back.shape == (g.rh, g.rw)
        if fit == "letterbox":
            np.testing.assert_array_equal(back, a)
            assert canvas.sum() == pytest.approx(a.sum(), rel=1e-5)
        else:
            keep = back != 0
            np.testing.assert_array_equal(back[keep], a[keep])
            assert keep.sum() == 48 * 48


def test_make_geometry_values():
    g = make_geometry(2000, 1000, 512, "letterbox")
    assert (g.rh, g.rw, g.top, g.left, g.size) == (512, 256, 0, 128, 512)
    g = make_geometry(2000, 1000, 512, "crop")
    assert (g.rh, g.rw, g.top, g.left) == (1024, 512, -256, 0)


def test_invalid_fit_and_hist():
    with pytest.raises(ValueError, match="fit"):
        make_geometry(10, 10, 8, "stretch")
    with pytest.raises(ValueError, match="hist"):
        normalize_histogram(np.zeros((8, 8), np.float32), "gamma")
    with pytest.raises(ValueError, match="fit"):
        preprocess(np.zeros((20, 20), np.float32), 16, fit="pad")


def test_preprocess_rejects_3d():
    with pytest.raises(ValueError, match="2-D"):
        preprocess(np.zeros((20, 20, 3), np.float32), 16)


@pytest.mark.parametrize("method", ["equalize", "clahe", "none"])
def test_normalize_histogram_range(method):
    img = np.random.default_rng(2).random((40, 50)).astype(np.float32)
    out = normalize_histogram(img, method)
    assert out.shape == img.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1


def test_equalize_spreads_low_contrast():
    rng = np.random.default_rng(3)
    img = (0.4 + 0.1 * rng.random((64, 64))).astype(np.float32)  # values 0.4..0.5 only
    out = normalize_histogram(img, "equalize")
    assert out.min() == 0.0 and out.max() == 1.0
    assert out.std() > 3 * img.std()
    # order of gray levels is kept (monotone mapping)
    order = np.argsort(img.ravel())
    assert np.all(np.diff(out.ravel()[order]) >= 0)
    clahe = normalize_histogram(img, "clahe")
    assert clahe.std() > img.std()
    np.testing.assert_array_equal(normalize_histogram(img, "none"), img)


@pytest.mark.parametrize("fit", ["letterbox", "crop"])
def test_to_original_onto_a_smaller_grid_is_the_film_shrunk(fit):
    """to_original(..., dsize): the film's extent on a working grid, as shrinking the full-size
    map would give it (Segmenter.finish post-processes large films there)."""
    h, w = 1500, 1100
    g = make_geometry(h, w, 96, fit)
    yy, xx = np.mgrid[0:96, 0:96]
    prob = (np.hypot(yy - 50, xx - 44) < 30).astype(np.float32)  # a disc on the model grid
    full = to_original(prob, g)
    size = (round(w * 0.5), round(h * 0.5))
    small = to_original(prob, g, size)
    assert small.shape == (size[1], size[0]) and small.dtype == np.float32
    shrunk = cv2.resize(full, size, interpolation=cv2.INTER_AREA)
    assert iou(small >= 0.5, shrunk >= 0.5) > 0.99
    assert np.abs(bbox(small >= 0.5) - bbox(shrunk >= 0.5)).max() <= 1
