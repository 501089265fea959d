"""Every reader returns float32 HxW in [0,1] with the right values; bad files are refused with
the file name in the message."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from conftest import IMG_H, IMG_W, check_float_image, ramp8, ramp16
from PIL import Image

from lungseg.imageio import (
    MAX_PIXELS,
    ImageReadError,
    _read_gray_png,
    from_array,
    read_image,
    read_mask,
    to_gray_float,
)

H, W = IMG_H, IMG_W


# ---------------------------------------------------------------- rasters


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
    fast = _read_gray_png(tmp_path / "g.png")
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
        assert _read_gray_png(tmp_path / name) is None, name


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


# ---------------------------------------------------------------- refusals


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.png"):
        read_image(tmp_path / "nothere.png")


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"empty\.png.*0 bytes"):
        read_image(p)


def test_text_file_named_png(tmp_path):
    p = tmp_path / "readme.png"
    p.write_text("this is text, not an image\n" * 10)
    with pytest.raises(ValueError, match="readme.png"):
        read_image(p)


def test_truncated_png(tmp_path):
    Image.fromarray(ramp8()).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    p = tmp_path / "cut.png"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="cut.png"):
        read_image(p)


def test_corrupt_bytes_with_png_signature(tmp_path):
    p = tmp_path / "corrupt.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(ImageReadError, match="corrupt.png"):
        read_image(p)


def test_tiny_image_refused(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "tiny.png")
    with pytest.raises(ImageReadError, match=r"tiny\.png.*4x4"):
        read_image(tmp_path / "tiny.png")


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit gray
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize("size", [(60000, 60000), (19000, 19000), (16001, 8000), (8000, 16001)])
def test_oversized_png_refused_from_its_header(tmp_path, size):
    """Only the header is read: a claim over MAX_PIXELS is refused before any decoding, with
    the size, the limit and what to do."""
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_header_only(*size))
    assert p.stat().st_size < 200
    w, h = size
    with pytest.raises(
        ImageReadError, match=rf"bomb\.png: {w}x{h} px.*128 MP limit.*downsample it"
    ):
        read_image(p)


def test_size_limit_admits_a_film_digitised_at_43_um(tmp_path):
    """16000x8000 (128 MP) is within the limit, and so is a 14x17" film at 43 um (8300x10000):
    these header-only PNGs fail for their missing pixels, not for their size."""
    assert 16000 * 8000 == MAX_PIXELS
    p = tmp_path / "scan.png"
    p.write_bytes(_png_header_only(16000, 8000))
    with pytest.raises(ImageReadError, match=r"scan\.png: not a readable image"):
        read_image(p)
    p.write_bytes(_png_header_only(8300, 10000))
    with pytest.raises(ImageReadError, match=r"scan\.png: not a readable image"):
        read_image(p)


def _gif_header_only(width: int, height: int) -> bytes:
    """A GIF whose header claims width x height, with no pixels."""
    screen = struct.pack("<HHBBB", width, height, 0, 0, 0)
    image = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0)
    return b"GIF89a" + screen + image + b"\x08\x00;"


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("size", [(12000, 12000), (20000, 20000)])
def test_oversized_pillow_image_refused(tmp_path, size):
    """Formats Pillow opens: over MAX_PIXELS refused before decoding (past twice the limit by
    Pillow's own bomb check), saying to downsample."""
    p = tmp_path / "big.gif"
    p.write_bytes(_gif_header_only(*size))
    with pytest.raises(ImageReadError, match=r"big\.gif: .*(limit|bomb).*downsample it first"):
        read_image(p)
