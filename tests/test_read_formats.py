"""Raster formats and colour modes: RGB as luma, RGBA on black, palette PNGs, JPEG, TIFF, BMP
and GIF films; masks from PNG, GIF and bilevel files; rasters are never flipped."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest
from conftest import IMG_H, IMG_W, check_float_image, ramp8
from PIL import Image

from lungseg.arrays import from_array
from lungseg.imageio import read_image, read_mask

H, W = IMG_H, IMG_W


def test_rgb_png_uses_luma(tmp_path):
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:, :16] = (200, 200, 200)
    rgb[:, 16:32] = (255, 0, 0)
    rgb[:, 32:] = (0, 0, 255)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    img = read_image(tmp_path / "rgb.png").image
    check_float_image(img)
    np.testing.assert_allclose(img[:, :16], 200 / 255, atol=1 / 255)
    np.testing.assert_allclose(img[:, 16:32], 0.299 * 255 / 255, atol=1 / 255)  # ITU-R 601
    np.testing.assert_allclose(img[:, 32:], 0.114 * 255 / 255, atol=1 / 255)


def test_rgba_composited_on_black(tmp_path):
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[:, : W // 2, 3] = 255  # opaque
    rgba[:, W // 2 :, 3] = 128  # half transparent
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    img = read_image(tmp_path / "rgba.png").image
    check_float_image(img)
    np.testing.assert_allclose(img[:, : W // 2], 200 / 255, atol=1 / 255)
    np.testing.assert_allclose(img[:, W // 2 :], 200 * 128 / 255 / 255, atol=2 / 255)
    np.testing.assert_allclose(from_array(rgba), img, atol=1 / 255)  # the array: the same film
    rgba[..., 3] = 0  # fully transparent: blank as a file and as an array
    Image.fromarray(rgba).save(tmp_path / "clear.png")
    assert read_image(tmp_path / "clear.png").image.max() == from_array(rgba).max() == 0


@pytest.mark.parametrize("shape", [(H, W), (H, W, 3)])
def test_float64_tiff_is_read_as_float_tiffs_are(tmp_path, shape):
    """Pillow cannot open float64 TIFFs (nor int64): OpenCV reads them, stretched to [0,1] as
    Pillow's float32 TIFFs are, instead of a 'corrupt or truncated?' refusal."""
    a = np.random.default_rng(0).normal(100, 30, shape)
    cv2.imwrite(str(tmp_path / "x.tif"), a)
    gray = a if a.ndim == 2 else a.mean(-1)
    want = (gray - gray.min()) / (gray.max() - gray.min())
    img = read_image(tmp_path / "x.tif").image
    check_float_image(img)
    np.testing.assert_allclose(img, want, atol=1e-6)


