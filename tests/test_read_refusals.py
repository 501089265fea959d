"""Files the readers refuse, with the file name in the message: missing, empty, text, truncated
or corrupt files, tiny images, and images over MAX_PIXELS refused from their header alone."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from conftest import ramp8
from PIL import Image

from lungseg.imageio import MAX_PIXELS, ImageReadError, read_image


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
