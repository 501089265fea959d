"""Discovery of the official layouts, pair checks with problems named by file, and splits."""

from __future__ import annotations

import csv
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from lungseg import datasets
from lungseg.datasets import (
    Problem,
    assign_splits,
    check_pairs,
    discover,
    load_pair,
    make_splits,
    select,
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


# ---------------------------------------------------------------- splits


def test_make_splits_deterministic_and_stratified(dataset_root):
    samples, _ = discover(dataset_root)
    assert len(samples) == 60
    a = make_splits(samples)
    b = make_splits(list(reversed(samples)))
    assert a == b  # independent of input order
    assert set(a) == {(s.dataset, s.id) for s in samples}
    assert set(a.values()) == {"train", "val", "test"}
    for ds in ("montgomery", "shenzhen", "jsrt"):
        for label in (0, 1):
            group = [s for s in samples if s.dataset == ds and s.label == label]
            assert len(group) == 10
            c = Counter(a[(s.dataset, s.id)] for s in group)
            assert c == {"train": 7, "val": 1, "test": 2}, (ds, label, c)
    other_salt = make_splits(samples, salt="other")
    assert other_salt != a  # the order comes from the salted hash
    assert Counter(other_salt.values()) == Counter(a.values())


def test_make_splits_larger_group_fractions(tmp_path):
    ids = [f"CHNCXR_{i:04d}_0" for i in range(1, 41)]
    samples = [datasets.Sample("shenzhen", i, tmp_path, [], 0) for i in ids]
    c = Counter(make_splits(samples).values())
    assert c == {"train": 28, "val": 4, "test": 8}


def test_assign_splits_writes_file_and_uses_root_file(dataset_root, tmp_path):
    samples, _ = discover(dataset_root)
    out = tmp_path / "run"
    out.mkdir()
    made = assign_splits(dataset_root, samples, out)
    assert made == make_splits(samples)
    with open(out / "splits.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 60 and set(rows[0]) == {"dataset", "id", "split"}
    assert {(r["dataset"], r["id"]): r["split"] for r in rows} == made

    # a splits.csv in the data root wins; samples missing from it get a deterministic split
    fixed = {(s.dataset, s.id): "test" for s in samples[:50]}
    datasets.write_splits(dataset_root / "splits.csv", fixed)
    used = assign_splits(dataset_root, samples, out)
    for k in fixed:
        assert used[k] == "test"
    rest = make_splits(samples[50:])
    for s in samples[50:]:
        assert used[(s.dataset, s.id)] == rest[(s.dataset, s.id)]
    assert datasets.read_splits(out / "splits.csv") == used

    assert assign_splits(dataset_root, samples) == used  # out_dir None: nothing written


def test_select_split_datasets_and_limit(dataset_root):
    samples, _ = discover(dataset_root)
    splits = make_splits(samples)
    train = select(samples, splits, "train")
    assert len(train) == 42
    assert all(splits[(s.dataset, s.id)] == "train" for s in train)
    only = select(samples, splits, "test", datasets=["jsrt"])
    assert len(only) == 4 and {s.dataset for s in only} == {"jsrt"}
    assert len(select(samples, splits, None)) == 60

    limited = select(samples, splits, "train", limit=3)
    assert len(limited) == 3
    assert {s.dataset for s in limited} == {"jsrt", "montgomery", "shenzhen"}
    limited = select(samples, splits, "train", limit=7)
    assert Counter(s.dataset for s in limited) == {"jsrt": 3, "montgomery": 2, "shenzhen": 2}
    assert select(samples, splits, "train", limit=7) == limited  # deterministic
    assert len(select(samples, splits, "val", limit=100)) == 6