def test_palette_png(tmp_path):
    idx = np.zeros((H, W), np.uint8)
    idx[:, W // 2 :] = 1
    im = Image.fromarray(idx, mode="P")
    im.putpalette([10, 10, 10, 240, 240, 240] + [0, 0, 0] * 254)
    im.save(tmp_path / "pal.png")
    with Image.open(tmp_path / "pal.png") as check:
        assert check.mode == "P"
    img = read_image(tmp_path / "pal.png").image
    check_float_image(img)
    np.testing.assert_allclose(img[:, : W // 2], 10 / 255, atol=1e-6)
    np.testing.assert_allclose(img[:, W // 2 :], 240 / 255, atol=1e-6)


def test_jpeg(tmp_path):
    a = np.full((H, W), 60, np.uint8)
    a[:, W // 2 :] = 200
    Image.fromarray(a).save(tmp_path / "x.jpg", quality=95)
    img = read_image(tmp_path / "x.jpg").image
    check_float_image(img)
    # lossy: compare away from the edge
    assert abs(float(img[:, 4:16].mean()) - 60 / 255) < 3 / 255
    assert abs(float(img[:, -16:-4].mean()) - 200 / 255) < 3 / 255


@pytest.mark.parametrize("dtype,top", [(np.uint8, 255.0), (np.uint16, 65535.0)])
def test_tiff(tmp_path, dtype, top):
    a = (np.arange(H * W).reshape(H, W) * (1 if dtype == np.uint8 else 31)) % (int(top) + 1)
    a = a.astype(dtype)
    Image.fromarray(a).save(tmp_path / "x.tif")
    img = read_image(tmp_path / "x.tif").image
    check_float_image(img)
    np.testing.assert_allclose(img, a / top, atol=1e-6)


def _tiff(path, a: np.ndarray, photometric: int) -> None:
    """A one-strip uncompressed gray TIFF with the PhotometricInterpretation given (Pillow
    writes only BlackIsZero)."""
    h, w = a.shape
    data = a.astype(a.dtype.newbyteorder("<")).tobytes()
    fmt = 3 if a.dtype.kind == "f" else 1  # SampleFormat: float, unsigned
    tags = [(256, w), (257, h), (258, 8 * a.itemsize), (259, 1), (262, photometric)]
    tags += [(273, 8 + 2 + 12 * 10 + 4), (277, 1), (278, h), (279, len(data)), (339, fmt)]
    head = b"II*\0" + struct.pack("<IH", 8, len(tags))
    head += b"".join(struct.pack("<HHII", tag, 4, 1, value) for tag, value in tags)
    path.write_bytes(head + struct.pack("<I", 0) + data)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_tiff_stored_white_is_zero_is_read_as_a_positive(tmp_path, dtype):
    """PhotometricInterpretation 0 (as DICOM MONOCHROME1): the film comes out as displayed,
    bones white, at every bit depth (Pillow turns only 8-bit ones)."""
    top = {np.uint8: 255, np.uint16: 4095, np.float32: 1.0}[dtype]
    film = ramp8() / 255.0  # the film as displayed
    for photometric, stored in ((1, film * top), (0, (1 - film) * top)):
        _tiff(tmp_path / "x.tif", np.round(stored).astype(dtype) if top > 1 else
              stored.astype(dtype), photometric)  # fmt: skip
        got = read_image(tmp_path / "x.tif").image
        check_float_image(got)
        np.testing.assert_allclose(got, film, atol=1 / 255 if top > 1 else 1e-6)


def test_bmp_and_gif(tmp_path):
    a = ramp8()
    Image.fromarray(a).save(tmp_path / "x.bmp")
    np.testing.assert_allclose(read_image(tmp_path / "x.bmp").image, a / 255, atol=1e-6)
    b = np.where(ramp8() > 127, 255, 0).astype(np.uint8)
    Image.fromarray(b).save(tmp_path / "x.gif")
    np.testing.assert_allclose(read_image(tmp_path / "x.gif").image, b / 255, atol=1e-6)


def test_read_mask_png_gif_and_bilevel(tmp_path):
    m = np.zeros((H, W), np.uint8)
    m[10:30, 5:20] = 255
    Image.fromarray(m).save(tmp_path / "m.gif")
    Image.fromarray(m > 0).save(tmp_path / "m1.png")  # mode "1"
    Image.fromarray(m).save(tmp_path / "m.png")
    for name in ("m.gif", "m1.png", "m.png"):
        got = read_mask(tmp_path / name)
        assert got.dtype == np.uint8 and got.shape == (H, W)
        np.testing.assert_array_equal(got, m, err_msg=name)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_mask(tmp_path / "missing.png")


def test_raster_not_flipped(tmp_path):
    Image.fromarray(ramp8()).save(tmp_path / "g.png")
    assert read_image(tmp_path / "g.png").flipped is False


def test_a_mask_drawn_on_a_transparent_sheet_is_read_over_black(tmp_path):
    """White lungs on a transparent (white) background, as drawing tools export them: the
    background is not lung (it was read as white, and the mask refused as inverted)."""
    rgba = np.full((H, W, 4), 255, np.uint8)
    rgba[..., 3] = 0
    rgba[10:30, 5:20, 3] = 255  # the lungs: opaque white
    Image.fromarray(rgba).save(tmp_path / "m.png")
    want = np.zeros((H, W), np.uint8)
    want[10:30, 5:20] = 255
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), want)
    Image.fromarray(rgba[..., [0, 3]]).save(tmp_path / "la.png")  # gray + alpha
    np.testing.assert_array_equal(read_mask(tmp_path / "la.png"), want)
