"""PNG files, the format lungseg reads most and writes all of: a fast reader for grayscale and
16-bit colour PNGs (`read_png`, used by `imageio.read_image`) and a fast writer for masks,
labels and overlays (`write_png`)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .exif import as_displayed, exif_orientation
from .files import replace_file
from .imageio import (
    BITS16,
    PNG_SIGNATURE,
    _check_size,
    _scale16,
    png_size,
)


def read_png(path: Path) -> np.ndarray | None:
    """PNGs decoded by OpenCV: 8- and 16-bit grayscale (the common case: the same pixels as
    Pillow's in 15% less time) and 16-bit colour, which Pillow cuts to 8 bits (`_gray16`); an
    eXIf orientation is applied as `exif.as_displayed` applies it. A header claiming over
    MAX_PIXELS is refused. None for anything else (other formats and colour types, files OpenCV
    cannot decode): Pillow reads those, and says why a broken file is broken. (Like any libpng
    reader, and unlike Pillow, it accepts a film whose only damage is a bad checksum in an
    optional chunk such as a text comment.)"""
    import cv2

    with open(path, "rb") as f:
        head = f.read(29)  # signature and IHDR: other files are not read twice
    if len(head) < 29 or not (size := png_size(head)):
        return None
    w, h = size
    _check_size(path, w, h)
    depth, colour = head[24], head[25]
    if not (colour == 0 and depth in (8, 16) or colour in (2, 4, 6) and depth == 16):
        return None
    data = np.fromfile(path, np.uint8)
    if data[-8:-4].tobytes() != b"IEND":  # truncated: Pillow's error
        return None
    arr = cv2.imdecode(_restored(data, w, h, head[24:29]), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.shape[:2] != (h, w):
        return None
    extra = _chunks(data, (b"eXIf", b"tRNS"))
    if arr.ndim == 3:  # tRNS on RGB: OpenCV makes it alpha; ignored, as for 8-bit RGB films
        img = _gray16(arr[..., :3] if colour == 2 else arr)
    else:
        img = np.divide(arr, np.float32(255), dtype=np.float32) if depth == 8 else _scale16(arr)
    return as_displayed(img, exif_orientation(extra[b"eXIf"])) if extra.get(b"eXIf") else img


CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # samples per pixel of the colour types read_png decodes
# `_restored` pays off up to about 2-3 MB of image data (1024 px 8-bit: half the time, 16-bit:
# 0.8x); past that its extra copies of the data cost more than the faster inflate saves
RESTORE_MAX = 3 << 20  # bytes (3 MiB)


def _restored(data: np.ndarray, w: int, h: int, ihdr: bytes) -> np.ndarray:
    """A PNG's bytes -> the same PNG with its image data inflated by ISA-L and put back in one
    IDAT chunk as stored (uncompressed) deflate blocks, which libpng copies instead of
    inflating: the zlib in OpenCV inflates 2-3x slower than ISA-L, and inflating is half of
    decoding a small film (benchmarks/README.md, round 4; the same pixels). `data` as it is
    when isal is missing, the film is interlaced, its zlib header declares a window the data
    could outgrow (`_window_holds`), or its image data are not exactly right (a bad chunk
    checksum, a stream that ends early, runs long, has bytes after its end, or that ISA-L
    cannot inflate): libpng then decodes, or refuses, it as before; also films with over
    RESTORE_MAX bytes of image data (most 16-bit detector films), where copying them costs more
    than the faster inflate saves.
    (ISA-L is laxer than zlib in one respect: a stream with an incomplete Huffman code, which
    zlib refuses, is inflated; such a film is then read instead of refused.) `ihdr`: bit depth,
    colour type, compression, filter, interlace."""
    depth, colour, *_, interlace = ihdr
    if colour not in CHANNELS or depth not in (8, 16) or interlace:
        return data
    expected = h * (1 + (w * CHANNELS[colour] * depth + 7) // 8)  # a filter byte per row
    if expected > RESTORE_MAX:
        return data
    try:
        from isal import isal_zlib
    except ImportError:
        return data
    parts, first, end = [], None, None
    for at, size, kind in _walk(data):  # the chunks up to the end of the IDATs
        if kind != b"IDAT":
            if first is not None:
                end = at
                break
            continue
        body = data[at + 4 : at + 12 + size].tobytes()  # kind + body + CRC
        if len(body) != 8 + size or zlib.crc32(body[:-4]) != int.from_bytes(body[-4:], "big"):
            return data
        first = at if first is None else first
        parts.append(body[4:-4])
    stream = b"".join(parts)
    if end is None or not _window_holds(stream[:1], expected):
        return data
    try:
        inflate = isal_zlib.decompressobj()
        raw = inflate.decompress(stream, expected + 1)
    except isal_zlib.error:
        return data
    if len(raw) != expected or not inflate.eof or inflate.unused_data:
        return data
    idat = _chunk(b"IDAT", _stored(raw))
    return np.concatenate([data[:first], np.frombuffer(idat, np.uint8), data[end:]])


def _window_holds(cmf: bytes, expected: int) -> bool:
    """True when a zlib header's first byte declares deflate with a window that no distance of
    a stream inflating to `expected` bytes can exceed: 32 KB (the largest; 0x78), or a smaller
    one at least `expected` (libpng picks those for small images). ISA-L does not check the
    declared window, as zlib does, so another stream could inflate where libpng refuses it."""
    if len(cmf) != 1 or cmf[0] & 0x0F != 8 or cmf[0] >> 4 > 7:
        return False
    return cmf[0] >> 4 == 7 or expected <= 1 << ((cmf[0] >> 4) + 8)


def _stored(raw: bytes) -> bytes:
    """Bytes -> a zlib stream of stored deflate blocks (at most 65535 bytes each)."""
    n, block = len(raw), 65535
    parts = [b"\x78\x01"]  # zlib header: deflate, 32 KB window, no dictionary
    for i in range(0, max(n, 1), block):
        size = min(block, n - i)
        parts += [struct.pack("<BHH", i + block >= n, size, size ^ 0xFFFF), raw[i : i + size]]
    return b"".join([*parts, struct.pack(">I", zlib.adler32(raw))])


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(body, zlib.crc32(kind))
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _chunks(data: np.ndarray, kinds: tuple[bytes, ...]) -> dict[bytes, bytes]:
    """The bodies of the last chunk of each of `kinds` in a PNG (bytes as uint8; the last, as
    Pillow keeps it), found by walking the chunk lengths up to IEND (eXIf may come before or
    after the image data)."""
    found: dict[bytes, bytes] = {}
    for at, size, kind in _walk(data):
        if kind == b"IEND":
            break
        if kind in kinds:
            found[kind] = data[at + 8 : at + 8 + size].tobytes()
    return found


def _walk(data: np.ndarray) -> Iterator[tuple[int, int, bytes]]:
    """(offset, body length, kind) of each chunk of a PNG (bytes as uint8) in file order, by
    their length fields, from the one after the signature to the end of the data (IEND
    included: the callers stop where they need to)."""
    at = 8
    while at + 8 <= len(data):
        size = int.from_bytes(data[at : at + 4].tobytes(), "big")
        yield at, size, data[at + 4 : at + 8].tobytes()
        at += 12 + size


def _gray16(arr: np.ndarray) -> np.ndarray:
    """16-bit colour from OpenCV (HxWx3 BGR or HxWx4 BGRA) -> float32 HxW in [0,1]: the luma
    weights of Pillow's 8-bit conversion, over alpha on black as `to_gray_float`, divided by the
    significant bits of the colour channels as `_scale16` picks them (so 12-bit data in 16-bit
    RGB are not darkened, as 16-bit gray are not, and a faint alpha does not brighten them)."""
    b, g, r = (arr[..., i].astype(np.float32) for i in range(3))
    gray = np.rint(0.299 * r + 0.587 * g + 0.114 * b)
    if arr.shape[2] == 4:
        gray *= arr[..., 3] / np.float32(65535)
    top = next(t for t in BITS16 if t >= arr[..., :3].max())
    return np.divide(gray, np.float32(top), dtype=np.float32)


PREDICTED = b"Software\x00lungseg predict"  # tEXt chunk that marks predict's outputs
PREDICTED_AT = 33  # right after the signature and IHDR: a fixed place, read without decoding
FILM_KEY = b"lungseg film"  # tEXt keyword after PREDICTED: which film an output is of
STAMP_KEY = b"lungseg stamp"  # tEXt keyword after FILM_KEY in a mask: the film's file_stamp


def predicted(path: str | Path) -> bool:
    """True for a PNG that `lungseg predict` wrote (its tEXt mark after IHDR): an output that a
    new run may replace, and never a ground-truth mask, whatever table lists it or not."""
    return _marks(path) is not None


def predicted_marks(path: str | Path) -> tuple[str, str] | None:
    """For a PNG that `lungseg predict` wrote, (the film it is of, that film's stamp): the
    `film` and `stamp` given to `write_png` (predict writes a digest of the film's path and
    `files.file_stamp` of the film when read; masks only carry the stamp), each "" where the
    file does not say (outputs of lungseg before 2026-12-07, check sheets). None for any other
    file. One read of the file's first bytes."""
    marks = _marks(path)
    if marks is None:
        return None
    return marks.get(FILM_KEY, b"").decode("latin-1"), marks.get(STAMP_KEY, b"").decode("latin-1")


def _marks(path: str | Path) -> dict[bytes, bytes] | None:
    """A PNG that `predict` wrote -> its tEXt chunks after IHDR (keyword -> text); None for any
    other file. Only the file's first bytes are read."""
    try:
        with open(path, "rb") as f:
            head = f.read(PREDICTED_AT + 256)
    except OSError:
        return None
    if head[PREDICTED_AT + 4 : PREDICTED_AT + 8 + len(PREDICTED)] != b"tEXt" + PREDICTED:
        return None
    marks = {}
    for at, size, kind in _walk(np.frombuffer(head, np.uint8)):
        if at > 8 and kind != b"tEXt" or at + 12 + size > len(head):
            break  # (at 8: IHDR)
        key, _, text = head[at + 8 : at + 8 + size].partition(b"\0")
        marks[key] = text
    return marks


def write_png(
    path: str | Path,
    array: np.ndarray,
    palette: np.ndarray | None = None,
    mark: bool = False,
    film: str = "",
    stamp: str = "",
) -> None:
    """Write a uint8 HxW (gray: masks, labels) or HxWx3 (RGB) array as an 8-bit PNG. With
    `palette` (uint8 Nx3, N <= 256) the HxW array holds indices into it and is written as a
    palette PNG (overlays: a third of the bytes of RGB). `mark`: an output of `predict`
    (`predicted`), of the film `film` (ASCII, at most 64 characters) as it was when read
    (`stamp`: `files.file_stamp`); both read back by `predicted_marks`. Encoded by
    `_encode_png`."""
    array = np.asarray(array)
    if (
        array.dtype != np.uint8
        or not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3 and palette is None))
        or min(array.shape[:2], default=0) < 1
    ):
        raise ValueError(
            f"{path}: PNGs are written from uint8 HxW or HxWx3 (H, W >= 1), "
            f"got {array.dtype} {array.shape}"
        )
    if palette is not None:  # checked before encoding: a bad palette costs no compression
        palette = np.asarray(palette, np.uint8)
        if palette.ndim != 2 or palette.shape[1] != 3 or not 1 <= len(palette) <= 256:
            raise ValueError(f"palette must be uint8 Nx3 with 1 <= N <= 256, got {palette.shape}")
        if int(array.max(initial=0)) >= len(palette):
            raise ValueError(f"{path}: palette PNG needs uint8 HxW indices below {len(palette)}")
    if len(film) > 64 or not film.isascii() or len(stamp) > 64 or not stamp.isascii():
        raise ValueError(f"{path}: a film's marks are ASCII of at most 64 characters: {film!r} "
                         f"{stamp!r}")  # fmt: skip
    marks = [FILM_KEY + b"\0" + film.encode()] * bool(mark and film)
    marks += [STAMP_KEY + b"\0" + stamp.encode()] * bool(mark and stamp)
    replace_file(path, _encode_png(array, palette, mark, marks))  # (a kill leaves no half file)


