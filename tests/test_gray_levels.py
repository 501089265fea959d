"""Gray levels of raster films: 8-bit values exact, 16-bit data scaled by their significant
bits (10, 12, 14 or 16), the OpenCV fast path for gray PNGs giving Pillow's values, and 32-bit
integer TIFFs. Every reader returns float32 HxW in [0,1]."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import IMG_H, IMG_W, check_float_image, ramp8, ramp16
from PIL import Image

from lungseg.arrays import from_array
from lungseg.imageio import read_image, to_gray_float
from lungseg.png import read_png

H, W = IMG_H, IMG_W


def test_png_8bit_gray(tmp_path):
    a = ramp8()
    Image.fromarray(a).save(tmp_path / "g.png")
    rad = read_image(tmp_path / "g.png")
    check_float_image(rad.image)
    np.testing.assert_allclose(rad.image, a / 255.0, atol=1e-6)
    assert rad.spacing is None
    assert rad.path == str(tmp_path / "g.png")


@pytest.mark.parametrize("mode", ["L", "I;16"])
def test_gray_png_fast_path_gives_pillows_pixels(tmp_path, mode):
    """8- and 16-bit gray PNGs are decoded by OpenCV, with the values Pillow would give."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256 if mode == "L" else 65536, (H, W)).astype(
        np.uint8 if mode == "L" else np.uint16
    )
    Image.fromarray(a).save(tmp_path / "g.png")
    fast = read_png(tmp_path / "g.png")
    with Image.open(tmp_path / "g.png") as im:
        assert im.mode == mode
        np.testing.assert_array_equal(fast, to_gray_float(im))


def test_fast_path_leaves_other_pngs_to_pillow(tmp_path):
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / "rgb.png")
    Image.fromarray(ramp8()).convert("P").save(tmp_path / "pal.png")
    Image.fromarray(ramp8()).save(tmp_path / "g.jpg")
    Image.fromarray(ramp8()).save(tmp_path / "gray.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "gray.png").read_bytes()[:-20])
    for name in ("rgb.png", "pal.png", "g.jpg", "cut.png"):
        assert read_png(tmp_path / name) is None, name


def test_png_16bit_gray_full_precision(tmp_path):
    a = (np.arange(H * W).reshape(H, W) * 34).astype(np.uint16)  # 0..65246, all distinct
    Image.fromarray(a).save(tmp_path / "g16.png")
    img = read_image(tmp_path / "g16.png").image
    check_float_image(img)
    np.testing.assert_allclose(img, a / 65535.0, atol=1e-6)
    assert len(np.unique(img)) == H * W  # not squeezed to 256 levels


def test_png_16bit_dark_image_not_mistaken_for_8bit(tmp_path):
    a = (np.arange(H * W).reshape(H, W) % 200).astype(np.uint16)  # 16-bit file, values < 256
    Image.fromarray(a).save(tmp_path / "dark16.png")
    img = read_image(tmp_path / "dark16.png").image
    np.testing.assert_allclose(img, a / 1023.0, atol=1e-7)  # 10 significant bits, not 8


def test_png_8bit_values_exact(tmp_path):
    """The evaluation data are 8-bit gray PNGs: value / 255 in float32, bit for bit, by the file
    reader and by from_array alike."""
    a = ramp8()
    Image.fromarray(a).save(tmp_path / "g.png")
    want = a.astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(read_image(tmp_path / "g.png").image, want)
    np.testing.assert_array_equal(from_array(a), want)
    np.testing.assert_array_equal(from_array(np.dstack([a] * 3)), want)  # gray RGB: the same


SIGNIFICANT_BITS = [  # (largest value in the film, divisor: 2^bits - 1 of the bits it needs)
    (200, 1023),
    (1023, 1023),
    (1024, 4095),
    (4080, 4095),  # 12-bit detector data: the film keeps its full brightness
    (4096, 16383),
    (16383, 16383),
    (16384, 65535),
    (65535, 65535),  # full-range 16-bit: as before
]


@pytest.mark.parametrize("top,divisor", SIGNIFICANT_BITS)
@pytest.mark.parametrize("source", ["png", "png-pillow", "tif", "array"])
def test_16bit_scaled_by_significant_bits(tmp_path, source, top, divisor):
    """16-bit data are divided by the smallest of 2^10-1, 2^12-1, 2^14-1, 2^16-1 that holds
    their maximum, in the OpenCV PNG path, Pillow's I;16 mode and from_array alike."""
    a = ramp16(top)
    if source == "array":
        img = from_array(a)
    else:
        p = tmp_path / f"x.{source[:3]}"
        Image.fromarray(a).save(p)
        if source == "png-pillow":
            with Image.open(p) as im:
                assert im.mode == "I;16"
                img = to_gray_float(im)
        else:
            img = read_image(p).image
    check_float_image(img)
    np.testing.assert_array_equal(img, a.astype(np.float32) / np.float32(divisor))


def test_12bit_png_keeps_its_gray_levels(tmp_path):
    """A 12-bit film in a 16-bit PNG spans [0, 1] with thousands of levels, not ~14 dark ones."""
    Image.fromarray(ramp16(4095)).save(tmp_path / "f12.png")
    img = read_image(tmp_path / "f12.png").image
    assert img.max() == 1.0 and len(np.unique(img)) > 1900


@pytest.mark.parametrize(
    "values,want",
    [((0, 200), 255), ((0, 4000), 4095), ((0, 60000), 65535), ((-1000, 3000), None)],
)
def test_int32_tiff(tmp_path, values, want):
    """Mode I (32-bit integer TIFF): 8 significant bits and up as for 16-bit data; values
    outside 0..65535 are stretched from the minimum to the maximum."""
    a = np.linspace(*values, H * W).round().astype(np.int32).reshape(H, W)
    Image.fromarray(a).save(tmp_path / "i.tif")
    with Image.open(tmp_path / "i.tif") as im:
        assert im.mode == "I"
    img = read_image(tmp_path / "i.tif").image
    check_float_image(img)
    lo = values[0] if want is None else 0
    np.testing.assert_allclose(img, (a - lo) / ((want or values[1]) - lo), atol=1e-6)
