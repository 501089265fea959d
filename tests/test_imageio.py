"""Every reader returns float32 HxW in [0,1] with the right values; bad files are refused with
the file name in the message."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from lungseg.imageio import (
    ImageReadError,
    _read_gray_png,
    is_supported,
    read_image,
    read_mask,
    to_gray_float,
)

H, W = 40, 48


def ramp8() -> np.ndarray:
    """uint8 HxW with every value 0..255 present."""
    return (np.arange(H * W).reshape(H, W) % 256).astype(np.uint8)


def check_float_image(img: np.ndarray, shape=(H, W)):
    assert img.dtype == np.float32
    assert img.shape == shape
    assert img.min() >= 0.0 and img.max() <= 1.0


# ---------------------------------------------------------------- rasters


def test_png_8bit_gray(tmp_path):
    a = ramp8()
    Image.fromarray(a).save(tmp_path / "g.png")
    rad = read_image(tmp_path / "g.png")
    check_float_image(rad.image)
    np.testing.assert_allclose(rad.image, a / 255.0, atol=1e-6)
    assert rad.spacing is None
    assert rad.path == str(tmp_path / "g.png")


@pytest.mark.parametrize("mode", ["L", "I;16"])
def test_gray_png_fast_path_gives_pillows_pixels(tmp_path, mode):
    """8- and 16-bit gray PNGs are decoded by OpenCV, with the values Pillow would give."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256 if mode == "L" else 65536, (H, W)).astype(
        np.uint8 if mode == "L" else np.uint16
    )
    Image.fromarray(a).save(tmp_path / "g.png")
    fast = _read_gray_png(tmp_path / "g.png")
    with Image.open(tmp_path / "g.png") as im:
        assert im.mode == mode
        np.testing.assert_array_equal(fast, to_gray_float(im))


def test_fast_path_leaves_other_pngs_to_pillow(tmp_path):
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / "rgb.png")
    Image.fromarray(ramp8()).convert("P").save(tmp_path / "pal.png")
    Image.fromarray(ramp8()).save(tmp_path / "g.jpg")
    Image.fromarray(ramp8()).save(tmp_path / "gray.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "gray.png").read_bytes()[:-20])
    for name in ("rgb.png", "pal.png", "g.jpg", "cut.png"):
        assert _read_gray_png(tmp_path / name) is None, name


def test_png_16bit_gray_full_precision(tmp_path):
    a = (np.arange(H * W).reshape(H, W) * 34).astype(np.uint16)  # 0..65246, all distinct
    Image.fromarray(a).save(tmp_path / "g16.png")
    img = read_image(tmp_path / "g16.png").image
    check_float_image(img)
    np.testing.assert_allclose(img, a / 65535.0, atol=1e-6)
    assert len(np.unique(img)) == H * W  # not squeezed to 256 levels


def test_png_16bit_dark_image_not_mistaken_for_8bit(tmp_path):
    a = (np.arange(H * W).reshape(H, W) % 200).astype(np.uint16)  # 16-bit file, values < 256
    Image.fromarray(a).save(tmp_path / "dark16.png")
    img = read_image(tmp_path / "dark16.png").image
    np.testing.assert_allclose(img, a / 65535.0, atol=1e-7)


def test_rgb_png_uses_luma(tmp_path):
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:, :16] = (200, 200, 200)
    rgb[:, 16:32] = (255, 0, 0)
    rgb[:, 32:] = (0, 0, 255)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    img = read_image(tmp_path / "rgb.png").image
    check_float_image(img)
    np.testing.assert_allclose(img[:, :16], 200 / 255, atol=1 / 255)
    np.testing.assert_allclose(img[:, 16:32], 0.299 * 255 / 255, atol=1 / 255)  # ITU-R 601
    np.testing.assert_allclose(img[:, 32:], 0.114 * 255 / 255, atol=1 / 255)