def _encode_png(
    array: np.ndarray, palette=None, mark=False, marks: list[bytes] | None = None
) -> bytes:
    """uint8 HxW / HxWx3 (checked by write_png) -> PNG bytes, tuned for speed: every row gets the
    'up' filter (minus the row above; a filter search costs more than the compression) and is
    deflated by ISA-L at level 1 when `isal` is installed (an overlay of a 1024 px film: 2.3 ms,
    against 6-9 ms for zlib), else by zlib level 1 with run-length matching only (fast; films
    then compress a little less than with full zlib). `mark`: predict's tEXt mark, followed by
    a tEXt chunk of each of `marks` (keyword, NUL, text)."""
    h, w = array.shape[:2]
    rows = array.reshape(h, -1)
    data = np.empty((h, rows.shape[1] + 1), np.uint8)
    data[:, 0] = 2  # filter type 'up'; the first row's "row above" is zeros
    data[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=data[1:, 1:])  # mod 256, as PNG defines it
    colour = 2 if array.ndim == 3 else 0 if palette is None else 3  # RGB, gray, palette

    return b"".join(
        [
            PNG_SIGNATURE,
            _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)),
            _chunk(b"tEXt", PREDICTED) if mark else b"",
            *[_chunk(b"tEXt", text) for text in marks or []],
            _chunk(b"PLTE", palette.tobytes()) if palette is not None else b"",
            _chunk(b"IDAT", _deflate(data)),
            _chunk(b"IEND", b""),
        ]
    )


def _deflate(data: np.ndarray) -> bytes:
    try:
        from isal import isal_zlib

        return isal_zlib.compress(data, 1)
    except ImportError:
        z = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
        return z.compress(data) + z.flush()
