"""Discovery of the official layouts and pair checks with problems named by file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lungseg.datasets import (
    Problem,
    check_pairs,
    discover,
    load_pair,
    summarize,
)
from lungseg.imageio import ImageReadError


def _by_id(samples):
    return {s.id: s for s in samples}


# ---------------------------------------------------------------- discovery per layout


def test_montgomery_official_left_right_union(montgomery_root, synth):
    samples, problems = discover(montgomery_root)
    assert problems == []
    assert [(s.dataset, s.id, s.label) for s in samples] == [
        ("montgomery", "MCUCXR_0001_0", 0),
        ("montgomery", "MCUCXR_0002_1", 1),
    ]
    s = samples[0]
    assert s.image.name == "MCUCXR_0001_0.png"
    assert s.image.parent.name == "CXR_png"
    assert set(s.extra) == {"left_lung", "right_lung"}
    assert s.extra["left_lung"].parent.name == "leftMask"
    assert s.extra["right_lung"].parent.name == "rightMask"
    assert sorted(p.parent.name for p in s.masks) == ["leftMask", "rightMask"]

    image, mask = load_pair(s)
    left, right = synth.lung_masks()
    assert image.shape == mask.shape == (synth.H, synth.W)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    np.testing.assert_array_equal(mask, left | right)  # union of both lung files
    # Montgomery's leftMask holds the patient's left lung: the image-right ellipse only
    with Image.open(s.extra["left_lung"]) as im:
        assert im.getbbox()[0] > synth.W // 2


def test_shenzhen_official(shenzhen_root, synth):
    samples, problems = discover(shenzhen_root)
    assert problems == []
    assert [(s.dataset, s.id, s.label) for s in samples] == [
        ("shenzhen", "CHNCXR_0001_0", 0),
        ("shenzhen", "CHNCXR_0002_1", 1),
    ]
    assert samples[0].masks[0].name == "CHNCXR_0001_0_mask.png"
    assert samples[0].masks[0].parent.name == "mask"
    image, mask = load_pair(samples[0])
    left, right = synth.lung_masks()
    np.testing.assert_array_equal(mask, left | right)
    assert image.dtype == np.float32 and 0 <= image.min() and image.max() <= 1


def test_combined_chest_xray_masks_and_labels(combined_root):
    samples, problems = discover(combined_root)
    assert problems == []
    got = {(s.dataset, s.id, s.label, s.masks[0].name) for s in samples}
    assert got == {
        ("montgomery", "MCUCXR_0001_0", 0, "MCUCXR_0001_0.png"),
        ("montgomery", "MCUCXR_0002_1", 1, "MCUCXR_0002_1.png"),
        ("shenzhen", "CHNCXR_0001_0", 0, "CHNCXR_0001_0_mask.png"),
        ("shenzhen", "CHNCXR_0002_1", 1, "CHNCXR_0002_1_mask.png"),
    }
    assert all(len(s.masks) == 1 and s.masks[0].parent.name == "masks" for s in samples)
    assert [s.dataset for s in samples] == sorted(s.dataset for s in samples)


def test_jsrt_layout(jsrt_root, synth):
    samples, problems = discover(jsrt_root)
    assert problems == []
    assert [(s.dataset, s.id, s.label) for s in samples] == [
        ("jsrt", "JPCLN001", 1),
        ("jsrt", "JPCNN001", 0),
    ]
    s = samples[0]
    assert set(s.extra) == {"left_lung", "right_lung", "heart", "left_clavicle", "right_clavicle"}
    assert sorted(p.parent.name for p in s.masks) == ["left_lung", "right_lung"]
    _, mask = load_pair(s)
    left, right = synth.lung_masks()
    np.testing.assert_array_equal(mask, left | right)  # heart/clavicles not in the lung mask


def test_scr_own_naming_with_gif_masks(scr_root, synth):
    samples, problems = discover(scr_root)
    assert problems == []
    assert [(s.dataset, s.id, s.label) for s in samples] == [
        ("jsrt", "JPCLN002", 1),
        ("jsrt", "JPCNN001", 0),
    ]
    s = _by_id(samples)["JPCNN001"]
    assert all(p.suffix == ".gif" for p in s.masks)
    assert sorted(p.parent.name for p in s.masks) == ["left lung", "right lung"]
    assert "heart" in s.extra
    _, mask = load_pair(s)
    left, right = synth.lung_masks()
    np.testing.assert_array_equal(mask, left | right)


def test_discover_all_layouts_in_one_root(all_layouts_root):
    samples, problems = discover(all_layouts_root)
    assert problems == []
    counts = Counter(s.dataset for s in samples)
    assert counts == {"montgomery": 3, "shenzhen": 3, "jsrt": 4}
    assert len({(s.dataset, s.id) for s in samples}) == len(samples)
    keys = [(s.dataset, s.id) for s in samples]
    assert keys == sorted(keys)


def test_duplicate_id_reported_once(tmp_path, synth):
    synth.write_montgomery_official(tmp_path, ids=("MCUCXR_0001_0",))
    synth.write_combined(tmp_path, mcu=("MCUCXR_0001_0",), chn=())
    samples, problems = discover(tmp_path)
    assert [s.id for s in samples] == ["MCUCXR_0001_0"]
    assert len(problems) == 1 and problems[0].problem == "duplicate id"
    assert "MCUCXR_0001_0.png" in str(problems[0])


def test_discover_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        discover(tmp_path / "nope")


def test_discover_folder_without_pairs(tmp_path, synth):
    synth.save_png(tmp_path / "random" / "a.png", synth.chest_image())
    with pytest.raises(FileNotFoundError) as e:
        discover(tmp_path)
    msg = str(e.value)
    assert str(tmp_path) in msg and "no image/mask pairs" in msg
    assert "CXR_png" in msg and "left_lung" in msg  # says which layouts are expected


# ---------------------------------------------------------------- problems by file name


def test_image_without_mask_is_reported(combined_root, synth):
    base = combined_root / "chest-xray-masks"
    synth.save_png(base / "CXR_png" / "CHNCXR_0099_1.png", synth.chest_image())
    samples, problems = discover(combined_root)
    assert "CHNCXR_0099_1" not in _by_id(samples)
    assert len(problems) == 1
    assert problems[0].path.endswith("CHNCXR_0099_1.png")
    assert "no lung mask" in problems[0].problem
    assert "CHNCXR_0099_1" in problems[0].fix


def test_jsrt_image_missing_one_lung_is_reported(jsrt_root):
    (jsrt_root / "jsrt" / "masks" / "right_lung" / "JPCNN001.png").unlink()
    samples, problems = discover(jsrt_root)
    assert [s.id for s in samples] == ["JPCLN001"]
    assert len(problems) == 1 and problems[0].path.endswith("JPCNN001.png")
    assert "left_lung/right_lung" in problems[0].problem


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
    s = _by_id(samples)[stem]
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
    assert lines[1] == "  skipped /d/a.png: mask is empty -> skipped"
    assert lines[2] == "  skipped /d/b.png: no lung mask found -> add it"
    assert summarize(3, []) == "3 pairs used, 0 skipped"


# ---------------------------------------------------------------- review: mask lookup


def test_mask_suffix_is_case_insensitive(tmp_path, synth):
    base = synth.write_montgomery_official(tmp_path, ids=("MCUCXR_0004_0",))
    for side in ("leftMask", "rightMask"):
        p = base / "ManualMask" / side / "MCUCXR_0004_0.png"
        p.rename(p.with_suffix(".PNG"))
    scr = synth.write_scr(tmp_path, ids=("JPCLN002",))
    p = scr / "masks" / "left lung" / "JPCLN002.gif"
    p.rename(p.with_suffix(".GIF"))
    chn = synth.write_shenzhen_official(tmp_path, ids=("CHNCXR_0002_0",))
    p = chn / "mask" / "CHNCXR_0002_0_mask.png"
    p.rename(p.with_suffix(".PNG"))
    samples, problems = discover(tmp_path)
    assert problems == []
    got = {s.id: sorted(p.suffix for p in s.masks) for s in samples}
    assert got == {
        "MCUCXR_0004_0": [".PNG", ".PNG"],
        "JPCLN002": [".GIF", ".gif"],
        "CHNCXR_0002_0": [".PNG"],
    }
    for s in samples:
        load_pair(s)


def test_montgomery_missing_side_names_manualmask_folder(montgomery_root):
    base = montgomery_root / "MontgomerySet"
    (base / "ManualMask" / "rightMask" / "MCUCXR_0002_1.png").unlink()
    samples, problems = discover(montgomery_root)
    assert [s.id for s in samples] == ["MCUCXR_0001_0"]
    (p,) = problems
    assert p.path == str(base / "CXR_png" / "MCUCXR_0002_1.png")
    assert (
        p.fix
        == f"add {base / 'ManualMask' / 'rightMask' / 'MCUCXR_0002_1.png'}, or remove the image"
    )


def test_montgomery_both_sides_missing_names_both_files(montgomery_root):
    base = montgomery_root / "MontgomerySet"
    for side in ("leftMask", "rightMask"):
        (base / "ManualMask" / side / "MCUCXR_0002_1.png").unlink()
    (p,) = discover(montgomery_root)[1]
    m = base / "ManualMask"
    assert p.fix == (
        f"add {m / 'leftMask' / 'MCUCXR_0002_1.png'} and {m / 'rightMask' / 'MCUCXR_0002_1.png'}"
        ", or remove the image"
    )


def test_scr_missing_lung_names_spaced_folder_and_gif(scr_root, synth):
    synth.write_jsrt(scr_root, ids=("JPCLN009",))  # a pair that stays
    base = scr_root / "scr"
    (base / "masks" / "left lung" / "JPCLN002.gif").unlink()
    (p,) = discover(scr_root)[1]
    assert p.fix == f"add {base / 'masks' / 'left lung' / 'JPCLN002.gif'}, or remove the image"
    # a whole side folder missing: named in the layout's own style
    for f in (base / "masks" / "right lung").iterdir():
        f.unlink()
    (base / "masks" / "right lung").rmdir()
    problems = discover(scr_root)[1]
    assert f"{base / 'masks' / 'right lung' / 'JPCNN001.gif'}" in problems[-1].fix


def test_shenzhen_missing_mask_names_mask_suffix(shenzhen_root, synth):
    base = shenzhen_root / "ChinaSet_AllFiles"
    synth.save_png(base / "CXR_png" / "CHNCXR_0003_1.png", synth.chest_image())
    (p,) = discover(shenzhen_root)[1]
    assert p.fix == f"add {base / 'mask' / 'CHNCXR_0003_1_mask.png'}, or remove the image"


def test_cxr_png_without_any_mask_folder_names_both_options(tmp_path, synth):
    synth.write_jsrt(tmp_path)  # so that discovery finds some pairs
    synth.save_png(tmp_path / "x" / "CXR_png" / "MCUCXR_0001_0.png", synth.chest_image())
    (p,) = discover(tmp_path)[1]
    assert str(tmp_path / "x" / "masks" / "MCUCXR_0001_0.png") in p.fix
    assert str(tmp_path / "x" / "ManualMask" / "leftMask" / "MCUCXR_0001_0.png") in p.fix


# ---------------------------------------------------------------- review: leftovers, orphans


def test_macos_and_windows_leftovers_are_ignored(combined_root, jsrt_root, synth):
    base = combined_root / "chest-xray-masks"
    junk = b"\x00\x05\x16\x07AppleDouble"
    for folder in (base / "CXR_png", base / "masks", jsrt_root / "jsrt" / "images"):
        (folder / "._MCUCXR_0001_0.png").write_bytes(junk)
        (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
        (folder / "Thumbs.db").write_bytes(b"xx")
    (jsrt_root / "jsrt" / "masks" / "left_lung" / "._JPCLN001.png").write_bytes(junk)
    mac = combined_root / "__MACOSX" / "chest-xray-masks"
    for sub in ("CXR_png", "masks"):
        (mac / sub).mkdir(parents=True)
        (mac / sub / "._MCUCXR_0001_0.png").write_bytes(junk)
    synth.save_png(mac / "CXR_png" / "MCUCXR_0009_0.png", synth.chest_image())  # even a real one
    samples, problems = discover(combined_root)
    assert problems == []
    assert len(samples) == 6
    assert not any("MACOSX" in str(s.image) or s.id.startswith(".") for s in samples)


def test_masks_without_their_image_are_reported(all_layouts_root):
    root = all_layouts_root
    (root / "MontgomerySet" / "CXR_png" / "MCUCXR_0001_0.png").unlink()
    (root / "ChinaSet_AllFiles" / "CXR_png" / "CHNCXR_0002_1.png").unlink()
    (root / "chest-xray-masks" / "CXR_png" / "MCUCXR_0003_0.png").unlink()
    (root / "jsrt" / "images" / "JPCNN001.png").unlink()
    samples, problems = discover(root)
    assert len(samples) == 6
    by_path = {Path(p.path).relative_to(root).as_posix(): p for p in problems}
    assert set(by_path) == {
        "MontgomerySet/ManualMask/leftMask/MCUCXR_0001_0.png",
        "ChinaSet_AllFiles/mask/CHNCXR_0002_1_mask.png",
        "chest-xray-masks/masks/MCUCXR_0003_0.png",
        "jsrt/masks/left_lung/JPCNN001.png",
    }
    assert all(p.problem == "mask without an image" for p in problems)
    mcu = by_path["MontgomerySet/ManualMask/leftMask/MCUCXR_0001_0.png"].fix
    assert mcu.startswith(f"add {root / 'MontgomerySet' / 'CXR_png' / 'MCUCXR_0001_0.png'} or ")
    assert "rightMask" in mcu  # every file of that film is named, once
    assert by_path["jsrt/masks/left_lung/JPCNN001.png"].fix.count("JPCNN001") == 6
