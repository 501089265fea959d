"""Read radiographs and masks from disk: PNG/JPEG/TIFF/BMP/GIF (8/16-bit, gray/RGB/RGBA/palette)
and DICOM (arrays in memory: arrays.py). Every reader returns a float32 HxW image in
[0, 1] (bright = dense, as displayed)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .exif import as_displayed, exif_orientation, pil_orientation
from .files import JSRT_SIDE, file_stamp, is_dicom, is_jsrt

# Decompression bombs are refused. The largest chest detectors give about 4300x4300 = 18.5 MP;
# a 14x17" film digitised at 43 um about 81 MP, a 17x17" one at 50 um 74 MP. 128 MP (Pillow's
# own warning level) leaves room above those and bounds what a folder's read-ahead can take.
MAX_PIXELS = 128_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
BOMB = (Image.DecompressionBombError, Image.DecompressionBombWarning)  # Pillow: past 2x, 1x
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MODES16 = ("I;16", "I;16B", "I;16L")  # Pillow's 16-bit gray modes
BITS16 = (1023, 4095, 16383, 65535)  # 2^10-1 ... 2^16-1: see _scale16
# A pixel of a projection radiograph at the patient: 0.01-5 mm (detectors: 0.05-0.2 mm,
# downsampled exports coarser), the film's longer side at most FIELD_MAX_MM (a 43 cm
# detector; stitched long-length films 1.3 m).
SPACING_MM, FIELD_MAX_MM = (0.01, 5.0), 1500.0


class ImageReadError(ValueError):
    """A file that is not a readable radiograph; the message says which file and why."""


@dataclass
class Radiograph:
    """An image as read from disk: `image` float32 HxW in [0,1], `spacing` (row, col) mm or None."""

    image: np.ndarray
    spacing: tuple[float, float] | None = None
    flipped: bool = False  # True when the header says the patient's right is on the image right
    upside_down: bool = False  # True when the header says the rows run from the feet to the head
    path: str | None = None
    view: str = ""  # DICOM ViewPosition, BodyPartExamined, Modality ('' if none): stats.film_flags
    body_part: str = ""
    modality: str = ""
    stamp: str = ""  # `file_stamp` of the file when it was read ('' for an array)


def read_image(path: str | Path | bytes) -> Radiograph:
    """Read any supported radiograph (`path` as bytes: a name that is not UTF-8). Raises
    FileNotFoundError, IsADirectoryError or ImageReadError (a ValueError)."""
    from .dicom import read_dicom  # here: dicom.py builds on this module

    if not os.fsdecode(path):  # (Path('') is the current folder)
        raise FileNotFoundError("an empty file name; give a film's path")
    path = Path(os.fsdecode(path))
    if path.is_dir():
        raise IsADirectoryError(f"{path}: a folder, not a file (`lungseg predict` takes folders)")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; check the path")
    stamp = file_stamp(path)  # (before reading it: a film changed meanwhile is redone)
    if stamp.startswith("0 "):
        raise ImageReadError(f"{path}: file is empty (0 bytes); re-export or re-copy it")
    if is_jsrt(path):
        from .jsrt import read_jsrt

        rad = read_jsrt(path)
    else:
        rad = read_dicom(path) if is_dicom(path) else Radiograph(_read_raster(path))
    rad.path, rad.stamp = str(path), stamp
    h, w = rad.image.shape
    if h < 16 or w < 16:
        raise ImageReadError(f"{path}: image is {w}x{h} px, too small to be a radiograph")
    return rad


def png_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from a file's first 24 bytes when they are a PNG signature and IHDR."""
    if len(head) < 24 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def film_pixels(path: str | Path) -> int:
    """Width x height of a film from its header, without decoding it (times a DICOM's frames,
    which are all read); 0 when the header cannot be read (`read_image` then says why)."""
    try:
        if is_jsrt(Path(path)):
            return JSRT_SIDE**2
        if is_dicom(Path(path)):
            import pydicom

            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            frames = int(ds.get("NumberOfFrames") or 1)  # all are read, the first segmented
            return int(ds.Rows) * int(ds.Columns) * max(1, frames)
        with open(path, "rb") as f:
            if size := png_size(f.read(24)):  # most films
                return size[0] * size[1]
            f.seek(0)
            with Image.open(f) as im:  # the header only: pixels load lazily
                from .tiff import largest_page

                largest_page(im)  # (the page read_image reads)
                return im.size[0] * im.size[1]
    except Exception:  # any failure here is read_image's to report, with its message
        return 0


