"""Load and check the (film, mask) pairs that `datasets.discover` found: readable, mask size =
film size, the same EXIF orientation, binary, not empty. Problems name the file and what to do."""

from __future__ import annotations

import functools
import logging
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from .datasets import Problem, Sample
from .files import is_jsrt
from .imageio import ImageReadError, Radiograph, orientation, read_image, read_mask
from .jsrt import at_mask_size
from .preprocess import upright

log = logging.getLogger(__name__)

LOSSY_MASKS = (".jpg", ".jpeg")  # compression smears 0/255 into near-0/near-255 values
MIN_LEVEL = 16  # a JPEG mask's lung level below this: 0/1 values (pure blue reads 29)
MAX_MID_GRAY = 0.01  # of the pixels, away from the outline: none in a compressed 0/255 mask
OUTLINE_MARGIN = 2  # px either side of the outline where antialiasing and ringing lie
MAX_LUNG_FRACTION = 0.75  # of the image: a mask past it is no lung mask (the data: at most 46%)


def binary_mask(raw: np.ndarray, path: Path) -> np.ndarray:
    """A mask file's gray values -> uint8 {0,1}. Lossless files (PNG, TIFF, BMP, GIF) must hold
    0 and at most one other value (0/1, 0/255). JPEG masks are thresholded at half their
    lung level `hi` (`_level`: 255 for white, 76 for a red mask read as gray), with one warning
    per mask folder. A JPEG is refused when more than 1% of its pixels are mid-gray (hi/4..3*hi/4)
    farther than 2 px from the outline of the thresholded mask: compression and antialiasing
    blur only the outline, at any image size, whereas a film or a probability map is gray
    inside. A JPEG whose level is under 16 (a 0/1 mask; no compressed 0/255 or pure-coloured
    mask is that dark: blue reads 29) is refused too. Raises ValueError."""
    if path.suffix.lower() not in LOSSY_MASKS:
        values = np.unique(raw)
        if len(values) > 2 or (len(values) == 2 and values[0] != 0):
            raise ValueError(
                f"{path}: mask is not binary ({len(values)} gray levels); save it as 0/255 PNG "
                "or threshold it"
            )
        return (raw > 0).astype(np.uint8)
    if not raw.any():
        return np.zeros(raw.shape, np.uint8)  # empty: load_pair says so
    hi = _level(raw)
    if hi < MIN_LEVEL:
        raise ValueError(
            f"{path}: JPEG mask's lungs are at most {hi} bright (under {MIN_LEVEL}): a 0/1 mask? "
            "Save it as 0/255, or as PNG"
        )
    level = raw.astype(np.int32) * 4  # x4: the band's edges hi/4, hi/2, 3*hi/4 in integers
    mask = (level >= 2 * hi).astype(np.uint8)
    mid = np.count_nonzero((level >= hi) & (level <= 3 * hi) & ~_near_outline(mask)) / raw.size
    if mid > MAX_MID_GRAY:
        raise ValueError(
            f"{path}: mask is not binary: {mid:.1%} of its pixels are mid-gray "
            f"({-(-hi // 4)}..{3 * hi // 4}) away from the mask's outline, where JPEG "
            f"compression leaves none ({MAX_MID_GRAY:.0%} at most); is it a film or a "
            "probability map? Save the lung mask as 0/255 PNG"
        )
    _thresholded(path.parent)
    return mask


def _level(raw: np.ndarray) -> int:
    """A JPEG mask's lung level: the brightest value a whole 3x3 patch holds (raw.max() where
    none is nonzero). Not raw.max(): ringing at the outline overshoots a coloured mask's level
    by up to half (blue, 29 as gray: 42 at quality 75)."""
    return int(cv2.erode(raw, np.ones((3, 3), np.uint8)).max()) or int(raw.max())


