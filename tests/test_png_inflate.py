"""read_png inflates a PNG's image data with ISA-L and hands libpng stored blocks
(`png._restored`): the same pixels as libpng decoding the file itself, for every kind of PNG it
reads; a file whose image data are not exactly right is left to libpng, which decodes or
refuses it as before."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from lungseg.png import _chunk, _restored, read_png

pytest.importorskip("isal")
RNG = np.random.default_rng(3)


def _film(shape, dtype) -> np.ndarray:
    """Gradients plus noise, a different one per channel: the encoder picks every filter type."""
    top = np.iinfo(dtype).max
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    layers = [
        ((yy * (7 + c) + xx * (3 + c)) % (top // 3) + RNG.integers(0, top // 3, shape[:2]))
        for c in range(shape[2] if len(shape) == 3 else 1)
    ]
    return np.dstack(layers).astype(dtype) if len(shape) == 3 else layers[0].astype(dtype)


def _plain(path) -> np.ndarray | None:
    return cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize(
    "shape, dtype",
    [
        ((67, 45), np.uint8),
        ((300, 211), np.uint16),
        ((50, 31, 3), np.uint16),
        ((40, 33, 4), np.uint16),
        ((700, 500), np.uint8),
    ],  # fmt: skip
)
def test_same_pixels_as_libpng(tmp_path, shape, dtype):
    path = tmp_path / "f.png"
    cv2.imwrite(str(path), _film(shape, dtype), [cv2.IMWRITE_PNG_COMPRESSION, 6])
    data = np.fromfile(path, np.uint8)
    restored = _restored(data, shape[1], shape[0], data[24:29].tobytes())
    assert restored.tobytes() != data.tobytes()  # the fast path was taken
    np.testing.assert_array_equal(cv2.imdecode(restored, cv2.IMREAD_UNCHANGED), _plain(path))
    assert read_png(path) is not None


def _idat_split(data: bytes, parts: int) -> bytes:
    """The same PNG with its image data spread over `parts` IDAT chunks."""
    at = data.index(b"IDAT") - 4
    size = int.from_bytes(data[at : at + 4], "big")
    body = data[at + 8 : at + 8 + size]
    cut = np.linspace(0, size, parts + 1).astype(int)
    idats = b"".join(_chunk(b"IDAT", body[a:b]) for a, b in zip(cut[:-1], cut[1:], strict=True))
    return data[:at] + idats + data[at + 12 + size :]


def test_several_idat_chunks(tmp_path):
    film = _film((120, 90), np.uint8)
    path = tmp_path / "f.png"
    path.write_bytes(_idat_split(cv2.imencode(".png", film)[1].tobytes(), 5))
    data = np.fromfile(path, np.uint8)
    assert _restored(data, 90, 120, data[24:29].tobytes()).tobytes() != data.tobytes()
    np.testing.assert_array_equal(read_png(path) * 255, film.astype(np.float32))


def _damaged(data: bytes, how: str) -> bytes:
    at = data.index(b"IDAT") - 4
    size = int.from_bytes(data[at : at + 4], "big")
    body = bytearray(data[at + 8 : at + 8 + size])
    if how == "crc":  # a flipped bit in the image data: its chunk checksum no longer holds
        body[size // 2] ^= 0x10
        return data[:at + 8] + bytes(body) + data[at + 8 + size :]  # fmt: skip
    if how == "short":  # the stream ends early (valid chunk, too few rows)
        raw = zlib.decompress(bytes(body))
        body = zlib.compress(raw[: len(raw) // 2])
    elif how == "long":  # more rows than the header says
        raw = zlib.decompress(bytes(body))
        body = zlib.compress(raw + raw[: len(raw) // 3])
    elif how == "trailing":  # bytes after the end of the zlib stream
        body = bytes(body) + b"\x00" * 7
    elif how == "broken":  # not deflate at all
        body = b"\x78\x01" + bytes(RNG.integers(0, 256, size, dtype=np.uint8))
    return data[:at] + _chunk(b"IDAT", bytes(body)) + data[at + 12 + size :]


@pytest.mark.parametrize("how", ["crc", "short", "long", "trailing", "broken"])
def test_damaged_image_data_is_left_to_libpng(tmp_path, how):
    film = _film((64, 48), np.uint8)
    path = tmp_path / "f.png"
    path.write_bytes(_damaged(cv2.imencode(".png", film)[1].tobytes(), how))
    data = np.fromfile(path, np.uint8)
    assert _restored(data, 48, 64, data[24:29].tobytes()) is data  # untouched
    plain = _plain(path)
    got = read_png(path)
    if plain is None or plain.shape != film.shape:
        assert got is None  # Pillow then reports the file
    else:
        np.testing.assert_array_equal(got * 255, plain.astype(np.float32))


def test_interlaced_is_left_to_libpng(tmp_path):
    """(A PNG marked Adam7-interlaced in its header: libpng deinterlaces, or refuses, it.)"""
    film = cv2.imencode(".png", _film((40, 30), np.uint8))[1].tobytes()
    ihdr = film[16:28] + b"\x01"  # interlace method 1
    path = tmp_path / "f.png"
    path.write_bytes(film[:8] + _chunk(b"IHDR", ihdr) + film[33:])
    data = np.fromfile(path, np.uint8)
    assert data[28] == 1 and _restored(data, 30, 40, data[24:29].tobytes()) is data
    plain = _plain(path)
    got = read_png(path)
    assert got is None if plain is None else np.array_equal(got * 255, plain.astype(np.float32))


def test_stored_blocks_of_any_length():
    from lungseg.png import _stored

    for n in (1, 65534, 65535, 65536, 3 * 65535 + 17):
        raw = bytes(RNG.integers(0, 256, n, dtype=np.uint8))
        assert zlib.decompress(_stored(raw)) == raw
    assert struct.unpack(">I", _stored(b"ab")[-4:])[0] == zlib.adler32(b"ab")


def test_large_image_data_are_left_to_libpng(tmp_path, monkeypatch):
    """Past RESTORE_MAX bytes of image data, copying them costs more than ISA-L saves."""
    import lungseg.png as png

    film = _film((64, 48), np.uint8)
    data = np.frombuffer(cv2.imencode(".png", film)[1].tobytes(), np.uint8)
    assert _restored(data, 48, 64, data[24:29].tobytes()) is not data
    monkeypatch.setattr(png, "RESTORE_MAX", 64 * 49 - 1)  # one byte short of this film's
    assert _restored(data, 48, 64, data[24:29].tobytes()) is data


@pytest.mark.parametrize("cmf", [0x88, 0x08, 0x07])  # 64 KB (invalid), 256 bytes, not deflate
def test_an_unusual_zlib_header_is_left_to_libpng(tmp_path, cmf):
    """ISA-L does not check the window a zlib header declares, as zlib does: a window smaller
    than the image data (which a distance could then exceed) is left to libpng."""
    data = cv2.imencode(".png", _film((64, 48), np.uint8))[1].tobytes()
    at = data.index(b"IDAT") - 4
    size = int.from_bytes(data[at : at + 4], "big")
    body = bytearray(data[at + 8 : at + 8 + size])
    body[0] = cmf
    body[1] = (31 - (cmf * 256) % 31) % 31  # FCHECK: the header stays well-formed otherwise
    damaged = np.frombuffer(
        data[:at] + _chunk(b"IDAT", bytes(body)) + data[at + 12 + size :], np.uint8
    )
    assert _restored(damaged, 48, 64, damaged[24:29].tobytes()) is damaged
