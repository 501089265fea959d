"""DICOM: the displayed film (rescale, window, VOI LUT, inversions, frames, colour), spacing
at the patient, orientation, compressed transfer syntaxes, and refusals naming the file."""

from __future__ import annotations

import sys

import numpy as np
import pydicom
import pytest
from conftest import IMG_H, IMG_W, check_float_image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, JPEGExtended12Bit, generate_uid

from lungseg.imageio import ImageReadError, is_supported, read_image

H, W = IMG_H, IMG_W


def write_dicom(path, pixels: np.ndarray, photometric="MONOCHROME2", **attrs):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # digital X-ray
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.PatientName = "Phantom^Test"
    ds.Rows, ds.Columns = pixels.shape[:2]  # multi-frame, colour: Rows and Columns in attrs
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    for k, v in attrs.items():
        setattr(ds, k, v)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def dicom_ramp() -> np.ndarray:
    """12-bit horizontal ramp 0..4095 (each column constant)."""
    row = np.round(np.linspace(0, 4095, W)).astype(np.uint16)
    return np.tile(row, (H, 1))


def test_dicom_monochrome2(tmp_path):
    p = write_dicom(tmp_path / "a.dcm", dicom_ramp())
    rad = read_image(p)
    check_float_image(rad.image)
    np.testing.assert_allclose(rad.image, dicom_ramp() / 4095.0, atol=1e-5)
    assert rad.spacing is None


def test_dicom_monochrome1_is_inverted(tmp_path):
    m2 = read_image(write_dicom(tmp_path / "m2.dcm", dicom_ramp())).image
    m1 = read_image(write_dicom(tmp_path / "m1.dcm", dicom_ramp(), "MONOCHROME1")).image
    np.testing.assert_allclose(m1, 1.0 - m2, atol=1e-5)
    assert m1[0, 0] == pytest.approx(1.0) and m1[0, -1] == pytest.approx(0.0)


@pytest.mark.parametrize(
    "photometric,shape,inverted",
    [
        ("MONOCHROME2", "IDENTITY", False),
        ("MONOCHROME2", "INVERSE", True),
        ("MONOCHROME1", "IDENTITY", True),
        ("MONOCHROME1", "INVERSE", True),  # common in DX files: one inversion, not two
    ],
)
def test_dicom_presentation_lut_shape(tmp_path, photometric, shape, inverted):
    p = write_dicom(tmp_path / "p.dcm", dicom_ramp(), photometric, PresentationLUTShape=shape)
    want = dicom_ramp() / 4095.0
    np.testing.assert_allclose(read_image(p).image, 1 - want if inverted else want, atol=1e-5)


@pytest.mark.parametrize("frames", [2, 3, 4])
def test_dicom_multiframe_first_frame(tmp_path, frames, caplog):
    """frames x H x W: the first frame, also when there are 3 or 4 frames (not colour); said."""
    stack = np.stack([dicom_ramp()] + [4095 - dicom_ramp()] * (frames - 1))
    p = write_dicom(tmp_path / "mf.dcm", stack, Rows=H, Columns=W, NumberOfFrames=frames)
    with caplog.at_level("INFO", logger="lungseg"):
        np.testing.assert_allclose(read_image(p).image, dicom_ramp() / 4095.0, atol=1e-5)
    assert f"mf.dcm: {frames} frames; the first is segmented" in caplog.text