def test_rgba_composited_on_black(tmp_path):
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[:, : W // 2, 3] = 255  # opaque
    rgba[:, W // 2 :, 3] = 128  # half transparent
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    img = read_image(tmp_path / "rgba.png").image
    check_float_image(img)
    np.testing.assert_allclose(img[:, : W // 2], 200 / 255, atol=1 / 255)
    np.testing.assert_allclose(img[:, W // 2 :], 200 * 128 / 255 / 255, atol=2 / 255)


def test_palette_png(tmp_path):
    idx = np.zeros((H, W), np.uint8)
    idx[:, W // 2 :] = 1
    im = Image.fromarray(idx, mode="P")
    im.putpalette([10, 10, 10, 240, 240, 240] + [0, 0, 0] * 254)
    im.save(tmp_path / "pal.png")
    with Image.open(tmp_path / "pal.png") as check:
        assert check.mode == "P"
    img = read_image(tmp_path / "pal.png").image
    check_float_image(img)
    np.testing.assert_allclose(img[:, : W // 2], 10 / 255, atol=1e-6)
    np.testing.assert_allclose(img[:, W // 2 :], 240 / 255, atol=1e-6)


def test_jpeg(tmp_path):
    a = np.full((H, W), 60, np.uint8)
    a[:, W // 2 :] = 200
    Image.fromarray(a).save(tmp_path / "x.jpg", quality=95)
    img = read_image(tmp_path / "x.jpg").image
    check_float_image(img)
    # lossy: compare away from the edge
    assert abs(float(img[:, 4:16].mean()) - 60 / 255) < 3 / 255
    assert abs(float(img[:, -16:-4].mean()) - 200 / 255) < 3 / 255


@pytest.mark.parametrize("dtype,top", [(np.uint8, 255.0), (np.uint16, 65535.0)])
def test_tiff(tmp_path, dtype, top):
    a = (np.arange(H * W).reshape(H, W) * (1 if dtype == np.uint8 else 31)) % (int(top) + 1)
    a = a.astype(dtype)
    Image.fromarray(a).save(tmp_path / "x.tif")
    img = read_image(tmp_path / "x.tif").image
    check_float_image(img)
    np.testing.assert_allclose(img, a / top, atol=1e-6)


def test_bmp_and_gif(tmp_path):
    a = ramp8()
    Image.fromarray(a).save(tmp_path / "x.bmp")
    np.testing.assert_allclose(read_image(tmp_path / "x.bmp").image, a / 255, atol=1e-6)
    b = np.where(ramp8() > 127, 255, 0).astype(np.uint8)
    Image.fromarray(b).save(tmp_path / "x.gif")
    np.testing.assert_allclose(read_image(tmp_path / "x.gif").image, b / 255, atol=1e-6)


def test_read_mask_png_gif_and_bilevel(tmp_path):
    m = np.zeros((H, W), np.uint8)
    m[10:30, 5:20] = 255
    Image.fromarray(m).save(tmp_path / "m.gif")
    Image.fromarray(m > 0).save(tmp_path / "m1.png")  # mode "1"
    Image.fromarray(m).save(tmp_path / "m.png")
    for name in ("m.gif", "m1.png", "m.png"):
        got = read_mask(tmp_path / name)
        assert got.dtype == np.uint8 and got.shape == (H, W)
        np.testing.assert_array_equal(got, m, err_msg=name)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_mask(tmp_path / "missing.png")


# ---------------------------------------------------------------- DICOM


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
    ds.Rows, ds.Columns = pixels.shape
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


@pytest.mark.parametrize("orient,flipped", [(None, False), (["L", "F"], False), (["R", "F"], True)])
def test_dicom_patient_orientation(tmp_path, orient, flipped):
    attrs = {} if orient is None else {"PatientOrientation": orient}
    rad = read_image(write_dicom(tmp_path / "o.dcm", dicom_ramp(), **attrs))
    assert rad.flipped is flipped
    np.testing.assert_allclose(rad.image, dicom_ramp() / 4095.0, atol=1e-5)  # pixels unchanged


def test_raster_not_flipped(tmp_path):
    Image.fromarray(ramp8()).save(tmp_path / "g.png")
    assert read_image(tmp_path / "g.png").flipped is False


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


# ---------------------------------------------------------------- refusals


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.png"):
        read_image(tmp_path / "nothere.png")


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"empty\.png.*0 bytes"):
        read_image(p)


def test_text_file_named_png(tmp_path):
    p = tmp_path / "readme.png"
    p.write_text("this is text, not an image\n" * 10)
    with pytest.raises(ValueError, match="readme.png"):
        read_image(p)


def test_truncated_png(tmp_path):
    Image.fromarray(ramp8()).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    p = tmp_path / "cut.png"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="cut.png"):
        read_image(p)


def test_corrupt_bytes_with_png_signature(tmp_path):
    p = tmp_path / "corrupt.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(ImageReadError, match="corrupt.png"):
        read_image(p)


def test_tiny_image_refused(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "tiny.png")
    with pytest.raises(ImageReadError, match=r"tiny\.png.*4x4"):
        read_image(tmp_path / "tiny.png")


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit gray
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(
    "size,reason",
    [((60000, 60000), "decompression bomb"), ((25000, 20000), "larger than any radiograph")],
)
def test_decompression_bomb_refused(tmp_path, size, reason):
    """Only the header is read: a 60000x60000 claim is refused before any decoding."""
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_header_only(*size))
    with pytest.raises(ImageReadError, match=rf"bomb\.png.*{reason}"):
        read_image(p)
