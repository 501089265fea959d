"""EXIF orientation: a film stored sideways or mirrored, with an Orientation tag (photos of
films, some JPEG/TIFF/PNG exports), is turned to how viewers and OpenCV's imread display it."""

from __future__ import annotations

import numpy as np
from PIL import Image

# EXIF Orientation 2..8 -> (transpose, then flip rows, flip columns): stored pixels -> displayed
EXIF_ORIENTATION = {2: (0, 0, 1), 3: (0, 1, 1), 4: (0, 1, 0), 5: (1, 0, 0), 6: (1, 0, 1)}
EXIF_ORIENTATION |= {7: (1, 1, 1), 8: (1, 1, 0)}


def as_displayed(arr: np.ndarray, orientation: int) -> np.ndarray:
    """An HxW array of stored pixels -> as displayed: turned and flipped by its EXIF Orientation
    (2..8; other values: as stored), as viewers and OpenCV's imread show it (photos of films,
    some JPEG/TIFF/PNG exports). A film stored sideways is then segmented upright, and its mask
    and overlay come out the displayed size (width and height swapped for a quarter turn)."""
    turn = EXIF_ORIENTATION.get(orientation)
    if turn is None:
        return arr
    transpose, rows, cols = turn
    a = arr.T if transpose else arr
    return np.ascontiguousarray(a[:: -1 if rows else 1, :: -1 if cols else 1])


def pil_orientation(im: Image.Image) -> int:
    """The EXIF Orientation of an open image, read as the PNG reader and OpenCV read it: from
    the EXIF block only (an XMP orientation is ignored). TIFF: the tag of its first directory,
    which Pillow 13 applies itself when it loads the pixels, and then removes."""
    tags = getattr(im, "tag_v2", None)
    if tags is not None:
        return _valid(tags.get(0x0112, 1))
    raw = im.info.get("exif")
    return exif_orientation(raw) if raw else 1


def exif_orientation(exif: bytes) -> int:
    """The Orientation of a raw EXIF block (1, as stored, when it has none, one outside 1..8, or
    the block is broken)."""
    try:
        tags = Image.Exif()
        tags.load(exif)
        return _valid(tags.get(0x0112, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block is not a broken film: read as stored
        return 1


def _valid(orientation) -> int:
    return orientation if type(orientation) is int and 1 <= orientation <= 8 else 1