@pytest.mark.parametrize("frames", [1, 2, 3])
def test_dicom_rgb_first_frame_averaged(tmp_path, frames):
    """(frames x) H x W x 3: the first frame, its colour averaged."""
    rgb = np.dstack([dicom_ramp(), dicom_ramp() // 2, np.zeros((H, W), np.uint16)])
    pixels = rgb if frames == 1 else np.stack([rgb] + [4095 - rgb] * (frames - 1))
    attrs = {"NumberOfFrames": frames} if frames > 1 else {}
    p = write_dicom(
        tmp_path / "rgb.dcm", pixels, "RGB", Rows=H, Columns=W, SamplesPerPixel=3,
        PlanarConfiguration=0, **attrs,
    )  # fmt: skip
    want = rgb.mean(axis=-1)
    np.testing.assert_allclose(read_image(p).image, want / want.max(), atol=1e-5)


def test_dicom_pixels_not_one_image_refused(tmp_path, monkeypatch):
    import pydicom.pixels

    p = write_dicom(tmp_path / "odd.dcm", dicom_ramp())
    monkeypatch.setattr(pydicom.pixels, "pixel_array", lambda ds, index: np.zeros((2, H, W)))
    with pytest.raises(ImageReadError, match=r"odd\.dcm.*\(2, 40, 48\).*not one 2-D image"):
        read_image(p)


@pytest.mark.parametrize("implicit", [True, False])
def test_dicom_without_preamble(tmp_path, implicit):
    """A bare dataset (no 128-byte preamble, no 'DICM', no file meta) is read with force=True."""
    p = write_dicom(tmp_path / "bare.dcm", dicom_ramp(), PixelSpacing=[0.2, 0.2])
    ds = pydicom.dcmread(p)
    del ds.file_meta
    ds.preamble = None
    ds.save_as(p, enforce_file_format=False, implicit_vr=implicit, little_endian=True)
    assert p.read_bytes()[128:132] != b"DICM"
    rad = read_image(p)
    np.testing.assert_allclose(rad.image, dicom_ramp() / 4095.0, atol=1e-5)
    assert rad.spacing == pytest.approx((0.2, 0.2))


def test_dicom_without_preamble_or_pixels_refused(tmp_path):
    ds = pydicom.dcmread(write_dicom(tmp_path / "nopix.dcm", dicom_ramp()))
    del ds.file_meta, ds.PixelData
    ds.preamble = None
    ds.save_as(tmp_path / "nopix.dcm", enforce_file_format=False, implicit_vr=True)
    with pytest.raises(
        ImageReadError, match=r"nopix\.dcm: not a readable DICOM.*force=True, it has no pixel data"
    ):
        read_image(tmp_path / "nopix.dcm")


def fake_jpeg12(path):
    """A DICOM claiming 12-bit JPEG Extended pixel data, holding an empty JPEG."""
    ds = pydicom.dcmread(write_dicom(path, dicom_ramp()))
    ds.file_meta.TransferSyntaxUID = JPEGExtended12Bit
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xd9"])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_compressed_dicom_without_decoder_says_how(tmp_path, monkeypatch):
    """12-bit JPEG Extended: no decoder pydicom has reads it (GDCM only through lungseg): with
    GDCM hidden, the message names the file, the transfer syntax and the extra to install."""
    p = fake_jpeg12(tmp_path / "jpeg12.dcm")
    monkeypatch.setitem(sys.modules, "gdcm", None)  # `import gdcm` -> ImportError
    with pytest.raises(
        ImageReadError, match=r"jpeg12\.dcm: .*JPEG Extended.*pip install 'lungseg\[dicom\]'"
    ):
        read_image(p)


def test_private_transfer_syntax_refused_naming_the_file(tmp_path):
    p = fake_jpeg12(tmp_path / "private.dcm")
    ds = pydicom.dcmread(p)
    ds.file_meta.TransferSyntaxUID = (
        "1.2.826.0.1.3680043.9999.1"  # no transfer syntax pydicom knows
    )
    ds.save_as(p, enforce_file_format=True)
    with pytest.raises(ImageReadError, match=r"private\.dcm: unknown transfer syntax .*re-export"):
        read_image(p)


def test_corrupt_compressed_dicom_with_gdcm(tmp_path):
    pytest.importorskip("gdcm")
    p = fake_jpeg12(tmp_path / "broken.dcm")
    with pytest.raises(ImageReadError, match=r"broken\.dcm: cannot decode its JPEG Extended"):
        read_image(p)


@pytest.mark.parametrize(
    "syntax", ["JPEGLosslessProcess14_1", "JPEGLSLossless", "JPEGExtendedProcess2_4"]
)
def test_compressed_dicom_decoded_with_gdcm(tmp_path, syntax):
    """The `dicom` extra (GDCM): JPEG Lossless (.70), JPEG-LS and 12-bit JPEG Extended (which
    pydicom 3 does not pass to GDCM) of a 12-bit ramp, compressed by GDCM itself."""
    gdcm = pytest.importorskip("gdcm")
    raw = write_dicom(tmp_path / "raw.dcm", dicom_ramp())
    reader = gdcm.ImageReader()
    reader.SetFileName(str(raw))
    assert reader.Read()
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(getattr(gdcm.TransferSyntax, syntax)))
    change.SetInput(reader.GetImage())
    assert change.Change()
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(tmp_path / "c.dcm"))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    assert writer.Write()
    assert pydicom.dcmread(tmp_path / "c.dcm").file_meta.TransferSyntaxUID.is_compressed
    img = read_image(tmp_path / "c.dcm").image
    np.testing.assert_allclose(img, dicom_ramp() / 4095.0, atol=2 / 4095)  # JPEG Extended: lossy


