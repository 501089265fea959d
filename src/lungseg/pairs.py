"""Load and check the (film, mask) pairs that `datasets.discover` found: readable, mask size =
film size, the same EXIF orientation, binary, not empty. Problems name the file and what to do."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

from .datasets import Problem, Sample
from .imageio import ImageReadError, orientation, read_image, read_mask

log = logging.getLogger(__name__)

LOSSY_MASKS = (".jpg", ".jpeg")  # compression smears 0/255 into near-0/near-255 values
MID_GRAY = (64, 191)  # a lossy mask's pixels in this range: not compression noise
MAX_MID_GRAY = 0.01  # of the pixels; JPEG at quality 10 leaves under 0.5% of a lung mask there


def binary_mask(raw: np.ndarray, path: Path) -> np.ndarray:
    """A mask file's gray values -> uint8 {0,1}. Lossless files (PNG, TIFF, BMP, GIF) must hold
    0 and at most one other value (0/1, 0/255). JPEG masks are thresholded at the midpoint
    (>= 128 -> lung), with one warning per mask folder, unless more than 1% of their pixels lie
    between 64 and 191: a gray-level image, not a compressed 0/255 mask. Raises ValueError."""
    if path.suffix.lower() not in LOSSY_MASKS:
        values = np.unique(raw)
        if len(values) > 2 or (len(values) == 2 and values[0] != 0):
            raise ValueError(
                f"{path}: mask is not binary ({len(values)} gray levels); save it as 0/255 PNG "
                "or threshold it"
            )
        return (raw > 0).astype(np.uint8)
    mid = np.count_nonzero((raw >= MID_GRAY[0]) & (raw <= MID_GRAY[1])) / raw.size
    if mid > MAX_MID_GRAY:
        raise ValueError(
            f"{path}: mask is not binary: {mid:.1%} of its pixels are mid-gray ({MID_GRAY[0]}.."
            f"{MID_GRAY[1]}), more than JPEG compression makes ({MAX_MID_GRAY:.0%} at most); "
            "is it a film or a probability map? Save the lung mask as 0/255 PNG"
        )
    mask = (raw >= 128).astype(np.uint8)
    if raw.any() and not mask.any():
        raise ValueError(
            f"{path}: JPEG mask has no pixel >= 128 (highest {raw.max()}): a 0/1 mask? Save it "
            "as 0/255, or as PNG"
        )
    _thresholded(path.parent)
    return mask


@functools.cache
def _thresholded(folder: Path) -> None:
    """Says once per mask folder (and process), not once per file, that JPEG masks were read."""
    log.warning(
        "JPEG masks in %s were thresholded at 128 (lossy compression blurs 0/255); save masks "
        "as PNG to use them exactly as drawn", folder
    )  # fmt: skip


def load_pair(s: Sample) -> tuple[np.ndarray, np.ndarray]:
    """Read and check one pair -> (image float32 HxW [0,1], lung mask uint8 {0,1}).
    Raises ValueError/FileNotFoundError naming the file and what to do."""
    image = read_image(s.image).image
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
        if raw.shape != image.shape:
            raise ValueError(
                f"{p}: mask is {raw.shape[1]}x{raw.shape[0]} but image {s.image.name} "
                f"is {image.shape[1]}x{image.shape[0]}; resize the mask with "
                "nearest-neighbour or fix the pairing"
            )
        mask |= binary_mask(raw, p)
    if not mask.any():
        raise ValueError(f"{s.masks[0]}: mask is empty; draw the lungs or remove the pair")
    return image, mask


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
