"""Odd inputs a user's archive holds, found by black-box QA: files whose names are not UTF-8
(a zip from a Windows machine unpacked on Linux; OpenCV's imread, imwrite and putText crash
the process on such a path, so lungseg never hands it one), link loops, names too long, an
empty argument, a multi-page TIFF whose first page is a thumbnail."""

from __future__ import annotations

import os
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from lungseg.imageio import film_pixels, read_image
from lungseg.inputs import collect_inputs, output_stems
from lungseg.phantom import write_phantoms
from lungseg.png import write_png
from lungseg.report import check_sheets

linux = pytest.mark.skipif(sys.platform != "linux", reason="byte file names, loops: Linux")


def _undecodable(folder, name: bytes):
    """`folder`/`name` (bytes that are not UTF-8) as Python names it (surrogate escapes)."""
    path = os.fsdecode(os.fsencode(folder) + b"/" + name)
    assert "\udce9" in path
    return path


@linux
def test_a_float_tiff_with_such_a_name_is_read(tmp_path):
    a = np.random.default_rng(0).normal(100, 30, (30, 40))
    ok, data = cv2.imencode(".tif", a)
    path = _undecodable(tmp_path, b"caf\xe9.tif")
    with open(path, "wb") as f:
        f.write(data.tobytes())
    img = read_image(path).image
    np.testing.assert_allclose(img, (a - a.min()) / (a.max() - a.min()), atol=1e-6)


@linux
def test_a_check_sheet_shows_such_a_films_overlay(tmp_path):
    path = _undecodable(tmp_path, b"caf\xe9_overlay.png")
    write_png(path, np.tile(np.array([9, 100, 200], np.uint8), (50, 40, 1)))
    stem = os.path.basename(path).removesuffix("_overlay.png")
    pages = check_sheets(tmp_path, [{"mask": f"{stem}_mask.png", "quality": "check"}])
    sheet = np.asarray(Image.open(pages[0]).convert("RGB"))
    assert (sheet == (9, 100, 200)).all(-1).any()


@linux
def test_phantoms_are_written_below_such_a_folder(tmp_path):
    folder = _undecodable(tmp_path, b"d\xe9mo")
    (film,) = write_phantoms(folder, n=1, size=64)
    assert read_image(film).image.shape == (64, 64)
    assert np.asarray(Image.open(film.parent.parent / "masks" / film.name)).max() == 255


@linux
def test_the_api_takes_such_a_name_as_bytes(tmp_path):
    path = os.fsencode(tmp_path) + b"/caf\xe9.png"
    Image.fromarray(np.full((40, 48), 90, np.uint8)).save(os.fsdecode(path))
    from lungseg.imageio import Radiograph
    from lungseg.segmenter import Segmenter

    assert isinstance(Segmenter._radiograph(path), Radiograph)
    with pytest.raises(IsADirectoryError, match="a folder, not a file"):
        Segmenter._radiograph(str(tmp_path))


@linux
def test_link_loops_empty_arguments_and_names_too_long_are_inputs_that_match_nothing(tmp_path):
    """Each is reported as matching nothing, and the other inputs are still taken (a link loop
    named on the command line stopped the whole call with a traceback; '' searched the
    current folder; a name over 255 bytes stopped the call)."""
    (tmp_path / "loopA").symlink_to("loopB")
    (tmp_path / "loopB").symlink_to("loopA")
    film = tmp_path / "film.png"
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(film)
    odd = [str(tmp_path / "loopA"), str(tmp_path / "loopA" / "x.png"), "", "z" * 300 + ".png"]
    files, missing = collect_inputs([*odd, str(film)], out=tmp_path / "loopB")
    assert files == [film] and missing == odd


def test_long_film_names_get_output_names_that_fit(tmp_path):
    """A film whose name leaves no room for `_overlay.png` in a 255-byte file name gets a
    shortened output name: its start and a digest (two such films stay apart)."""
    names = ["y" * 244 + ".png", "y" * 243 + "z.png", "é" * 120 + ".png"]
    stems = output_stems([tmp_path / n for n in names])
    assert len(set(stems)) == 3
    for stem, name in zip(stems, names, strict=True):
        assert len(os.fsencode(stem + "_overlay.png")) <= 255 - 5  # (and `.tmp` beside it)
        assert stem[:50] == name[:50]


def test_a_tiff_whose_first_page_is_a_thumbnail_is_read_at_full_size(tmp_path):
    """Scanners and converters may write a reduced-resolution page before the full one: the
    largest page is the film (the first was segmented at 64 x 64 px and flagged ok)."""
    ramp = np.tile(np.linspace(0, 255, 200).astype(np.uint8), (150, 1))
    full = Image.fromarray(ramp)
    full.resize((32, 24)).save(tmp_path / "t.tif", save_all=True, append_images=[full])
    assert read_image(tmp_path / "t.tif").image.shape == (150, 200)
    full.save(tmp_path / "u.tif", save_all=True, append_images=[full.resize((32, 24))])
    assert read_image(tmp_path / "u.tif").image.shape == (150, 200)
    assert film_pixels(tmp_path / "t.tif") == 150 * 200  # predict's memory budget, likewise


def test_a_tiff_with_a_broken_page_chain_is_read_at_its_first_page(tmp_path):
    """A TIFF whose next-page offset points past its end (a cut or badly written file) is read
    as before this version looked for its largest page: its first page."""
    ramp = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (48, 1))
    Image.fromarray(ramp).save(tmp_path / "b.tif")
    data = bytearray((tmp_path / "b.tif").read_bytes())
    ifd = int.from_bytes(data[4:8], "little")  # (Pillow writes little-endian: II)
    entries = int.from_bytes(data[ifd : ifd + 2], "little")
    at = ifd + 2 + 12 * entries  # the next-page offset after the first page's entries
    data[at : at + 4] = (len(data) + 1000).to_bytes(4, "little")
    (tmp_path / "b.tif").write_bytes(bytes(data))
    np.testing.assert_allclose(read_image(tmp_path / "b.tif").image, ramp / 255, atol=1e-6)


def test_an_empty_overlay_leaves_its_check_sheet_tile_blank(tmp_path):
    """A 0-byte overlay (a kill or a full disk, before outputs were written in one step) does
    not stop the check sheets: its tile is left blank, its caption written."""
    (tmp_path / "a_overlay.png").write_bytes(b"")
    pages = check_sheets(tmp_path, [{"mask": "a_mask.png", "quality": "check", "flags": "x"}])
    assert len(pages) == 1


def test_a_file_given_for_a_folder_is_named_as_such(tmp_path):
    from lungseg.datasets import discover
    from lungseg.export import find_images

    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="notes.txt: a file, not a folder"):
        discover(tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError, match="notes.txt: a file, not a folder"):
        find_images(tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError, match="gone: folder not found"):
        discover(tmp_path / "gone")