def _near_outline(mask: np.ndarray) -> np.ndarray:
    """bool: pixels within OUTLINE_MARGIN px of the outline (3x3 dilation XOR erosion) of a
    {0,1} mask."""
    square = np.ones((3, 3), np.uint8)
    outline = cv2.dilate(mask, square) ^ cv2.erode(mask, square)
    grow = np.ones((2 * OUTLINE_MARGIN + 1,) * 2, np.uint8)
    return cv2.dilate(outline, grow).astype(bool)


@functools.cache
def _thresholded(folder: Path) -> None:
    """Says once per mask folder (and process), not once per file, that JPEG masks were read."""
    log.warning(
        "JPEG masks in %s were thresholded at 128 (white masks; coloured ones at half their "
        "level), as lossy compression blurs 0/255; save masks as PNG to use them exactly as "
        "drawn", folder
    )  # fmt: skip


def load_pair(s: Sample) -> tuple[np.ndarray, np.ndarray]:
    """Read and check one pair -> (image float32 HxW [0,1], lung mask uint8 {0,1}), both upright
    (`preprocess.upright`: a DICOM whose header says it is displayed mirrored or upside down is
    turned, as predict turns it). Raises ValueError/FileNotFoundError naming the file and what
    to do."""
    film, mask = load_film_pair(s)
    return film.image, mask


def load_film_pair(s: Sample) -> tuple[Radiograph, np.ndarray]:
    """`load_pair` with the film as a Radiograph: upright, its header's spacing and view kept
    (for measurements and the quality flags, as predict has them)."""
    film = read_image(s.image)
    image = film.image
    mask = np.zeros(image.shape, dtype=np.uint8)
    turn = orientation(s.image)
    for p in s.masks:
        raw = read_mask(p)
        if (mask_turn := orientation(p)) != turn:
            raise ValueError(
                f"{p}: the mask's EXIF orientation ({mask_turn}) differs from its image "
                f"{s.image.name}'s ({turn}); both are read as displayed, so one of them would "
                "be turned against the other: save both upright without an EXIF orientation"
            )
        if raw.shape != image.shape and is_jsrt(s.image) and not mask.any():  # SCR: 1024 px
            if small := at_mask_size(film, raw.shape):
                film, image, mask = small, small.image, np.zeros(raw.shape, np.uint8)
        if raw.shape != image.shape:
            raise ValueError(
                f"{p}: mask is {raw.shape[1]}x{raw.shape[0]} but image {s.image.name} "
                f"is {image.shape[1]}x{image.shape[0]}; resize the mask with "
                "nearest-neighbour or fix the pairing"
            )
        mask |= binary_mask(raw, p)
    if not mask.any():
        raise ValueError(f"{s.masks[0]}: mask is empty; draw the lungs or remove the pair")
    share, corners = mask.mean(), mask[:: mask.shape[0] - 1, :: mask.shape[1] - 1].all()
    if corners or share > MAX_LUNG_FRACTION:
        where = "all four corners of the image" if corners else f"{share:.0%} of the image"
        raise ValueError(
            f"{s.masks[0]}: mask covers {where}, which lungs never do; is it inverted? Lungs "
            "must be white (or 1) on black; invert it, or remove the pair"
        )
    turned = replace(film, image=upright(image, film), flipped=False, upside_down=False)
    return turned, upright(mask, film)


def check_pairs(samples: list[Sample], strict: bool = False):
    """Load every pair; return ([(sample, image, mask)], problems). `strict` raises on the first."""
    good, problems = [], []
    for s in samples:
        try:
            image, mask = load_pair(s)
        except (ValueError, FileNotFoundError, ImageReadError) as e:
            if strict:
                raise
            problems.append(Problem(str(s.image), str(e), "skipped"))
            continue
        good.append((s, image, mask))
    return good, problems


def summarize(used: int, problems: list[Problem]) -> str:
    lines = [f"{used} pair{'' if used == 1 else 's'} used, {len(problems)} skipped"]
    lines += [f"  {p}" for p in problems]
    return "\n".join(lines)
