"""Compressed DICOM: JPEG Lossless, JPEG-LS and 12-bit JPEG Extended decoded with GDCM (the
`dicom` extra), and messages naming the file when no decoder can read it."""

from __future__ import annotations

import sys

import numpy as np
import pydicom
import pytest
from dicomfiles import dicom_ramp, write_dicom
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, JPEGExtended12Bit

from lungseg.imageio import ImageReadError, read_image


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
    hint = r"dicom extra \(pip install '\.\[dicom\]' in its source folder"
    with pytest.raises(ImageReadError, match=r"jpeg12\.dcm: .*JPEG Extended.*" + hint):
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


def test_damaged_jpeg2000_dicom_said_without_python_object_names(tmp_path):
    """Pillow's message named a BytesIO object, GDCM's failure read "'NoneType' object has no
    attribute 'encode'" (its decoded buffer is None when it cannot decode)."""
    pytest.importorskip("gdcm")
    p = write_dicom(tmp_path / "damaged.dcm", dicom_ramp())
    ds = pydicom.dcmread(p)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\x01\x02" * 100])
    ds["PixelData"].VR = "OB"
    ds.save_as(p, enforce_file_format=True)
    with pytest.raises(ImageReadError, match=r"damaged\.dcm: cannot decode its JPEG 2000") as e:
        read_image(p)
    assert "damaged or not what the header says" in str(e.value)
    assert "BytesIO" not in str(e.value) and "NoneType" not in str(e.value)


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
