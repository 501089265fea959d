"""Pair checks: broken pairs (size mismatch, non-binary, empty, corrupt, zero-byte) are skipped
with a message naming the file, or refused with --strict; valid mask encodings load; the summary
text."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import by_id

from lungseg.datasets import Problem, check_pairs, discover, load_pair, summarize
from lungseg.imageio import ImageReadError


@pytest.fixture
def broken_root(tmp_path, synth):
    """Combined layout: 2 good pairs and one of each kind of broken pair."""
    base = synth.write_combined(tmp_path, mcu=("MCUCXR_0001_0",), chn=("CHNCXR_0001_0",))
    img, msk = base / "CXR_png", base / "masks"
    left, right = synth.lung_masks()
    good = (left | right) * 255

    def pair(stem, image=None, mask=None):
        synth.save_png(img / f"{stem}.png", synth.chest_image() if image is None else image)
        synth.save_png(msk / f"{stem}.png", good if mask is None else mask)

    pair("MCUCXR_0010_0", mask=np.zeros((synth.H + 8, synth.W), np.uint8))  # size mismatch
    jpeg_like = good.astype(np.int16)
    jpeg_like[good > 0] -= np.arange(int((good > 0).sum())) % 4  # 255, 254, 253, 252
    jpeg_like[1, 1] = 3  # levels 0, 3, 252..255
    pair("MCUCXR_0011_0", mask=jpeg_like.astype(np.uint8))  # non-binary (JPEG-like levels)
    pair("MCUCXR_0012_0", mask=np.zeros((synth.H, synth.W), np.uint8))  # empty mask
    pair("MCUCXR_0013_0")
    (img / "MCUCXR_0013_0.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)  # corrupt
    pair("MCUCXR_0014_0")
    (img / "MCUCXR_0014_0.png").write_bytes(b"")  # zero-byte image
    pair("MCUCXR_0015_0")
    (msk / "MCUCXR_0015_0.png").write_bytes(b"")  # zero-byte mask
    return tmp_path


BROKEN = {
    "MCUCXR_0010_0": "80",  # message gives both sizes
    "MCUCXR_0011_0": "not binary",
    "MCUCXR_0012_0": "empty",
    "MCUCXR_0013_0": "not a readable image",
    "MCUCXR_0014_0": "0 bytes",
    "MCUCXR_0015_0": "mask is not a readable image",
}


def test_check_pairs_skips_bad_pairs_and_names_files(broken_root):
    samples, problems = discover(broken_root)
    assert problems == []  # every broken pair still has both files: found, then checked
    assert len(samples) == 8
    good, bad = check_pairs(samples)
    assert sorted(s.id for s, _, _ in good) == ["CHNCXR_0001_0", "MCUCXR_0001_0"]
    assert len(bad) == len(BROKEN)
    by_stem = {p.path.rsplit("/", 1)[-1].removesuffix(".png"): p for p in bad}
    assert set(by_stem) == set(BROKEN)
    for stem, words in BROKEN.items():
        p = by_stem[stem]
        assert f"{stem}.png" in p.problem, p  # the file is named in the message
        assert words in p.problem, p
        assert p.fix == "skipped"
    mismatch = by_stem["MCUCXR_0010_0"].problem
    assert "64x88" in mismatch and "64x80" in mismatch
    assert "6 gray levels" in by_stem["MCUCXR_0011_0"].problem
    for _, image, mask in good:
        assert image.shape == mask.shape and set(np.unique(mask)) == {0, 1}


@pytest.mark.parametrize("stem", sorted(BROKEN))
def test_load_pair_raises_value_error_naming_file(broken_root, stem):
    samples, _ = discover(broken_root)
    s = by_id(samples)[stem]
    with pytest.raises(ValueError) as e:  # ImageReadError is a ValueError too
        load_pair(s)
    assert f"{stem}.png" in str(e.value)


def test_check_pairs_strict_raises(broken_root):
    samples, _ = discover(broken_root)
    with pytest.raises((ValueError, ImageReadError)):
        check_pairs(samples, strict=True)


def test_load_pair_accepts_0_1_and_full_masks(tmp_path, synth):
    base = synth.write_combined(tmp_path, mcu=("MCUCXR_0001_0", "MCUCXR_0002_0"), chn=())
    left, right = synth.lung_masks()
    synth.save_png(base / "masks" / "MCUCXR_0001_0.png", (left | right).astype(np.uint8))
    synth.save_png(base / "masks" / "MCUCXR_0002_0.png", np.full((synth.H, synth.W), 255, np.uint8))
    samples, _ = discover(tmp_path)
    _, m1 = load_pair(samples[0])
    np.testing.assert_array_equal(m1, left | right)
    _, m2 = load_pair(samples[1])
    assert m2.all()


def test_summarize_text():
    problems = [
        Problem("/d/a.png", "mask is empty", "skipped"),
        Problem("/d/b.png", "no lung mask found", "add it"),
    ]
    text = summarize(7, problems)
    lines = text.splitlines()
    assert lines[0] == "7 pairs used, 2 skipped"
    assert lines[1] == "  /d/a.png: mask is empty -> skipped"
    assert lines[2] == "  /d/b.png: no lung mask found -> add it"
    assert summarize(3, []) == "3 pairs used, 0 skipped"


def test_a_pair_whose_exif_orientations_differ_is_refused(tmp_path, synth):
    """Films and masks are read as displayed. A film turned upside down by its EXIF tag beside
    a mask without one (drawn on the stored pixels, or on the displayed film: no way to tell)
    keeps its size, so only the tags show that one is turned against the other."""
    from PIL import Image

    base = synth.write_combined(tmp_path, mcu=("MCUCXR_0001_0", "MCUCXR_0002_0"), chn=())
    upside_down = Image.Exif()
    upside_down[0x0112] = 3
    for name in ("CXR_png/MCUCXR_0002_0.png", "masks/MCUCXR_0001_0.png"):
        turned = Image.open(base / name)
        turned.save(base / name, exif=upside_down)  # same pixels, now displayed turned
    for name in ("MCUCXR_0001_0", "MCUCXR_0002_0"):  # both ways round
        with pytest.raises(ValueError, match="EXIF orientation .* differs"):
            load_pair(by_id(discover(tmp_path)[0])[name])
    Image.open(base / "masks/MCUCXR_0002_0.png").save(
        base / "masks/MCUCXR_0002_0.png", exif=upside_down
    )
    image, mask = load_pair(by_id(discover(tmp_path)[0])["MCUCXR_0002_0"])  # both turned: fine
    stored = np.asarray(Image.open(base / "masks/MCUCXR_0002_0.png")) > 0
    np.testing.assert_array_equal(mask, np.rot90(stored, 2))
