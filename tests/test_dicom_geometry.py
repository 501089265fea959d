"""DICOM geometry: pixel spacing at the patient (PixelSpacing, or ImagerPixelSpacing divided
by the estimated magnification) and PatientOrientation (mirrored, upside down)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from conftest import IMG_H, IMG_W
from dicomfiles import dicom_ramp, write_dicom

from lungseg.imageio import read_image


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


@pytest.mark.parametrize("tag", ["PixelSpacing", "ImagerPixelSpacing"])
def test_dicom_spacing(tmp_path, tag):
    p = write_dicom(tmp_path / "s.dcm", dicom_ramp(), **{tag: [0.143, 0.15]})
    assert read_image(p).spacing == pytest.approx((0.143, 0.15))


@pytest.mark.parametrize(
    "attrs,spacing",
    [
        ({"PixelSpacing": "0.2"}, None),  # one value
        ({"PixelSpacing": ["0.2", ""]}, None),  # an empty one
        ({"PixelSpacing": ["0.2", "0.2", "0.2"]}, None),
        ({"PixelSpacing": [0, 0]}, None),
        ({"PixelSpacing": [-0.2, -0.2]}, None),
        ({"PixelSpacing": ["nan", "0.2"]}, None),
        ({"PixelSpacing": "0.2", "ImagerPixelSpacing": [0.1, 0.1]}, (0.1, 0.1)),  # the next tag
    ],
    ids=["one-value", "empty-value", "three-values", "zero", "negative", "nan", "falls-back"],
)  # fmt: skip
def test_malformed_spacing_is_not_used_said_and_the_film_is_read(tmp_path, caplog, attrs, spacing):
    rad = read_image(write_dicom(tmp_path / "m.dcm", dicom_ramp(), **attrs))
    assert rad.spacing == (pytest.approx(spacing) if spacing else None)
    assert rad.image.std() > 0.1
    assert "m.dcm: PixelSpacing" in caplog.text and "not two positive numbers" in caplog.text


@pytest.mark.parametrize("attrs", [{"PixelSpacing": ""}, {"ImagerPixelSpacing": [0.15, 0.15],
                                   "EstimatedRadiographicMagnificationFactor": ""}])  # fmt: skip
def test_an_empty_spacing_or_magnification_is_unknown_not_wrong(tmp_path, caplog, attrs):
    rad = read_image(write_dicom(tmp_path / "m.dcm", dicom_ramp(), **attrs))
    assert rad.spacing == (None if "PixelSpacing" in attrs else pytest.approx((0.15, 0.15)))
    assert "not two positive numbers" not in caplog.text


@pytest.mark.parametrize("groups", ["SharedFunctionalGroupsSequence",
                                    "PerFrameFunctionalGroupsSequence"])  # fmt: skip
def test_an_enhanced_dicoms_spacing_in_its_functional_groups(tmp_path, groups):
    """Enhanced (multi-frame) objects, and files GDCM transcodes to them, keep PixelSpacing in
    the Pixel Measures functional group, not at the top of the dataset."""
    from pydicom.dataset import Dataset

    measures, group = Dataset(), Dataset()
    measures.PixelSpacing = [0.16, 0.17]
    group.PixelMeasuresSequence = [measures]
    rad = read_image(write_dicom(tmp_path / "e.dcm", dicom_ramp(), **{groups: [group]}))
    assert rad.spacing == pytest.approx((0.16, 0.17))


@pytest.mark.parametrize(
    "attrs,width,spacing,warned",
    [
        ({"ImagerPixelSpacing": [1, 1]}, 1600, None, True),  # GDCM's default: 1.6 m wide
        ({"PixelSpacing": [1, 1]}, 600, (1, 1), False),  # 60 cm of 1 mm pixels: can be
        ({"PixelSpacing": [100, 100]}, IMG_W, None, True),
        ({"PixelSpacing": [1e-9, 1e-9]}, IMG_W, None, True),
        ({"PixelSpacing": [100, 100], "ImagerPixelSpacing": [0.2, 0.2]}, IMG_W, (0.2, 0.2), True),
    ],
    ids=["gdcm-1-on-1600px", "1mm-on-600px", "100mm", "1e-9mm", "falls-back"],
)
def test_a_spacing_no_radiograph_has_is_not_used(tmp_path, caplog, attrs, width, spacing, warned):
    """mm² and mm only from a spacing that fits a radiograph; else the next tag's or pixels,
    and the log says why."""
    pixels = np.tile(np.linspace(0, 4095, width).astype(np.uint16), (IMG_H, 1))
    rad = read_image(write_dicom(tmp_path / "g.dcm", pixels, **attrs))
    assert rad.spacing == (pytest.approx(spacing) if spacing else None)
    assert ("g.dcm" in caplog.text and "not used" in caplog.text) == warned


def test_a_window_that_cannot_be_applied_is_skipped_with_a_warning(tmp_path, caplog):
    ramp = dicom_ramp()
    p = write_dicom(tmp_path / "w.dcm", ramp, WindowCenter=1000, WindowWidth=0)
    image = read_image(p).image
    np.testing.assert_allclose(image, (ramp - ramp.min()) / np.ptp(ramp), atol=1e-6)  # unwindowed
    assert "w.dcm" in caplog.text and "not windowed" in caplog.text


def test_dicom_pixel_spacing_preferred_over_imager(tmp_path):
    p = write_dicom(
        tmp_path / "s.dcm", dicom_ramp(), PixelSpacing=[0.2, 0.2], ImagerPixelSpacing=[0.1, 0.1]
    )
    assert read_image(p).spacing == pytest.approx((0.2, 0.2))


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


@pytest.mark.filterwarnings("ignore:Invalid value for VR CS")  # lower case, as some sites write
def test_dicom_view_body_part_and_modality_are_read(tmp_path):
    attrs = {"ViewPosition": "ll ", "BodyPartExamined": "Chest", "Modality": "CR"}
    rad = read_image(write_dicom(tmp_path / "v.dcm", dicom_ramp(), **attrs))
    assert (rad.view, rad.body_part, rad.modality) == ("LL", "CHEST", "CR")
    bare = read_image(write_dicom(tmp_path / "b.dcm", dicom_ramp()))  # DX, nothing else said
    assert (bare.view, bare.body_part, bare.modality) == ("", "", "DX")
    two = read_image(write_dicom(tmp_path / "m.dcm", dicom_ramp(), ViewPosition=["PA", "LL"]))
    assert two.view == "PA"  # of several values, the first


def test_predict_flags_a_lateral_view_and_writes_it_in_its_row(tiny_model, tmp_path):
    from lungseg.predict import predict_paths

    (tmp_path / "in").mkdir()
    write_dicom(
        tmp_path / "in" / "pa.dcm", dicom_ramp(), ViewPosition="PA", PixelSpacing=[0.2, 0.3]
    )
    write_dicom(tmp_path / "in" / "lat.dcm", dicom_ramp(), ViewPosition="LL")
    assert predict_paths([str(tmp_path / "in")], str(tmp_path / "out"), model=str(tiny_model)) == []
    with open(tmp_path / "out" / "results.csv", newline="") as f:
        rows = {Path(r["file"]).stem: r for r in csv.DictReader(f)}
    assert rows["lat"]["view"] == "LL" and rows["lat"]["quality"] == "check"
    assert rows["lat"]["flags"].split(";")[0] == "not_frontal_view"
    assert rows["pa"]["view"] == "PA" and "not_frontal_view" not in rows["pa"]["flags"]
    pa = rows["pa"]  # measurements in mm by the header's spacing; none without it
    assert int(pa["right_height_px"]) + int(pa["left_height_px"]) > 0
    for side in ("right", "left"):
        px = int(pa[f"{side}_height_px"])
        assert float(pa[f"{side}_height_mm"]) == pytest.approx(0.2 * px, abs=0.05)
        assert float(pa[f"{side}_area_mm2"]) == pytest.approx(
            0.06 * int(pa[f"{side}_area_px"]), abs=0.05
        )
    assert rows["lat"]["right_height_mm"] == "" and rows["lat"]["right_area_mm2"] == ""