@pytest.mark.parametrize(
    "attrs,spacing",
    [
        ({"ImagerPixelSpacing": [0.15, 0.18]}, (0.15, 0.18)),
        ({"ImagerPixelSpacing": [0.15, 0.18], "EstimatedRadiographicMagnificationFactor": 1.2},
         (0.125, 0.15)),
        ({"ImagerPixelSpacing": [0.15, 0.15], "EstimatedRadiographicMagnificationFactor": 0},
         (0.15, 0.15)),
        ({"PixelSpacing": [0.14, 0.14], "ImagerPixelSpacing": [0.15, 0.15],
          "EstimatedRadiographicMagnificationFactor": 1.1}, (0.14, 0.14)),
    ],
    ids=["detector", "magnified", "factor-0", "pixel-spacing-already-at-patient"],
)  # fmt: skip
def test_dicom_spacing_at_the_patient(tmp_path, attrs, spacing):
    """ImagerPixelSpacing is at the detector: divided by the estimated magnification factor."""
    p = write_dicom(tmp_path / "m.dcm", dicom_ramp(), **attrs)
    assert read_image(p).spacing == pytest.approx(spacing)


def test_dicom_detected_by_magic_without_suffix(tmp_path):
    p = write_dicom(tmp_path / "IM0001", dicom_ramp())
    assert is_supported(p)
    np.testing.assert_allclose(read_image(p).image, dicom_ramp() / 4095.0, atol=1e-5)


@pytest.mark.parametrize("tag", ["PixelSpacing", "ImagerPixelSpacing"])
def test_dicom_spacing(tmp_path, tag):
    p = write_dicom(tmp_path / "s.dcm", dicom_ramp(), **{tag: [0.143, 0.15]})
    assert read_image(p).spacing == pytest.approx((0.143, 0.15))


def test_dicom_pixel_spacing_preferred_over_imager(tmp_path):
    p = write_dicom(
        tmp_path / "s.dcm", dicom_ramp(), PixelSpacing=[0.2, 0.2], ImagerPixelSpacing=[0.1, 0.1]
    )
    assert read_image(p).spacing == pytest.approx((0.2, 0.2))


def test_dicom_rescale_and_window_applied(tmp_path):
    # stored 0..4095, rescaled value = stored - 1000; window centred on rescaled 0, width 400:
    # only stored values ~800..1200 get gray levels, the rest saturate.
    raw = dicom_ramp()
    p = write_dicom(
        tmp_path / "w.dcm",
        raw,
        RescaleSlope=1,
        RescaleIntercept=-1000,
        WindowCenter=0,
        WindowWidth=400,
    )
    img = read_image(p).image
    check_float_image(img)
    row = img[0]
    stored = raw[0].astype(float)
    assert np.all(row[stored < 780] == 0.0)
    assert np.all(row[stored > 1220] == 1.0)
    mid = (stored > 850) & (stored < 1150)
    assert mid.sum() >= 2
    expected = (stored[mid] - 1000 + 200) / 400  # linear inside the window
    np.testing.assert_allclose(row[mid], expected, atol=0.02)


def test_dicom_window_without_rescale_differs(tmp_path):
    """Same window, intercept 0: the window now sits on stored values ~0..200."""
    raw = dicom_ramp()
    img = read_image(write_dicom(tmp_path / "w0.dcm", raw, WindowCenter=0, WindowWidth=400)).image
    row, stored = img[0], raw[0].astype(float)
    assert np.all(row[stored > 220] == 1.0)
    assert row[0] < 0.6


@pytest.mark.parametrize(
    "orient,flipped,upside_down",
    [
        (None, False, False),
        (["L", "F"], False, False),
        (["R", "F"], True, False),
        (["L", "H"], False, True),
        (["R", "H"], True, True),  # turned by 180 degrees
        (["R"], True, False),
    ],
)
def test_dicom_patient_orientation(tmp_path, orient, flipped, upside_down):
    attrs = {} if orient is None else {"PatientOrientation": orient}
    rad = read_image(write_dicom(tmp_path / "o.dcm", dicom_ramp(), **attrs))
    assert rad.flipped is flipped and rad.upside_down is upside_down
    np.testing.assert_allclose(rad.image, dicom_ramp() / 4095.0, atol=1e-5)  # pixels unchanged


def test_dicom_huge_header_refused(tmp_path):
    p = write_dicom(tmp_path / "big.dcm", dicom_ramp())
    ds = pydicom.dcmread(p)
    ds.Rows, ds.Columns = 60000, 60000
    ds.save_as(p, enforce_file_format=True)
    with pytest.raises(ImageReadError, match="big.dcm"):
        read_image(p)


def test_text_file_named_dcm(tmp_path):
    p = tmp_path / "notes.dcm"
    p.write_text("not a dicom file\n" * 20)
    with pytest.raises(ImageReadError, match="notes.dcm"):
        read_image(p)
