"""DICOM radiographs (pydicom; GDCM, the `dicom` extra, for compressed pixel data it cannot
decode alone) -> float32 HxW in [0,1] as displayed, pixel spacing in mm and orientation."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from .imageio import FIELD_MAX_MM, SPACING_MM, ImageReadError, Radiograph, _check_size, _minmax

log = logging.getLogger(__name__)


def read_dicom(path: Path) -> Radiograph:
    """A DICOM file -> Radiograph: the first frame, modality LUT (rescale), VOI LUT or window,
    one inversion for MONOCHROME1 or an INVERSE presentation LUT, spacing at the patient, and
    whether the film is displayed mirrored. Raises ImageReadError naming the file."""
    from pydicom.pixels import apply_modality_lut, pixel_array

    ds = _dcmread(path)
    if "DirectoryRecordSequence" in ds:
        raise ImageReadError(f"{path}: a DICOMDIR, the index of a DICOM disc, not a film: give "
                             "its folder, whose films are found")  # fmt: skip
    if int(ds.get("SamplesPerPixel") or 1) > 1 and "PlanarConfiguration" not in ds:
        ds.PlanarConfiguration = 0  # (required, yet left out by some writers: the usual order)
    try:
        _check_size(path, int(ds.Columns), int(ds.Rows))
        arr = pixel_array(ds, index=0)  # the first frame: (rows, cols[, samples])
        if int(ds.get("NumberOfFrames") or 1) > 1:
            log.info("%s: %s frames; the first is segmented", path, ds.NumberOfFrames)
    except ImageReadError:
        raise
    except Exception as e:  # pydicom raises many types for broken files
        arr = _undecoded(path, ds, e)
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    palette = photometric == "PALETTE COLOR"
    if palette and arr.ndim == 2:  # indices into the file's colour tables: their colours
        arr = _palette_rgb(path, ds, arr)
    if (palette or int(ds.get("SamplesPerPixel") or 1) > 1) and arr.ndim == 3:
        arr = arr[..., :3].mean(axis=-1)
    if arr.ndim != 2:
        raise ImageReadError(f"{path}: pixel data of shape {arr.shape} is not one 2-D image")
    if palette or _flat_rescale(ds, path):
        arr = arr.astype(np.float32)
    else:
        arr = apply_modality_lut(arr, ds).astype(np.float32)
    mono = photometric in ("MONOCHROME1", "MONOCHROME2")  # (windows are defined for gray only)
    if mono and ("VOILUTSequence" in ds or "WindowCenter" in ds):
        try:
            arr = _voi(arr, ds).astype(np.float32)
        except Exception as e:  # noqa: BLE001 - a malformed window or LUT: the stored values
            log.warning("%s: its VOI LUT or window cannot be applied (%s); not windowed", path, e)
    image = _minmax(arr, path)
    inverse = str(ds.get("PresentationLUTShape", "")).upper() == "INVERSE"
    if inverse or photometric == "MONOCHROME1":
        image = 1.0 - image  # once: DX files often say both, meaning one inversion
    flipped, upside_down = _dicom_orientation(ds)
    view, part, modality = (
        _text(ds.get(k)) for k in ("ViewPosition", "BodyPartExamined", "Modality")
    )
    return Radiograph(
        image,
        _dicom_spacing(ds, path),
        flipped,
        upside_down,
        view=view,
        body_part=part,
        modality=modality,
    )


def _dcmread(path: Path):
    """The dataset. A file without the 128-byte preamble and 'DICM' is read again with
    force=True, as pydicom suggests, and kept if it has pixel data."""
    import pydicom
    from pydicom import uid

    try:
        return pydicom.dcmread(path)
    except pydicom.errors.InvalidDicomError:
        error: Exception | str = "no DICOM file marker, and read without one it has no pixel data"
        try:
            ds = pydicom.dcmread(path, force=True)
            if "PixelData" in ds:
                implicit, little = ds.original_encoding
                be = uid.ExplicitVRLittleEndian if little else uid.ExplicitVRBigEndian
                ds.file_meta.setdefault(
                    "TransferSyntaxUID", uid.ImplicitVRLittleEndian if implicit else be
                )
                return ds
        except Exception:
            pass
    except Exception as e:
        error = e
    raise ImageReadError(f"{path}: not a readable DICOM image ({error})")


def _palette_rgb(path: Path, ds, indices: np.ndarray) -> np.ndarray:
    """PALETTE COLOR pixel data (indices) -> HxWx3 colours through the file's LUTs."""
    from pydicom.pixels import apply_color_lut

    try:
        return apply_color_lut(indices, ds)
    except Exception as e:  # noqa: BLE001 - missing or malformed LUTs: the file is broken
        raise ImageReadError(
            f"{path}: PALETTE COLOR image whose colour tables cannot be applied ({e}); "
            "re-export the film as grayscale (MONOCHROME2)"
        ) from e


