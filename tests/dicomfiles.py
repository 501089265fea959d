"""Small DICOM files for the tests (test_dicom*.py): pydicom is imported
only by the tests that write them."""

from __future__ import annotations

import numpy as np
from conftest import IMG_H, IMG_W


def write_dicom(path, pixels: np.ndarray, photometric="MONOCHROME2", **attrs):
    """An uncompressed 12-bit DX DICOM of `pixels`; `attrs` set or override its attributes."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

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
    row = np.round(np.linspace(0, 4095, IMG_W)).astype(np.uint16)
    return np.tile(row, (IMG_H, 1))
