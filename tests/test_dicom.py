"""DICOM: the displayed film (rescale, window, VOI LUT, inversions, frames, colour), files
without a preamble or a suffix, and refusals naming the file. Spacing and orientation are in
test_dicom_geometry.py, compressed transfer syntaxes in test_dicom_compressed.py."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from conftest import IMG_H, IMG_W, check_float_image
from dicomfiles import dicom_ramp, write_dicom

from lungseg.files import is_supported
from lungseg.imageio import ImageReadError, read_image

H, W = IMG_H, IMG_W


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


@pytest.mark.parametrize("implicit", [True, False])
def test_dicom_without_preamble_or_suffix_is_found_and_read(tmp_path, implicit):
    """A bare dataset named without a suffix (IM0001), in a folder or named: taken as DICOM."""
    from lungseg.inputs import collect_inputs

    (tmp_path / "scans").mkdir()
    p = write_dicom(tmp_path / "scans" / "IM0002", dicom_ramp())
    ds = pydicom.dcmread(p)
    del ds.file_meta
    ds.preamble = None
    ds.save_as(p, enforce_file_format=False, implicit_vr=implicit, little_endian=True)
    (tmp_path / "scans" / "notes").write_bytes(b"\x08\x00 not a dataset, no image")  # skipped
    assert collect_inputs([str(tmp_path / "scans")])[0] == [p]
    np.testing.assert_allclose(read_image(p).image, dicom_ramp() / 4095.0, atol=1e-5)


def test_dicom_without_preamble_or_pixels_refused(tmp_path):
    ds = pydicom.dcmread(write_dicom(tmp_path / "nopix.dcm", dicom_ramp()))
    del ds.file_meta, ds.PixelData
    ds.preamble = None
    ds.save_as(tmp_path / "nopix.dcm", enforce_file_format=False, implicit_vr=True)
    with pytest.raises(
        ImageReadError,
        match=r"nopix\.dcm: not a readable DICOM image \(no DICOM file marker, .* no pixel data\)",
    ):
        read_image(tmp_path / "nopix.dcm")


def test_dicom_detected_by_magic_without_suffix(tmp_path):
    p = write_dicom(tmp_path / "IM0001", dicom_ramp())
    assert is_supported(p)
    np.testing.assert_allclose(read_image(p).image, dicom_ramp() / 4095.0, atol=1e-5)


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


@pytest.mark.parametrize("vr", ["US", "OW"])
@pytest.mark.parametrize("bits", [8, 12, 16])
def test_dicom_voi_lut_applied_at_any_entry_depth(tmp_path, caplog, bits, vr):
    """A VOI LUT Sequence maps each stored value through its table (from LUTDescriptor's first
    value mapped): with 8-bit entries too, which pydicom 3.0 alone wraps past 255."""
    from pydicom.dataset import Dataset

    top = 2**bits - 1
    table = (top - np.arange(4096 - 96) * top // (4095 - 96)).astype(np.uint16)  # inverting
    item = Dataset()
    item.LUTDescriptor = [len(table), 96, bits]  # stored values below 96 take its first entry
    item.add_new((0x0028, 0x3006), vr, table.tolist() if vr == "US" else table.tobytes())
    p = write_dicom(tmp_path / "lut.dcm", dicom_ramp(), VOILUTSequence=[item])
    if vr == "OW" and bits == 8:  # and in a bare dataset (its byte order as read)
        ds = pydicom.dcmread(p)
        del ds.file_meta
        ds.preamble = None
        ds.save_as(p, enforce_file_format=False, implicit_vr=False, little_endian=True)
    img = read_image(p).image
    check_float_image(img)
    looked_up = table[np.clip(dicom_ramp().astype(int) - 96, 0, len(table) - 1)]
    np.testing.assert_allclose(img, looked_up / top, atol=1e-6)
    assert "not windowed" not in caplog.text


def test_dicom_window_without_rescale_differs(tmp_path):
    """Same window, intercept 0: the window now sits on stored values ~0..200."""
    raw = dicom_ramp()
    img = read_image(write_dicom(tmp_path / "w0.dcm", raw, WindowCenter=0, WindowWidth=400)).image
    row, stored = img[0], raw[0].astype(float)
    assert np.all(row[stored > 220] == 1.0)
    assert row[0] < 0.6


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


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif", ".bmp"])
def test_an_image_named_dcm_is_read_as_what_it_is(tmp_path, ext):
    """As a DICOM named .png is read as a DICOM (tests above)."""
    from lungseg.png import write_png

    film = (np.arange(64 * 48).reshape(48, 64) % 251).astype(np.uint8)
    if ext == ".png":
        write_png(tmp_path / "film.dcm", film)
    else:
        from PIL import Image

        Image.fromarray(film).save(tmp_path / f"film{ext}", quality=100)
        (tmp_path / f"film{ext}").rename(tmp_path / "film.dcm")
    expected = read_image(tmp_path / "film.dcm").image
    assert expected.shape == (48, 64) and is_supported(tmp_path / "film.dcm")  # (in folders too)
    if ext != ".jpg":
        np.testing.assert_array_equal(expected, film / np.float32(255))


def test_dicom_palette_colour_is_read_through_its_colour_tables(tmp_path):
    """PALETTE COLOR stores indices; the film is what its tables map them to. Here the table
    runs backwards (index 0 is white), so reading the raw indices would show a negative. A
    rescale or window in the file (defined for gray images) is not applied to the colours."""
    ramp = (dicom_ramp() // 16).astype(np.uint16)  # indices 0..255
    lut = (np.arange(255, -1, -1) * 257).astype("<u2").tobytes()  # 16-bit entries, reversed
    p = write_dicom(
        tmp_path / "pal.dcm", ramp, "PALETTE COLOR", BitsStored=8, HighBit=7,
        RescaleSlope=-1, RescaleIntercept=0, WindowCenter=100, WindowWidth=50,  # gray-only
        RedPaletteColorLookupTableDescriptor=[256, 0, 16],
        GreenPaletteColorLookupTableDescriptor=[256, 0, 16],
        BluePaletteColorLookupTableDescriptor=[256, 0, 16],
        RedPaletteColorLookupTableData=lut,
        GreenPaletteColorLookupTableData=lut,
        BluePaletteColorLookupTableData=lut,
    )  # fmt: skip
    np.testing.assert_allclose(read_image(p).image, 1 - ramp / 255.0, atol=1e-6)


def test_dicom_palette_colour_without_tables_is_refused(tmp_path):
    p = write_dicom(tmp_path / "pal.dcm", dicom_ramp() // 16, "PALETTE COLOR")
    with pytest.raises(ImageReadError, match=r"pal\.dcm: PALETTE COLOR .*\(MONOCHROME2\)"):
        read_image(p)


def test_a_rescale_slope_of_zero_is_not_applied(tmp_path, caplog):
    """RescaleSlope 0 would make every pixel one value (a blank film, 'no_lung'): the stored
    values are used, and the log says so."""
    ramp = dicom_ramp()
    image = read_image(
        write_dicom(tmp_path / "z.dcm", ramp, RescaleSlope=0, RescaleIntercept=5)
    ).image
    np.testing.assert_allclose(image, (ramp - ramp.min()) / np.ptp(ramp), atol=1e-6)
    assert "z.dcm: RescaleSlope 0" in caplog.text


def test_rgb_without_planar_configuration_is_read_and_a_dicomdir_named(tmp_path):
    """PlanarConfiguration is required for colour, yet some writers leave it out: the usual
    order (pixel by pixel) is taken. A DICOMDIR given as a film is said to be an index."""
    rgb = np.dstack([dicom_ramp(), dicom_ramp() // 2, np.zeros((H, W), np.uint16)])
    p = write_dicom(tmp_path / "rgb.dcm", rgb, "RGB", Rows=H, Columns=W, SamplesPerPixel=3)
    want = rgb.mean(axis=-1)
    np.testing.assert_allclose(read_image(p).image, want / want.max(), atol=1e-5)
    from pydicom.dataset import Dataset

    index = write_dicom(tmp_path / "DICOMDIR", dicom_ramp(), DirectoryRecordSequence=[Dataset()])
    with pytest.raises(ImageReadError, match="DICOMDIR, the index of a DICOM disc"):
        read_image(index)
