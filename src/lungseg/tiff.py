"""What is particular to TIFF films: several pages (the largest is the film), float64 samples
that Pillow cannot open (read by OpenCV), and negatives stored as WhiteIsZero."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .imageio import MODES16, _check_size, _minmax, imdecode


def largest_page(im: Image.Image, most: int = 64) -> None:
    """A TIFF of several pages turned to its largest (of the first `most`): some scanners and
    converters write a thumbnail first (a reduced-resolution page). Other formats, and a TIFF
    whose later pages cannot be read (a bad page offset): the first page."""
    if im.format != "TIFF":
        return
    try:
        sizes = []
        for k in range(min(im.n_frames, most)):
            im.seek(k)
            sizes.append(im.size[0] * im.size[1])
        im.seek(int(np.argmax(sizes)))
    except Exception:  # noqa: BLE001 - Pillow raises several types for broken page chains
        im.seek(0)


def opencv_tiff(path: Path) -> np.ndarray | None:
    """A TIFF that Pillow cannot open (float64 samples) read by OpenCV, stretched to
    [0,1] as Pillow's float TIFFs are (`_minmax`; colour averaged), or None."""
    with open(path, "rb") as f:
        if f.read(4) not in (b"II*\0", b"MM\0*"):
            return None
    arr = imdecode(path, cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
    if arr is None or arr.dtype.kind != "f" or arr.ndim not in (2, 3):
        return None  # (integer TIFFs Pillow cannot open are refused as before)
    _check_size(path, arr.shape[1], arr.shape[0])
    gray = _minmax(arr if arr.ndim == 2 else arr[..., :3].mean(-1), path)
    alpha = arr[..., 3] if arr.ndim == 3 and arr.shape[2] == 4 else None  # over black
    return gray if alpha is None else gray * np.clip(alpha, 0, 1).astype(np.float32)


def white_is_zero(im: Image.Image) -> bool:
    """A TIFF stored as a negative (PhotometricInterpretation 0, WhiteIsZero, as DICOM's
    MONOCHROME1: some film digitisers write it) that Pillow leaves so: it turns only 1- and
    8-bit ones, not 16-bit, 32-bit or float."""
    tags = getattr(im, "tag_v2", None)
    return bool(tags) and tags.get(262) == 0 and im.mode in (*MODES16, "I", "F")