def _undecoded(path: Path, ds, error: Exception) -> np.ndarray:
    """The first frame of pixel data pydicom could not decode. GDCM (the `dicom` extra) also
    reads 12-bit JPEG Extended, which pydicom 3 does not pass to it; without GDCM, the
    message says how to install it."""
    ts, why = ds.file_meta.get("TransferSyntaxUID"), _plain(error)
    try:
        compressed = ts is not None and ts.is_compressed
    except ValueError:  # a private or unknown UID: pydicom cannot tell
        raise ImageReadError(
            f"{path}: unknown transfer syntax {ts}; re-export the film as standard DICOM ({why})"
        ) from None
    if not compressed:
        raise ImageReadError(f"{path}: not a readable DICOM image ({why})")
    try:
        return _gdcm_first_frame(path, ds)
    except ImportError:
        raise ImageReadError(
            f"{path}: no installed decoder reads its {ts.name} pixel data; "
            f"install lungseg's dicom extra (pip install '.[dicom]' in its source folder; {why})"
        ) from None
    except Exception as e:
        raise ImageReadError(
            f"{path}: cannot decode its {ts.name} pixel data, damaged or not what the header says "
            f"({why}; {_plain(e)})"
        ) from e


def _plain(error: Exception) -> str:
    """A decoder's error on one line, without the Python object names some decoders put in it
    (Pillow: "cannot identify image file <_io.BytesIO object at 0x...>")."""
    text = " ".join(str(error).split())
    text = re.sub(r" ?<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "", text)
    return text.replace("'NoneType' object has no attribute 'encode'", "no image")


def _gdcm_first_frame(path: Path, ds) -> np.ndarray:
    import gdcm

    reader = gdcm.ImageReader()
    reader.SetFileName(str(path))
    if not reader.Read():
        raise ValueError("GDCM cannot read it either")
    img = reader.GetImage()
    fmt = img.GetPixelFormat()
    dtype = f"{'iu'[fmt.GetPixelRepresentation() == 0]}{fmt.GetBitsAllocated() // 8}"
    buf = img.GetBuffer()  # the bytes, passed as a str; None when it cannot decode them
    if buf is None:
        raise ValueError("GDCM cannot decode them either")
    buf = buf.encode("utf-8", "surrogateescape")
    arr = np.frombuffer(buf, dtype).reshape(-1, ds.Rows, ds.Columns, fmt.GetSamplesPerPixel())[0]
    return arr[..., 0] if arr.shape[-1] == 1 else arr


def _text(value) -> str:
    """A header value as upper-case text ('' when absent); of several values, the first."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else ""
    return str(value or "").strip().upper()


def _dicom_orientation(ds) -> tuple[bool, bool]:
    """(mirrored, upside down) from PatientOrientation (0020,0020), the directions of the rows
    and of the columns: 'L' (towards the patient's left) and 'F' (towards the feet) are the
    standard display; 'R' means the film is shown mirrored, 'H' upside down (with 'R': turned
    by 180 degrees)."""
    orient = [str(v).upper() for v in (ds.get("PatientOrientation") or [])]
    return (
        len(orient) > 0 and orient[0].startswith("R"),
        len(orient) > 1 and orient[1].startswith("H"),
    )


def _voi(arr: np.ndarray, ds):
    """The VOI LUT (the first of its sequence) or else the window of `ds` applied to `arr`
    (the modality LUT's output). A LUT is looked up by the integers it is made for, through a
    copy of it declared 16-bit: pydicom 3.0 indexes an 8-bit LUT (LUTDescriptor [n, first, 8])
    with 8-bit numbers, so that values past 255 wrap round."""
    from pydicom.dataset import Dataset
    from pydicom.pixels import apply_voi, apply_voi_lut

    if not ds.get("VOILUTSequence"):
        return apply_voi_lut(arr, ds)
    item = Dataset()
    item.update(ds.VOILUTSequence[0])
    n, first, _bits = item.LUTDescriptor
    item.LUTDescriptor = [n, first, 16]  # (its values are kept: 0-255 in 16 bits)
    lut = Dataset()
    lut.VOILUTSequence = [item]
    lut.file_meta = ds.file_meta  # LUT data stored as OW: its byte order (`_dcmread` sets it)
    return apply_voi(np.rint(arr).astype(np.int64), lut)


def _flat_rescale(ds, path) -> bool:
    """True (logged) when the modality rescale would make every pixel one value (RescaleSlope
    0, with no modality LUT): the stored values are used instead (any positive slope gives the
    same film after `_minmax`)."""
    try:
        flat = "ModalityLUTSequence" not in ds and float(ds.get("RescaleSlope", 1)) == 0
    except (TypeError, ValueError):
        return False  # (pydicom's rescale says what is wrong with it)
    if flat:
        log.warning("%s: RescaleSlope 0 would make every pixel one value: not applied", path)
    return flat


def _spacing_value(ds, tag: str):
    """The value of a spacing tag: the dataset's own, else (PixelSpacing of an enhanced,
    multi-frame object) the shared, then the first frame's, functional group's."""
    if tag in ds or tag != "PixelSpacing":
        return ds.get(tag)
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        try:
            return ds[groups][0].PixelMeasuresSequence[0].PixelSpacing
        except (KeyError, IndexError, AttributeError):
            continue
    return None


def _dicom_spacing(ds, path: Path | str = "") -> tuple[float, float] | None:
    """(row, col) mm at the patient: PixelSpacing (of the dataset or its functional groups),
    else ImagerPixelSpacing (at the detector) divided by
    EstimatedRadiographicMagnificationFactor (0018,1114) when that is > 0. A value that is
    not two positive numbers says nothing (None: areas in pixels only), nor does one that no
    radiograph has (`_plausible`); both are logged."""
    for tag in ("PixelSpacing", "ImagerPixelSpacing"):
        value = _spacing_value(ds, tag)
        try:
            row, col = (float(v) for v in value)
        except (TypeError, ValueError):  # absent, one value or three, empty, not a number
            row = col = float("nan")
        if not (row > 0 and col > 0) and str(value or "") not in ("", "[]"):  # (empty: unknown)
            log.warning("%s: %s %r is not two positive numbers: not used", path, tag, value)
        if row > 0 and col > 0:
            try:
                mag = float(ds.get("EstimatedRadiographicMagnificationFactor") or 0)
            except (TypeError, ValueError):
                mag = 0.0
            spacing = (row / mag, col / mag) if tag[0] == "I" and mag > 0 else (row, col)
            if _plausible(spacing, ds, path, tag):
                return spacing
    return None


# (imageio.SPACING_MM, FIELD_MAX_MM.) GDCM writes 1\1 where a converted file had no spacing:
# on a film of thousands of pixels that gives metres (one of 1500 px or less passes).


def _plausible(spacing: tuple[float, float], ds, path, tag: str) -> bool:
    """Whether a spacing (row, col mm) fits a radiograph of the dataset's size; if not, why
    is logged."""
    rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    field = max(rows * spacing[0], cols * spacing[1])
    if all(SPACING_MM[0] <= s <= SPACING_MM[1] for s in spacing) and field <= FIELD_MAX_MM:
        return True
    shown = "\\".join(f"{s:g}" for s in spacing)
    log.warning(
        "%s: %s gives %s mm per pixel at the patient, a film %.4g mm across: not a "
        "radiograph's, so not used (without another spacing, areas and heights in pixels only)",
        path, tag, shown, field,
    )  # fmt: skip
    return False
