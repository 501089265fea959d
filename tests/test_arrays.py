"""Arrays and float films: `arrays.from_array` (the Python API's arrays: shapes, dtypes,
refusals) and non-finite pixels, which must not blank a film."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import IMG_H, IMG_W, check_float_image, ramp8, ramp16
from PIL import Image

from lungseg.arrays import from_array
from lungseg.imageio import ImageReadError, read_image

H, W = IMG_H, IMG_W


# ---------------------------------------------------------------- non-finite pixels


@pytest.mark.parametrize("value,want", [(np.nan, 0.0), (-np.inf, 0.0), (np.inf, 1.0)])
def test_float_tiff_with_one_nonfinite_pixel(tmp_path, value, want):
    """One NaN or Inf pixel no longer blanks the film: the finite pixels are stretched as if it
    were not there, and it becomes 0 (NaN, -Inf) or 1 (+Inf)."""
    a = np.linspace(-5.0, 20.0, H * W, dtype=np.float32).reshape(H, W)
    b = a.copy()
    b[3, 7] = value
    b[0, 0] = a[0, 1]  # the finite minimum is not on the non-finite pixel's position
    Image.fromarray(b, mode="F").save(tmp_path / "f.tif")
    img = read_image(tmp_path / "f.tif").image
    check_float_image(img)
    finite = np.isfinite(b)
    lo, hi = b[finite].min(), b[finite].max()
    np.testing.assert_allclose(img[finite], (b[finite] - lo) / (hi - lo), atol=1e-6)
    assert img[3, 7] == want


def test_all_nan_tiff_refused(tmp_path):
    Image.fromarray(np.full((H, W), np.nan, np.float32), mode="F").save(tmp_path / "nan.tif")
    with pytest.raises(ImageReadError, match=r"nan\.tif.*NaN or infinite"):
        read_image(tmp_path / "nan.tif")


# ---------------------------------------------------------------- from_array


@pytest.mark.parametrize(
    "arr,want",
    [
        (ramp8(), ramp8() / 255),
        (ramp8() > 100, (ramp8() > 100) * 1.0),
        (ramp8() / 255.0, ramp8() / 255),  # float64
        ((ramp8() / 255.0).astype(np.float16), (ramp8() / 255.0).astype(np.float16)),
        (ramp8().astype(np.int64), ramp8() / 255),  # integers of unstated depth: 8 bits
        (ramp16(4000).astype(np.int32), ramp16(4000) / 4095),
        (ramp16(4000), ramp16(4000) / 4095),  # uint16: significant bits
        ((ramp8() / 255.0).tolist(), ramp8() / 255),
    ],
    ids=["uint8", "bool", "float64", "float16", "int64-8bit", "int32-12bit", "uint16", "list"],
)
def test_from_array_dtypes(arr, want):
    img = from_array(arr)
    check_float_image(img)
    np.testing.assert_allclose(img, want, atol=1e-6)


def test_from_array_channels():
    """Channel-last colour: averaged after scaling to [0,1]; alpha over black (its own scale:
    an opaque uint16 alpha does not darken 12-bit colour); HxWx1 squeezed."""
    r, g, b = ramp16(4000), ramp16(100), np.zeros((H, W), np.uint16)  # max over all: 12-bit
    want = (r / 4095 + g / 4095 + b / 4095) / 3
    np.testing.assert_allclose(from_array(np.dstack([r, g, b])), want, atol=1e-6)
    alpha = np.full((H, W), 65535, np.uint16)
    alpha[:, : W // 2] = 16384
    got = from_array(np.dstack([r, g, b, alpha]))
    np.testing.assert_allclose(got, want * alpha / 65535, atol=1e-6)
    np.testing.assert_array_equal(from_array(ramp8()[..., None]), from_array(ramp8()))
    rgb = np.dstack([ramp8(), np.zeros((H, W), np.uint8), np.full((H, W), 255, np.uint8)])
    np.testing.assert_allclose(from_array(rgb), (ramp8() / 255 + 0 + 1) / 3, atol=1e-6)


def test_from_array_gray_with_alpha():
    """HxWx2 (gray, alpha: PIL's LA as an array) over black, as an LA PNG is read."""
    alpha = np.full((H, W), 255, np.uint8)
    alpha[:, : W // 2] = 0
    got = from_array(np.dstack([ramp8(), alpha]))
    np.testing.assert_allclose(got, ramp8() / 255 * (alpha / 255), atol=1e-6)


@pytest.mark.parametrize(
    "arr,match",
    [
        (np.zeros((3, H, W), np.float32), r"\(3, 40, 48\).*np\.moveaxis\(arr, 0, -1\)"),
        (np.zeros((1, H, W), np.uint8), r"np\.moveaxis"),
        (np.zeros(100), r"HxW, HxWx1, HxWx2 \(gray, alpha\), HxWx3 or HxWx4.*\(100,\)"),
        (np.float32(0.5), r"got float32$"),
        (np.zeros((2, H, W, 3)), r"got shape \(2, 40, 48, 3\)"),
        (np.zeros((0, W)), r"got shape \(0, 48\)"),
        (np.full((H, W), -0.5), r"float64 in -0\.5\.\.-0\.5"),
        (
            ramp8() * 1.0,
            r"other integers in 0\.\.65535, bool or float in \[0,1\].*float64 in 0\.\.255",
        ),
        (np.full((H, W), np.nextafter(np.float32(1), 2)), r"float32 in 1\.00000012\.\.1\.00000012"),
        (np.full((H, W), 70000, np.int64), r"int64"),
        (np.full((H, W), -3, np.int8), r"int8"),
        (np.zeros((H, W), np.complex64), r"complex64"),
    ],
    ids=[
        "3xHxW",
        "1xHxW",
        "1-D",
        "0-D",
        "4-D",
        "empty",
        "negative",
        "over-1",
        "1+eps",
        "int-big",
        "int-neg",
        "cx",
    ],  # fmt: skip
)
def test_from_array_refusals(arr, match):
    with pytest.raises(ValueError, match=match):
        from_array(arr)


def test_from_array_nonfinite():
    a = ramp8() / 255.0
    a[0, :3] = np.nan, np.inf, -np.inf
    img = from_array(a)
    assert np.isnan(a[0, 0])  # the caller's array is left as it was
    check_float_image(img)
    assert img[0, :3].tolist() == [0.0, 1.0, 0.0]
    np.testing.assert_allclose(img[1:], ramp8()[1:] / 255, atol=1e-6)
    with pytest.raises(ValueError, match="NaN or infinite"):
        from_array(np.full((H, W), np.nan))
