"""The Python API beyond arrays (test_arrays.py): PIL images of any mode and Radiographs made by
hand read as their files are, the options checked, results and Segmenters that behave as
Python objects (compared, pickled)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image

from lungseg.arrays import checked
from lungseg.imageio import Radiograph, read_image
from lungseg.phantom import write_phantoms
from lungseg.segmenter import Segmenter


@pytest.fixture(scope="module")
def film(tmp_path_factory):
    """A 128 px phantom as an 8-bit PNG."""
    return write_phantoms(tmp_path_factory.mktemp("ph"), n=1, size=128, seed=3)[0]


@pytest.fixture(scope="module")
def seg(tiny_model):
    return Segmenter(tiny_model, device="cpu")


@pytest.mark.parametrize("mode", ["P", "CMYK", "LA", "RGBA", "I;16"])
def test_a_pil_image_of_any_mode_is_read_as_its_file(film, seg, mode, tmp_path):
    """Palette indices were read as brightness, CMYK's K as alpha (no lung at all)."""
    im = Image.open(film).convert("RGB")
    im = im.convert(mode, palette=Image.Palette.ADAPTIVE) if mode == "P" else im.convert(mode)
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    im.save(path)
    np.testing.assert_array_equal(seg(im).prob, seg(path).prob)
    np.testing.assert_array_equal(seg(Image.open(path)).mask, seg(path).mask)


def test_a_radiograph_made_by_hand_is_scaled_and_its_spacing_checked(film, seg):
    """A 0-255 image was taken as is (three times the lung area); spacings no radiograph has
    gave areas of negative or huge mm²."""
    rad = read_image(film)
    u8 = np.round(rad.image * 255).astype(np.uint8)
    by_hand = seg(Radiograph(u8, spacing=(0.5, 0.5)))
    from_file = seg(Radiograph(rad.image, spacing=(0.5, 0.5)))
    np.testing.assert_array_equal(by_hand.mask, from_file.mask)
    assert by_hand.stats["right_area_mm2"] == from_file.stats["right_area_mm2"]
    for bad in ((-1, 0.5), (10.0, 10.0), (0.5,), "0.5", (0.5, float("nan"))):
        with pytest.raises(ValueError, match="Radiograph spacing .* pixel sizes in mm"):
            seg(Radiograph(rad.image, spacing=bad))
    with pytest.raises(ValueError, match="float in \\[0,1\\]; got float64 in 12..248"):
        checked(Radiograph(u8 * 1.0))
    assert checked(rad).image is rad.image  # as read from a file: used as it is
    as_array = checked(Radiograph(rad.image, spacing=np.array([0.14, 0.14])))  # (== raised)
    assert as_array.spacing == (0.14, 0.14)


def test_options_and_inputs_that_cannot_work_are_refused(tiny_model, seg, film):
    for size in (0, -5, 1, 16):
        with pytest.raises(ValueError, match="work_size must be None or at least 256"):
            Segmenter(tiny_model, work_size=size)
    with pytest.raises(TypeError, match="for yours: Segmenter\\(model\\)"):
        Segmenter.default(model=tiny_model)
    for one in (str(film), film, np.zeros((2, 64, 64), np.float32)):
        with pytest.raises(TypeError, match="batch\\(\\) takes a list of images"):
            seg.batch(one)
    assert Segmenter(bytes(tiny_model)).config == seg.config  # a model named by bytes too
    with pytest.raises(FileNotFoundError, match="an empty file name"):  # was '.: a folder'
        seg("")


def test_results_compare_and_segmenters_pickle(seg, film):
    """`==` of two results raised (numpy arrays); a Segmenter could not be pickled (for
    multiprocessing with spawn): it is sent without its network and loads it again."""
    a, b = seg(film), seg(film)
    assert a == a and a != b and a in [a]  # (by identity: what matters is that nothing raises)
    again = pickle.loads(pickle.dumps(seg))
    np.testing.assert_array_equal(again(film).prob, a.prob)
    assert again.config == seg.config and again.work_size == seg.work_size
