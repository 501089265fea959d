"""JSRT's films as the JSRT database distributes them: `JPCLN001.IMG`, raw 2048 x 2048 pixels
of 12 bits, big-endian, no header, 0.175 mm pixels, stored as a negative (0 = white). The SCR
lung masks of these films are drawn at 1024 x 1024 px (`at_mask_size`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from .files import JSRT_SIDE
from .imageio import Radiograph

PIXEL_MM = 0.175


def read_jsrt(path: Path) -> Radiograph:
    """A JSRT .IMG file -> Radiograph (bright = dense, as displayed; spacing 0.175 mm)."""
    raw = np.fromfile(path, dtype=">u2").reshape(JSRT_SIDE, JSRT_SIDE)
    image = np.subtract(4095, np.minimum(raw, 4095), dtype=np.float32) / np.float32(4095)
    return Radiograph(image, spacing=(PIXEL_MM, PIXEL_MM))


def at_mask_size(film: Radiograph, shape: tuple[int, int]) -> Radiograph | None:
    """A JSRT film shrunk to its SCR mask's size when that is half its own (2048 -> 1024 px,
    pixel spacing doubled), else None."""
    h, w = film.image.shape
    if (2 * shape[0], 2 * shape[1]) != (h, w):
        return None
    small = cv2.resize(film.image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    spacing = tuple(2 * s for s in film.spacing) if film.spacing else None
    return replace(film, image=small, spacing=spacing)