def _scale16(arr: np.ndarray, tops: tuple[int, ...] = BITS16) -> np.ndarray:
    """16-bit integer data -> float32 in [0,1], divided by the smallest of 2^10-1, 2^12-1, 2^14-1
    and 2^16-1 that is >= the maximum: the significant bits, as viewers infer them (12-bit data
    stored in 16 bits fill the range; full-range 16-bit data are divided by 65535)."""
    top = next(t for t in tops if t >= arr.max())
    return np.divide(arr, np.float32(top), dtype=np.float32)


def _check_size(path: Path, w: int, h: int) -> None:
    if w * h > MAX_PIXELS:
        raise ImageReadError(
            f"{path}: {w}x{h} px ({w * h / 1e6:.0f} MP) is over the {MAX_PIXELS / 1e6:.0f} MP "
            "limit (larger than any digitised chest film); downsample it first"
        )


def _read_raster(path: Path) -> np.ndarray:
    from .png import read_png  # here: png.py and tiff.py build on this module
    from .tiff import largest_page, opencv_tiff

    fast = read_png(path)
    if fast is not None:
        return fast
    try:  # opened from a file object: Pillow 13 scrambles uncompressed TIFFs turned by EXIF 5-8
        with open(path, "rb") as f, Image.open(f) as im:  # when it opens them by name
            largest_page(im)
            _check_size(path, *im.size)
            im.load()
            return from_pil(im, path)
    except ImageReadError:
        raise
    except Image.UnidentifiedImageError as e:
        if (tiff := opencv_tiff(path)) is not None:
            return tiff
        raise ImageReadError(
            f"{path}: not a readable image ({_why(e)}); is it corrupt or truncated?"
        ) from e
    except (OSError, SyntaxError, ValueError, *BOMB) as e:
        bomb = isinstance(e, BOMB)
        hint = "downsample it first" if bomb else "is it corrupt or truncated?"
        raise ImageReadError(f"{path}: not a readable image ({_why(e)}); {hint}") from e


def imdecode(path: str | Path, flags: int) -> np.ndarray | None:
    """An image file decoded by OpenCV (`flags`: cv2.IMREAD_*), None when it cannot be (empty,
    not an image). Read by numpy: OpenCV's own imread crashes the process on a file name that
    is not UTF-8 (OpenCV 5.1)."""
    import cv2

    data = np.fromfile(path, np.uint8)
    return cv2.imdecode(data, flags) if data.size else None


def _why(e: Exception) -> str:
    """Pillow's reason, without the file object it names when opened from one."""
    if isinstance(e, Image.UnidentifiedImageError):
        return "not an image format Pillow recognises"
    return str(e)


def orientation(path: str | Path) -> int:
    """The EXIF Orientation a raster file is displayed with (1..8; 1, as stored, for files
    without one, DICOM and files that cannot be read). Reads headers only, except for PNGs (a
    walk of the chunks, as the PNG reader finds eXIf)."""
    from .png import _chunks

    path = Path(path)
    try:
        if is_dicom(path):
            return 1
        with open(path, "rb") as f:
            if f.read(8) == PNG_SIGNATURE:  # Pillow would decode the image to look past its data
                exif = _chunks(np.fromfile(path, np.uint8), (b"eXIf",)).get(b"eXIf")
                return exif_orientation(exif) if exif else 1
            f.seek(0)
            with Image.open(f) as im:
                return pil_orientation(im)
    except (OSError, SyntaxError, ValueError, *BOMB):
        return 1  # unreadable: the readers say why


