"""Raster films as they are displayed: EXIF orientation, and 16-bit colour PNGs at full depth."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from lungseg.cli import main
from lungseg.exif import exif_orientation
from lungseg.imageio import orientation as orientation_of
from lungseg.imageio import read_image, read_mask
from lungseg.metrics import confusion
from lungseg.model import DEFAULT_WEIGHTS
from lungseg.phantom import make_phantom

STORED = (np.arange(20 * 30) % 251).astype(np.uint8).reshape(20, 30)  # no symmetry


def _save(path: Path, array: np.ndarray, orientation: int) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(array).save(path, exif=exif)
    return path


# EXIF Orientation -> the displayed film, by the standard's wording (independent of the reader)
DISPLAYED = {
    1: STORED,
    2: np.fliplr(STORED),  # mirrored left-right
    3: np.rot90(STORED, 2),  # upside down
    4: np.flipud(STORED),  # mirrored top-bottom
    5: STORED.T,  # mirrored, then a quarter turn anticlockwise
    6: np.rot90(STORED, -1),  # a quarter turn clockwise
    7: np.rot90(np.fliplr(STORED), -1),  # mirrored, then a quarter turn clockwise
    8: np.rot90(STORED, 1),  # a quarter turn anticlockwise
}


@pytest.mark.parametrize("suffix", [".png", ".tif"])  # (Pillow writes uncompressed TIFFs)
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_gives_the_displayed_film(tmp_path, suffix, orientation):
    """Each of the 8 EXIF orientations, film and mask. (Pillow 13 opening an uncompressed TIFF
    by name scrambles orientations 5-8, exif_transpose included: lungseg opens a file object.)"""
    path = _save(tmp_path / f"f{suffix}", STORED, orientation)
    want = DISPLAYED[orientation]
    got = read_image(path).image
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want / np.float32(255))
    np.testing.assert_array_equal(read_mask(path), want)
    assert orientation_of(path) == orientation


def _png(array: np.ndarray, colour: int, before: bytes = b"", after: bytes = b"") -> bytes:
    """A PNG of `array` (uint8 or uint16, HxW or HxWxC), with chunks `before` and `after` the
    image data (OpenCV and Pillow cannot write 16-bit gray+alpha nor place eXIf after IDAT)."""
    h, depth = array.shape[0], array.dtype.itemsize * 8
    rows = b"".join(b"\x00" + array[i].astype(f">u{depth // 8}").tobytes() for i in range(h))
    ihdr = struct.pack(">IIBBBBB", array.shape[1], h, depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + before
        + _chunk(b"IDAT", zlib.compress(rows))
        + after
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(body, zlib.crc32(kind))
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _exif_chunk(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _chunk(b"eXIf", exif.tobytes().removeprefix(b"Exif\x00\x00"))  # PNG: bare TIFF


@pytest.mark.parametrize("where", ["before", "after"])
def test_png_exif_before_or_after_the_image_data(tmp_path, where):
    """PNG allows eXIf on either side of the image data; a 16-bit colour film keeps its depth."""
    (tmp_path / "g.png").write_bytes(_png(STORED, 0, **{where: _exif_chunk(6)}))
    np.testing.assert_array_equal(
        read_image(tmp_path / "g.png").image, DISPLAYED[6] / np.float32(255)
    )
    assert orientation_of(tmp_path / "g.png") == 6
    rgb = np.dstack([STORED.astype(np.uint16) * 16] * 3)  # 12-bit data
    (tmp_path / "c.png").write_bytes(_png(rgb, 2, **{where: _exif_chunk(8)}))
    img = read_image(tmp_path / "c.png").image
    assert len(np.unique(img)) == len(np.unique(STORED))  # not cut to 8 bits
    np.testing.assert_allclose(img, DISPLAYED[8] * 16.0 / 4095, atol=1e-6)


def test_exif_orientation_of_a_jpeg_and_of_a_mask(tmp_path):
    smooth = np.repeat(np.linspace(0, 255, 40, dtype=np.uint8)[None], 24, axis=0)
    path = _save(tmp_path / "photo.jpg", smooth, 6)  # displayed: turned a quarter clockwise
    img = read_image(path).image
    assert img.shape == (40, 24)
    np.testing.assert_allclose(img, np.rot90(smooth, -1) / 255, atol=0.03)
    mask = _save(tmp_path / "m.png", (smooth > 127).astype(np.uint8) * 255, 6)
    np.testing.assert_array_equal(read_mask(mask), np.rot90(smooth > 127, -1) * 255)


def test_a_broken_exif_block_reads_the_film_as_stored(tmp_path):
    path = tmp_path / "f.jpg"
    Image.fromarray(STORED).save(path, exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7f")
    assert read_image(path).image.shape == STORED.shape
    assert orientation_of(path) == 1
    (tmp_path / "g.png").write_bytes(_png(STORED, 0, before=_chunk(b"eXIf", b"MM\x00*junk")))
    np.testing.assert_array_equal(read_mask(tmp_path / "g.png"), STORED)
    assert orientation_of(tmp_path / "g.png") == 1
    assert exif_orientation(b"\x00" * 40) == exif_orientation(b"II*\x00\x08\x00") == 1


@pytest.mark.parametrize("value", [0, 9, 65535])
def test_an_orientation_outside_1_to_8_reads_the_film_as_stored(tmp_path, value):
    """Film and mask alike, so a pair with such a tag on one side is not refused."""
    for suffix in (".png", ".jpg", ".tif"):
        path = _save(tmp_path / f"f{suffix}", STORED, value)
        assert read_image(path).image.shape == STORED.shape
        assert read_mask(path).shape == STORED.shape and orientation_of(path) == 1


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="shipped model not present")
def test_a_film_stored_sideways_with_exif_is_segmented_upright(tmp_path):
    """A phone photo of a film: pixels stored sideways, EXIF 6 turns them upright. The mask
    comes out at the displayed size and follows the lungs (the model never saw a sideways chest)."""
    ph = make_phantom(size=384, seed=3, height=448)
    film = (ph.image * 255 + 0.5).astype(np.uint8)
    (tmp_path / "in").mkdir()
    _save(tmp_path / "in" / "photo.jpg", np.rot90(film), 6)  # stored a quarter turn anticlockwise
    assert main(["predict", str(tmp_path / "in"), "--out", str(tmp_path / "o")]) == 0
    mask = np.asarray(Image.open(tmp_path / "o" / "photo_mask.png"))
    assert mask.shape == film.shape
    assert confusion(mask > 0, ph.lungs).dice > 0.85


def test_16bit_colour_pngs_keep_their_depth(tmp_path):
    """Pillow reads 16-bit RGB(A) and gray+alpha PNGs as 8 bits; 12-bit data then came out
    nearly black and with 16 gray levels. They are read at full depth and scaled like 16-bit
    gray: a 12-bit ramp in all three channels reads as the same ramp in gray."""
    ramp = np.linspace(0, 4095, 32 * 48).reshape(32, 48).round().astype(np.uint16)
    gray = tmp_path / "gray.png"
    cv2.imwrite(str(gray), ramp)
    cv2.imwrite(str(tmp_path / "rgb.png"), np.dstack([ramp] * 3))
    opaque = np.full_like(ramp, 65535)
    cv2.imwrite(str(tmp_path / "rgba.png"), np.dstack([ramp, ramp, ramp, opaque]))
    (tmp_path / "ga.png").write_bytes(_png(np.dstack([ramp, opaque]), colour=4))
    want = read_image(gray).image
    assert want.max() == 1 and len(np.unique(want)) > 1000
    for name in ("rgb", "rgba", "ga"):
        np.testing.assert_allclose(read_image(tmp_path / f"{name}.png").image, want, atol=1e-6)
    half = np.dstack([ramp, ramp, ramp, opaque // 2])  # alpha over black, as 8-bit RGBA films
    cv2.imwrite(str(tmp_path / "half.png"), half)
    np.testing.assert_allclose(read_image(tmp_path / "half.png").image, want / 2, atol=1e-3)
    faint = np.dstack([ramp, ramp, ramp, opaque // 8])  # the colour's bits set the scale
    cv2.imwrite(str(tmp_path / "faint.png"), faint)
    np.testing.assert_allclose(read_image(tmp_path / "faint.png").image, want / 8, atol=1e-3)


def test_16bit_rgb_transparency_is_ignored_as_for_8bit_rgb(tmp_path):
    """A tRNS colour key on RGB (OpenCV decodes it as alpha) does not black out those pixels."""
    ramp = np.linspace(0, 4095, 32 * 48).reshape(32, 48).round().astype(np.uint16)
    grey = int(ramp[10, 10])
    key = _chunk(b"tRNS", struct.pack(">HHH", grey, grey, grey))  # a mid grey is "transparent"
    (tmp_path / "k.png").write_bytes(_png(np.dstack([ramp] * 3), 2, before=key))
    (tmp_path / "g.png").write_bytes(_png(ramp, 0))
    want = read_image(tmp_path / "g.png").image
    np.testing.assert_allclose(read_image(tmp_path / "k.png").image, want, atol=1e-6)


def test_16bit_colour_channels_are_weighted_as_pillow_weights_8bit_colour(tmp_path):
    bgr = np.zeros((20, 20, 3), np.uint16)
    bgr[..., 2] = 65535  # pure red
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    red = np.zeros((20, 20, 3), np.uint8)
    red[..., 0] = 255
    Image.fromarray(red).save(tmp_path / "red8.png")
    red16, red8 = (read_image(tmp_path / f"{n}.png").image for n in ("red", "red8"))
    assert red16.mean() == pytest.approx(red8.mean(), abs=0.005)
