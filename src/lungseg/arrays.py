"""The Python API's images in memory, as files give them: arrays (`from_array`) and
Radiographs made by hand (`checked`); PIL images go through `imageio.from_pil`, as files do."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .imageio import BITS16, SPACING_MM, Radiograph, _fill, _finite_range, _scale16


def from_array(arr) -> np.ndarray:
    """An image array -> float32 HxW in [0,1]. Shapes: HxW, HxWx1, HxWx2, HxWx3, HxWx4 (channel-
    last; colour averaged after scaling; alpha, the last of 2 or 4, over black, as in files).
    Dtypes: uint8 (/255), uint16 (`_scale16`), other integers in 0..65535 (`_scale16` from
    2^8-1 up), bool, float in [0,1] (NaN and -Inf -> 0, +Inf -> 1). Anything else raises
    ValueError saying what is accepted."""
    a = np.asarray(arr)
    ok = "images are paths, PIL images or HxW, HxWx1, HxWx2 (gray, alpha), HxWx3 or HxWx4 "
    ok += (
        "(channel-last) arrays of uint8, uint16, other integers in 0..65535, bool or float in [0,1]"
    )
    if a.ndim == 0 or a.dtype == object:
        raise ValueError(f"{ok}; got {type(arr).__name__}")
    if a.ndim not in (2, 3) or a.ndim == 3 and a.shape[2] > 4 or a.size == 0:
        hint = "; for channel-first use np.moveaxis(arr, 0, -1)" if a.ndim == 3 else ""
        raise ValueError(f"{ok}; got shape {a.shape}{hint}")
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{ok}; got {a.dtype}")
    alpha = None
    if a.ndim == 3 and a.shape[2] in (2, 4):  # (colour and alpha scaled each by its own range)
        a, alpha = a[..., :-1], _unit(a[..., -1], ok, alpha=True)
    img = _unit(a, ok)
    img = img if img.ndim == 2 else img.mean(-1, dtype=np.float64).astype(np.float32)
    return img if alpha is None else np.multiply(img, alpha, dtype=np.float32)


def _unit(a: np.ndarray, ok: str, alpha: bool = False) -> np.ndarray:
    """`from_array`'s scaling of pixel values (or, `alpha`, of opacity: uint16 / 65535 as the
    PNG reader) to float32 in [0,1]; ValueError (`ok`: what is accepted) out of range."""
    kind = a.dtype.kind
    img = a.astype(np.float32) if kind in "bf" else a
    lo, hi, bad = _finite_range(img, "image array")
    if lo < 0 or hi > (1 if kind in "bf" else 65535):
        raise ValueError(f"{ok}; got {a.dtype} in {lo:.9g}..{hi:.9g}")
    if kind in "iu":  # uint8 as the 8-bit PNG reader: value / 255 in float32
        tops = (255,) if a.dtype == np.uint8 else BITS16 if a.dtype == np.uint16 else None
        img = _scale16(a, (65535,) if alpha and a.dtype == np.uint16 else tops or (255, *BITS16))
    _fill(img, img, bad)
    return img


def checked(rad: Radiograph) -> Radiograph:
    """A Radiograph made by hand, as files give them: its image scaled by `from_array` unless it
    is float32 HxW in [0,1] already (a 0-255 image was taken as is), its spacing two plausible
    pixel sizes in mm (`SPACING_MM`) or None; ValueError otherwise."""
    image = rad.image
    if not (isinstance(image, np.ndarray) and image.dtype == np.float32 and image.ndim == 2):
        image = from_array(image)
    elif not (0 <= np.min(image) and np.max(image) <= 1):
        image = from_array(image)  # (raises, saying what is accepted, or fills NaN)
    spacing = rad.spacing
    if spacing is not None:
        try:
            ok = len(spacing) == 2 and all(
                SPACING_MM[0] <= float(v) <= SPACING_MM[1] for v in spacing
            )
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(
                f"Radiograph spacing {spacing!r}: give (row, column) pixel sizes in mm at the "
                f"patient, each {SPACING_MM[0]:g}-{SPACING_MM[1]:g}, or None"
            )
        spacing = (float(spacing[0]), float(spacing[1]))
    return replace(rad, image=image, spacing=spacing)  # (a copy of the record, not the pixels)
