"""Files whose names are not UTF-8 (a zip from a Windows machine unpacked on Linux, an old
archive in Latin-1): read, segmented and written like any other. OpenCV's imread and imwrite
crash the process on such a path (OpenCV 5.1: a segmentation fault), so lungseg never hands
it one."""

from __future__ import annotations

import os
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from lungseg.imageio import read_image
from lungseg.phantom import write_phantoms
from lungseg.png import write_png
from lungseg.report import check_sheets

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="byte file names: Linux")


def _undecodable(folder, name: bytes):
    """`folder`/`name` (bytes that are not UTF-8) as Python names it (surrogate escapes)."""
    path = os.fsdecode(os.fsencode(folder) + b"/" + name)
    assert "\udce9" in path
    return path


def test_a_float_tiff_with_such_a_name_is_read(tmp_path):
    a = np.random.default_rng(0).normal(100, 30, (30, 40))
    ok, data = cv2.imencode(".tif", a)
    path = _undecodable(tmp_path, b"caf\xe9.tif")
    with open(path, "wb") as f:
        f.write(data.tobytes())
    img = read_image(path).image
    np.testing.assert_allclose(img, (a - a.min()) / (a.max() - a.min()), atol=1e-6)


def test_a_check_sheet_shows_such_a_films_overlay(tmp_path):
    path = _undecodable(tmp_path, b"caf\xe9_overlay.png")
    write_png(path, np.tile(np.array([9, 100, 200], np.uint8), (50, 40, 1)))
    stem = os.path.basename(path).removesuffix("_overlay.png")
    pages = check_sheets(tmp_path, [{"mask": f"{stem}_mask.png", "quality": "check"}])
    sheet = np.asarray(Image.open(pages[0]).convert("RGB"))
    assert (sheet == (9, 100, 200)).all(-1).any()


def test_phantoms_are_written_below_such_a_folder(tmp_path):
    folder = _undecodable(tmp_path, b"d\xe9mo")
    (film,) = write_phantoms(folder, n=1, size=64)
    assert read_image(film).image.shape == (64, 64)
    assert np.asarray(Image.open(film.parent.parent / "masks" / film.name)).max() == 255
