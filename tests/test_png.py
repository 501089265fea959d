"""The PNG writer: exact round trips through Pillow and OpenCV (gray, RGB, palette), with ISA-L or
zlib, clear errors for arrays it cannot write, and no half-written file."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from lungseg.png import write_png

H, W = 40, 48


@pytest.mark.parametrize("deflate", ["isal", "zlib"])
def test_write_png_is_lossless(tmp_path, monkeypatch, deflate):
    """The fast PNG encoder ('up' filter; ISA-L, or zlib where isal is not installed) must
    round-trip exactly through Pillow."""
    if deflate == "zlib":
        monkeypatch.setitem(sys.modules, "isal", None)  # `from isal import ...` -> ImportError
    else:
        pytest.importorskip("isal")
    rng = np.random.default_rng(0)
    labels = np.zeros((H, W), np.uint8)
    labels[5:30, 4:20], labels[8:35, 26:44] = 1, 2  # a left/right label map
    noisy = rng.integers(0, 256, (H, W), dtype=np.uint8)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    for name, arr in [("labels", labels), ("noisy", noisy), ("rgb", rgb)]:
        write_png(tmp_path / f"{name}.png", arr)
        back = np.asarray(Image.open(tmp_path / f"{name}.png"))
        np.testing.assert_array_equal(back, arr, err_msg=name)  # RGB order, not BGR


def test_write_png_palette_round_trips_indices_and_colours(tmp_path):
    rng = np.random.default_rng(1)
    palette = rng.integers(0, 256, (40, 3), dtype=np.uint8)
    idx = rng.integers(0, 40, (H, W), dtype=np.uint8)
    write_png(tmp_path / "p.png", idx, palette)
    with Image.open(tmp_path / "p.png") as im:
        assert im.mode == "P"
        np.testing.assert_array_equal(np.asarray(im), idx)
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), palette[idx])
    bgr = cv2.imread(str(tmp_path / "p.png"), cv2.IMREAD_COLOR)  # libpng reads it too
    np.testing.assert_array_equal(bgr[..., ::-1], palette[idx])


def test_write_png_rejects_what_it_cannot_write(tmp_path):
    for bad in [np.zeros((5, 5), np.uint16), np.zeros((5, 5, 4), np.uint8), np.zeros(5, np.uint8)]:
        with pytest.raises(ValueError, match="uint8 HxW or HxWx3"):
            write_png(tmp_path / "x.png", bad)


def test_write_png_palette_rejects_indices_outside_it(tmp_path):
    with pytest.raises(ValueError, match="indices below 4"):
        write_png(tmp_path / "p.png", np.full((5, 5), 4, np.uint8), np.zeros((4, 3), np.uint8))
    with pytest.raises(ValueError, match="Nx3"):
        write_png(tmp_path / "p.png", np.zeros((5, 5), np.uint8), np.zeros((4, 4), np.uint8))


def test_write_png_never_leaves_part_of_a_file(tmp_path, monkeypatch):
    """A full disk (or a kill) while a PNG is written leaves the file as it was before, never a
    0-byte or half-written PNG (which a later `predict --resume` would have to notice), and no
    temporary file beside it."""
    old = np.zeros((H, W), np.uint8)
    write_png(tmp_path / "m.png", old)
    real = Path.write_bytes

    def half_then_full(self, data):
        real(self, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", half_then_full)
    with pytest.raises(OSError, match="No space"):
        write_png(tmp_path / "m.png", np.full((H, W), 255, np.uint8))
    monkeypatch.undo()
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "m.png")), old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.png"]


def test_write_png_writes_as_in_place_writing_would(tmp_path):
    """Written in one step, yet as writing in place would: through a link to its file, under
    the longest file name the system allows, and (but for root) a read-only file refused."""
    target = tmp_path / "elsewhere.png"
    write_png(target, np.zeros((H, W), np.uint8))
    (tmp_path / "link.png").symlink_to(target)
    write_png(tmp_path / "link.png", np.full((H, W), 7, np.uint8))
    assert (tmp_path / "link.png").is_symlink()
    assert np.asarray(Image.open(target)).max() == 7
    long = tmp_path / ("x" * 245 + "_mask.png")  # 254 bytes
    write_png(long, np.ones((H, W), np.uint8))
    assert np.asarray(Image.open(long)).max() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["elsewhere.png", "link.png", long.name]
    )
    target.chmod(0o600)
    write_png(target, np.zeros((H, W), np.uint8))
    assert target.stat().st_mode & 0o777 == 0o600  # (a new file, its permissions kept)
    if os.geteuid() != 0:  # (root writes read-only files)
        target.chmod(0o444)
        with pytest.raises(PermissionError, match="read-only"):
            write_png(tmp_path / "link.png", np.zeros((H, W), np.uint8))