def from_pil(im: Image.Image, where: str | Path = "image") -> np.ndarray:
    """A PIL image (any mode: palette, CMYK, 16-bit, with alpha) -> float32 HxW in [0,1] as
    displayed, as a file of it is read: its EXIF orientation applied, a WhiteIsZero TIFF turned."""
    from .tiff import white_is_zero

    image = to_gray_float(im, where)
    if white_is_zero(im):
        image = np.subtract(1, image, dtype=np.float32)
    return as_displayed(image, pil_orientation(im))


def to_gray_float(im: Image.Image, where: str | Path = "image") -> np.ndarray:
    """PIL image of any mode -> float32 HxW in [0,1]. 16-bit modes by `_scale16`, mode I (32-bit
    integers) too (from 2^8-1 up) within 0..65535, else stretched as floats are (`_minmax`).
    `where` names the image in errors."""
    if im.mode in MODES16:
        return _scale16(np.asarray(im))
    if im.mode in ("I", "F"):
        arr = np.asarray(im)
        in16 = im.mode == "I" and 0 <= arr.min() and arr.max() <= 65535
        return _scale16(arr, (255, *BITS16)) if in16 else _minmax(arr, where)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (0, 0, 0, 255))
        im = Image.alpha_composite(bg, im)
    if im.mode != "L":
        im = im.convert("L")
    return np.divide(np.asarray(im), np.float32(255), dtype=np.float32)  # one pass, no copy


def _finite_range(arr: np.ndarray, where) -> tuple[float, float, np.ndarray | None]:
    """(min, max) of the finite values and the mask of the others (None: all are finite)."""
    lo, hi = float(np.min(arr)), float(np.max(arr))
    if np.isfinite(lo) and np.isfinite(hi):  # NaN and Inf would show here: one cheap pass
        return lo, hi, None
    bad = ~np.isfinite(arr)
    if bad.all():
        raise ImageReadError(f"{where}: every pixel is NaN or infinite; check how it was made")
    return float(np.min(arr[~bad])), float(np.max(arr[~bad])), bad


def _fill(out: np.ndarray, arr: np.ndarray, bad: np.ndarray | None) -> None:
    if bad is not None:  # NaN and -Inf -> 0, +Inf -> 1: one bad pixel does not blank the film
        out[bad] = arr[bad] > 0


def _minmax(arr: np.ndarray, where="image") -> np.ndarray:
    """Finite values stretched to [0,1] (float32); NaN and -Inf -> 0, +Inf -> 1."""
    lo, hi, bad = _finite_range(arr, where)
    out = np.zeros(arr.shape, np.float32) if hi <= lo else ((arr - lo) / (hi - lo)).astype("f4")
    _fill(out, arr, bad)
    return out


def read_mask(path: str | Path) -> np.ndarray:
    """Read a mask file as uint8 HxW with its raw gray values (0..255); GIF/palette handled, an
    alpha channel composited over black (as for films)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: mask file missing")
    try:
        with open(path, "rb") as f, Image.open(f) as im:  # (see _read_raster)
            im.load()  # (a PNG's eXIf may follow its pixels)
            turn, page = pil_orientation(im), im
            if "A" in im.getbands():  # lungs drawn on a transparent sheet: over black, as films
                black = Image.new("RGBA", im.size, (0, 0, 0, 255))
                page = Image.alpha_composite(black, im.convert("RGBA"))
            arr = np.asarray(page if page.mode in ("L", "1") else page.convert("L"))
            arr = as_displayed(arr, turn)
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"{path}: mask is not a readable image ({_why(e)})") from e
    return (arr.astype(np.uint8) * 255) if arr.dtype == bool else arr.astype(np.uint8)
