"""Corruptions keep the image valid and act where they should; geometry moves image and mask
together."""

from __future__ import annotations

import numpy as np
import pytest

from lungseg.augment import CORRUPTIONS, FUNCTIONS, Augmenter, corrupt


@pytest.fixture
def film(synth):
    h, w = 128, 112
    left, right = synth.lung_masks(h, w)
    mask = (left | right).astype(np.uint8)
    image = synth.chest_image(h, w, seed=5, mask=mask).astype(np.float32) / 255.0
    return image, mask


def test_corruption_names():
    assert set(CORRUPTIONS) == set(FUNCTIONS) == {"opacity", "effusion", "devices", "portable"}


@pytest.mark.parametrize("name", CORRUPTIONS)
@pytest.mark.parametrize("severity", [0.2, 0.6, 1.0])
def test_corruption_keeps_shape_dtype_range_and_mask(film, name, severity):
    image, mask = film
    before_img, before_mask = image.copy(), mask.copy()
    out = corrupt(image, mask, name, severity, np.random.default_rng(0))
    assert out.shape == image.shape and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert not np.array_equal(out, image)  # it did something
    np.testing.assert_array_equal(image, before_img)  # inputs untouched
    np.testing.assert_array_equal(mask, before_mask)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corruption_deterministic_per_seed(film, name):
    image, mask = film
    a = corrupt(image, mask, name, 0.7, np.random.default_rng(123))
    b = corrupt(image, mask, name, 0.7, np.random.default_rng(123))
    np.testing.assert_array_equal(a, b)
    outs = [corrupt(image, mask, name, 0.7, np.random.default_rng(s)) for s in range(4)]
    assert any(not np.array_equal(outs[0], o) for o in outs[1:])  # the seed matters


@pytest.mark.parametrize("name", ["opacity", "effusion"])
def test_opacity_and_effusion_brighten_lungs_more_with_severity(film, name):
    image, mask = film
    inside = mask > 0
    base = float(image[inside].mean())
    for seed in range(4):
        lo = corrupt(image, mask, name, 0.3, np.random.default_rng(seed))
        hi = corrupt(image, mask, name, 1.0, np.random.default_rng(seed))
        gain_lo = float(lo[inside].mean()) - base
        gain_hi = float(hi[inside].mean()) - base
        assert gain_lo > 0.005, (seed, gain_lo)
        assert gain_hi > gain_lo + 0.01, (seed, gain_lo, gain_hi)
        # the dense body outside the lungs (already brighter than the opacity level) barely
        # changes compared with the lungs
        far = np.zeros_like(inside)
        far[:, :4] = True
        assert abs(float(hi[far].mean() - image[far].mean())) < gain_hi


def test_white_out_reaches_soft_tissue_level(film):
    image, mask = film
    inside = mask > 0
    body = float(image[~inside].mean())
    out = corrupt(image, mask, "opacity", 1.0, np.random.default_rng(1))
    # at least one lung (side chosen at random) is mostly raised towards the body density
    w = image.shape[1]
    sides = [inside & (np.arange(w) < w // 2), inside & (np.arange(w) >= w // 2)]
    best = max(float(out[s].mean()) for s in sides)
    assert best > float(image[inside].mean()) + 0.5 * (body - float(image[inside].mean()))


def test_effusion_is_basal(film):
    image, mask = film
    out = corrupt(image, mask, "effusion", 0.5, np.random.default_rng(2))
    rows = np.nonzero(mask.any(axis=1))[0]
    top = slice(rows[0], rows[0] + (rows[-1] - rows[0]) // 4)
    bottom = slice(rows[-1] - (rows[-1] - rows[0]) // 4, rows[-1] + 1)
    diff = out - image
    assert diff[bottom][mask[bottom] > 0].mean() > diff[top][mask[top] > 0].mean() + 0.05


def test_effusion_with_empty_mask_is_identity(film):
    image, _ = film
    out = corrupt(image, np.zeros_like(image, np.uint8), "effusion", 1.0, np.random.default_rng(0))
    np.testing.assert_array_equal(out, image)


def test_unknown_corruption():
    img = np.zeros((32, 32), np.float32)
    with pytest.raises(ValueError, match="unknown corruption 'fog'"):
        corrupt(img, img.astype(np.uint8), "fog", 0.5, np.random.default_rng(0))


def test_augmenter_corrupt_probability(film):
    image, mask = film
    never = Augmenter(p_corrupt=0.0, geometry=False)
    out = never.corrupt(image, mask, np.random.default_rng(0))
    np.testing.assert_array_equal(out, image)
    always = Augmenter(corruptions=("opacity",), p_corrupt=2.0, geometry=False)
    a = always.corrupt(image, mask, np.random.default_rng(0))
    b = always.corrupt(image, mask, np.random.default_rng(0))
    assert not np.array_equal(a, image)
    np.testing.assert_array_equal(a, b)
    x, m = always.geometric(image, mask)  # geometry off: unchanged
    assert x is image and m is mask


def test_geometric_moves_image_and_mask_together():
    aug = Augmenter()
    aug.geom.set_random_seed(0)
    image = np.zeros((64, 64), np.float32)
    image[14:34, 10:30] = 1.0  # bright off-centre square
    mask = np.zeros((64, 64), np.uint8)
    mask[14:34, 10:30] = 1
    moved = 0
    for _ in range(12):
        x, m = aug.geometric(image, mask)
        assert x.shape == (64, 64) and x.dtype == np.float32
        assert m.shape == (64, 64) and m.dtype == np.uint8 and set(np.unique(m)) <= {0, 1}
        bright = x > 0.5
        if m.sum():
            assert (bright & (m > 0)).sum() / (bright | (m > 0)).sum() > 0.85
        if (m != mask).sum() > 20:
            moved += 1
    assert moved >= 3  # the geometry really changes things, and the mask follows


def test_portable_look_does_not_burn_out_a_bright_film(film):
    """Haze and gamma lift a film; re-windowing keeps its lungs visible instead of clipping
    them to white (a bright JSRT-like film lost most of its lung to clipping before)."""
    image, mask = film
    bright = (0.6 + 0.4 * image).astype(np.float32)  # a film already high in its range
    for seed in range(10):
        out = corrupt(bright, mask, "portable", 1.0, np.random.default_rng(seed))
        assert np.mean(out[mask > 0] >= 0.999) < 0.05, seed
        assert out[mask > 0].std() > 0.01, seed  # something of the lung is left to see
