"""Discovery of the official layouts (Montgomery, Shenzhen, "Chest Xray Masks and Labels",
JSRT, SCR): pairing, left/right lungs joined, ids and labels, one root holding every layout, and
the files discovery ignores or refuses."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import by_id
from PIL import Image

from lungseg.datasets import discover
from lungseg.files import film_stem
from lungseg.imageio import film_pixels, read_image
from lungseg.pairs import load_film_pair, load_pair

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
    s = by_id(samples)["JPCNN001"]
    assert all(p.suffix == ".gif" for p in s.masks)
    assert sorted(p.parent.name for p in s.masks) == ["left lung", "right lung"]
    assert "heart" in s.extra
    _, mask = load_pair(s)
    left, right = synth.lung_masks()
    np.testing.assert_array_equal(mask, left | right)


def test_masks_and_mask_beside_one_cxr_png_are_both_read(tmp_path, synth):
    """The Kaggle set's Montgomery masks in masks/, Shenzhen's mask set unpacked as mask/: every
    film pairs (one folder was taken, in the file system's order; the other's films were
    reported as lacking masks). A mask in both: the first folder's used, the second named
    unless it is the same file."""
    base = synth.write_combined(tmp_path)
    (base / "mask").mkdir()
    for f in sorted((base / "masks").glob("CHNCXR_*")):
        f.rename(base / "mask" / f.name)
    samples, problems = discover(tmp_path)
    assert {s.id: s.masks[0].parent.name for s in samples} == {
        "MCUCXR_0001_0": "masks", "MCUCXR_0002_1": "masks",
        "CHNCXR_0001_0": "mask", "CHNCXR_0002_1": "mask",
    }  # fmt: skip
    assert problems == []
    for f in (base / "mask").iterdir():  # the same masks in both (the Kaggle set's masks/
        (base / "masks" / f.name).write_bytes(f.read_bytes())  # beside Shenzhen's own mask/)
    assert len(discover(tmp_path)[0]) == 4 and discover(tmp_path)[1] == []  # nothing to ask
    left, right = synth.lung_masks()
    synth.save_mask(base / "masks" / "CHNCXR_0001_0_mask.png", left)  # two masks that differ
    samples, problems = discover(tmp_path)
    assert {s.id: s.masks[0].parent.name for s in samples}["CHNCXR_0001_0"] == "mask"
    assert [(Path(p.path).parent.name, p.problem) for p in problems] == [
        ("masks", "a second mask for film CHNCXR_0001_0")
    ]


def test_predictions_beside_cxr_png_are_no_truth(tmp_path, synth):
    """`lungseg predict CXR_png --out masks` beside it: refused as in images/ + masks/ (it was
    scored, at IoU 1.0 against itself), once, not once per film."""
    base = synth.write_combined(tmp_path, chn=())
    synth.save_png(base / "masks" / "MCUCXR_0001_0_overlay.png", synth.chest_image())
    with pytest.raises(FileNotFoundError, match="holds lungseg predict output, not truth") as e:
        discover(tmp_path)
    assert "no lung mask found" not in str(e.value)


def test_jsrt_films_as_distributed_pair_with_scr_masks_at_their_size(tmp_path, synth):
    """JSRT's raw .IMG films (2048 px, 12-bit big-endian negatives, 0.175 mm) beside SCR's
    1024 px GIF masks: found, read as displayed, and scored at the masks' size (they were no
    films: every mask was reported without an image)."""
    base = synth.write_scr(tmp_path, ids=("JPCLN001",))
    png = base / "images" / "JPCLN001.png"
    film = np.asarray(Image.open(png), np.float32) / 255  # (the phantom, at 64 x 64 px)
    big = cv2.resize(film, (2048, 2048), interpolation=cv2.INTER_NEAREST)
    (4095 - np.round(big * 4095)).astype(">u2").tofile(base / "images" / "JPCLN001.IMG")
    samples, problems = discover(tmp_path)  # beside the PNG made of it: the original is used
    assert [s.image.name for s in samples] == ["JPCLN001.IMG"]  # (both were left out)
    assert [(p.path, p.problem) for p in problems] == [
        (str(png), "a copy of JSRT film JPCLN001 in another format")
    ]
    png.unlink()
    for f in (base / "masks").rglob("*.gif"):  # SCR's masks: half the film's size
        mask = np.asarray(Image.open(f))
        Image.fromarray(cv2.resize(mask, (1024, 1024), interpolation=cv2.INTER_NEAREST)).save(f)
    (base / "images" / "NOTES.IMG").write_bytes(b"not a film")  # another .IMG: no film
    assert film_stem(base / "images" / "NOTES.IMG") == "NOTES.IMG"
    assert film_pixels(base / "images" / "JPCLN001.IMG") == 2048 * 2048  # predict's budget
    samples, problems = discover(tmp_path)
    assert [(s.id, s.image.name) for s in samples] == [("JPCLN001", "JPCLN001.IMG")]
    assert problems == []
    rad = read_image(base / "images" / "JPCLN001.IMG")
    assert rad.image.shape == (2048, 2048) and rad.spacing == (0.175, 0.175)
    np.testing.assert_allclose(rad.image, big, atol=1 / 4095)
    scored, mask = load_film_pair(samples[0])
    assert scored.image.shape == mask.shape == (1024, 1024) and scored.spacing == (0.35, 0.35)
    shrunk = cv2.resize(big, (1024, 1024), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(scored.image, shrunk, atol=1 / 4095)


def test_discover_all_layouts_in_one_root(all_layouts_root):
    samples, problems = discover(all_layouts_root)
    assert problems == []
    counts = Counter(s.dataset for s in samples)
    assert counts == {"montgomery": 3, "shenzhen": 3, "jsrt": 4}
    assert len({(s.dataset, s.id) for s in samples}) == len(samples)
    keys = [(s.dataset, s.id) for s in samples]
    assert keys == sorted(keys)


def test_linked_folders_under_the_root_are_searched_each_once(all_layouts_root, tmp_path_factory):
    """A root of links to where the sets were unpacked (a loop and a second link add nothing);
    they were skipped unsaid."""
    root = tmp_path_factory.mktemp("links")
    for name in sorted(p.name for p in all_layouts_root.iterdir()):
        (root / name).symlink_to(all_layouts_root / name, target_is_directory=True)
    (root / "again").symlink_to(root, target_is_directory=True)  # a loop: the root itself
    (root / "twice").symlink_to(all_layouts_root, target_is_directory=True)
    samples, problems = discover(root)
    assert problems == []
    assert sorted(s.id for s in samples) == sorted(s.id for s in discover(all_layouts_root)[0])


def test_duplicate_id_reported_once(tmp_path, synth):
    synth.write_montgomery_official(tmp_path, ids=("MCUCXR_0001_0",))
    synth.write_combined(tmp_path, mcu=("MCUCXR_0001_0",), chn=())
    samples, problems = discover(tmp_path)
    assert [s.id for s in samples] == ["MCUCXR_0001_0"]
    assert len(problems) == 1 and problems[0].problem == "another film named MCUCXR_0001_0"
    assert "MCUCXR_0001_0.png" in str(problems[0])


def test_the_same_film_under_a_name_differing_in_case_is_one_film(tmp_path, synth):
    """MCUCXR_0001_0.png beside a copy named mcucxr_0001_0.png: one is used, the other reported
    (used twice, one copy could train and the other score as held out)."""
    import shutil

    base = synth.write_combined(tmp_path, mcu=("MCUCXR_0001_0",), chn=())
    for folder in ("CXR_png", "masks"):
        shutil.copy(base / folder / "MCUCXR_0001_0.png", base / folder / "mcucxr_0001_0.png")
    samples, problems = discover(tmp_path)
    assert [s.id for s in samples] == ["MCUCXR_0001_0"]
    assert sorted(p.problem for p in problems) == [
        "a second copy of film mcucxr_0001_0",  # (its mask, named alike, is reported too)
        "a second mask of the same name but for case",
    ]


def test_a_second_mask_for_a_film_is_reported_and_the_first_used(tmp_path, synth):
    base = synth.write_combined(tmp_path, mcu=("MCUCXR_0001_0",), chn=("CHNCXR_0001_0",))
    synth.save_mask(base / "masks" / "MCUCXR_0001_0_mask.png", np.zeros((synth.H, synth.W)))
    synth.save_mask(base / "masks" / "CHNCXR_0001_0_mask.gif", np.zeros((synth.H, synth.W)))
    samples, problems = discover(tmp_path)
    assert [s.masks[0].name for s in samples] == ["MCUCXR_0001_0.png", "CHNCXR_0001_0_mask.png"]
    assert sorted((Path(p.path).name, p.problem) for p in problems) == [
        ("CHNCXR_0001_0_mask.gif", "a second mask for film CHNCXR_0001_0"),
        ("MCUCXR_0001_0_mask.png", "a second mask for film MCUCXR_0001_0"),
    ]
    assert all(p.fix.startswith("remove one (used: ") for p in problems)


def test_masks_named_alike_but_for_case_are_reported(tmp_path, synth):
    base = synth.write_combined(tmp_path, mcu=("MCUCXR_0001_0",), chn=())
    synth.save_mask(base / "masks" / "mcucxr_0001_0.png", np.zeros((synth.H, synth.W)))
    samples, problems = discover(tmp_path)
    assert [s.masks[0].name for s in samples] == ["MCUCXR_0001_0.png"]  # (sorted first)
    assert [(Path(p.path).name, p.problem) for p in problems] == [
        ("mcucxr_0001_0.png", "a second mask of the same name but for case")
    ]


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


# ---------------------------------------------------------------- mask suffixes, leftovers


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


def test_your_own_films_images_beside_masks(tmp_path, synth):
    """images/ + masks/ (flat): a mask named as its film or with `_mask`, any film format the
    readers take; a film without a mask is reported with the file to add."""
    from dicomfiles import write_dicom

    base = tmp_path / "hospital"
    left, right = synth.lung_masks()
    film = synth.chest_image(mask=left | right)
    synth.save_png(base / "images" / "pat1.png", film)
    synth.save_mask(base / "masks" / "pat1.png", left | right)
    synth.save_png(base / "images" / "pat2.png", film)
    synth.save_mask(base / "masks" / "pat2_mask.png", left)
    write_dicom(base / "images" / "pat3.dicom", film.astype(np.uint16) * 16)
    Image.fromarray((right * 255).astype(np.uint8)).save(base / "masks" / "pat3.tiff")
    synth.save_png(base / "images" / "pat4.png", film)  # no mask
    samples, problems = discover(tmp_path)
    assert [(s.dataset, s.id, s.masks[0].name) for s in samples] == [
        ("other", "pat1", "pat1.png"),
        ("other", "pat2", "pat2_mask.png"),
        ("other", "pat3", "pat3.tiff"),
    ]
    assert [(p.problem, p.fix) for p in problems] == [
        ("no lung mask found", f"add {base / 'masks' / 'pat4'}.png, or remove the image")
    ]
    np.testing.assert_array_equal(load_pair(samples[1])[1], left)
    image, mask = load_pair(samples[2])
    np.testing.assert_array_equal(mask, right)
    assert image.shape == film.shape and image.dtype == np.float32


def test_your_own_films_layout_edge_cases(tmp_path, synth):
    """`mask/` also pairs; a masks/ folder lungseg predict wrote is refused as truth; the same
    film name at two sites is reported as such; a JSRT set beside a stray mask/ folder is
    still JSRT; when nothing pairs, the error shows the first problems."""
    left, right = synth.lung_masks()
    film = synth.chest_image()
    for site in ("siteA", "siteB"):
        synth.save_png(tmp_path / site / "images" / "0001.png", film)
        synth.save_mask(tmp_path / site / "mask" / "0001.png", left | right)
    synth.save_png(tmp_path / "run" / "images" / "x.png", film)  # masks/ = predict --out
    synth.save_mask(tmp_path / "run" / "masks" / "x_mask.png", left | right)
    synth.save_png(tmp_path / "run" / "masks" / "x_overlay.png", film)
    jsrt = synth.write_jsrt(tmp_path / "j")
    (jsrt / "mask").mkdir()
    samples, problems = discover(tmp_path)
    assert [(s.dataset, s.id) for s in samples] == [
        ("jsrt", "JPCLN001"), ("jsrt", "JPCNN001"), ("other", "0001")
    ]  # fmt: skip
    assert samples[-1].image.parts[-3] == "siteA"
    by_problem = {p.problem: p for p in problems}
    twice = by_problem["a second copy of film 0001"]  # the same file at both sites
    assert "siteB" in twice.path and "siteA" in twice.fix
    predicted = by_problem["holds lungseg predict output, not truth"]
    assert predicted.path == str(tmp_path / "run" / "masks")
    with pytest.raises(FileNotFoundError, match="no lung mask found"):
        synth.save_png(tmp_path / "lone" / "images" / "y.png", film)
        (tmp_path / "lone" / "masks").mkdir()
        discover(tmp_path / "lone")


def test_your_own_films_names_pair_ignoring_case_and_images_must_be_flat(tmp_path, synth):
    left, right = synth.lung_masks()
    film = synth.chest_image()
    synth.save_png(tmp_path / "a" / "images" / "Patient_006.png", film)
    synth.save_mask(tmp_path / "a" / "masks" / "patient_006_MASK.PNG", left | right)
    synth.save_png(tmp_path / "b" / "images" / "train" / "x.png", film)  # not flat
    synth.save_mask(tmp_path / "b" / "masks" / "train" / "x.png", left | right)
    samples, problems = discover(tmp_path)
    assert [(s.id, s.masks[0].name) for s in samples] == [("Patient_006", "patient_006_MASK.PNG")]
    assert [(p.path, p.problem) for p in problems] == [
        (str(tmp_path / "b" / "images"), "images/ holds folders: it must be flat")
    ]
    assert "images/train/" in problems[0].fix
    Image.fromarray(film).save(tmp_path / "a" / "images" / "Gif_1.gif")  # as predict reads it
    synth.save_mask(tmp_path / "a" / "masks" / "gif_1.png", left | right)
    assert [s.image.name for s in discover(tmp_path / "a")[0]] == ["Gif_1.gif", "Patient_006.png"]
    (tmp_path / "a" / "images" / "Gif_1.gif").unlink()
    (tmp_path / "a" / "masks" / "gif_1.png").unlink()
    synth.save_png(tmp_path / "a" / "images" / "late" / "y.png", film)  # beside flat films
    (tmp_path / "a" / "images" / "empty").mkdir()
    samples, problems = discover(tmp_path / "a")
    assert [s.id for s in samples] == ["Patient_006"]  # the flat films are still used
    assert [(p.path, p.problem) for p in problems] == [
        (str(tmp_path / "a" / "images"), "images/ holds folders: it must be flat")
    ]
    assert "images/late/" in problems[0].fix and "empty" not in problems[0].fix


def test_your_own_films_finds_dicoms_without_a_suffix(tmp_path, synth):
    """PACS exports name DICOMs IM0001 (no suffix): found by their DICM preamble and paired with
    masks/IM0001.png or IM0001_mask.png; other suffixless files (notes, DICOMDIR) are no films."""
    pytest.importorskip("pydicom")
    from dicomfiles import write_dicom

    base = tmp_path / "pacs"
    left, right = synth.lung_masks()
    film = synth.chest_image(mask=left | right)
    (base / "images").mkdir(parents=True)
    for name in ("IM0001", "IM0002", "IM0003", "DICOMDIR"):
        write_dicom(base / "images" / name, film.astype(np.uint16) * 16)
    (base / "images" / "NOTES").write_text("exported from PACS\n")
    synth.save_mask(base / "masks" / "IM0001.png", left | right)
    synth.save_mask(base / "masks" / "IM0002_mask.png", left)
    samples, problems = discover(tmp_path)
    assert [(s.dataset, s.id, s.image.name, s.masks[0].name) for s in samples] == [
        ("other", "IM0001", "IM0001", "IM0001.png"),
        ("other", "IM0002", "IM0002", "IM0002_mask.png"),
    ]
    assert [(p.path, p.fix) for p in problems] == [
        (
            str(base / "images" / "IM0003"),
            f"add {base / 'masks' / 'IM0003'}.png, or remove the image",
        )
    ]
    image, mask = load_pair(samples[1])
    np.testing.assert_array_equal(mask, left)
    assert image.shape == film.shape and np.corrcoef(image.ravel(), film.ravel())[0, 1] > 0.99


def test_your_own_films_finds_dicoms_named_by_their_uid(tmp_path, synth):
    """PACS exports may name DICOMs by their UID: `1.2.840.113619.2.55.3.7` has no suffix (its
    `.7` is part of the name), so the whole name is the id, paired with masks/<name>.png or
    <name>_mask.png and no mask reported as an orphan. Files with other unknown suffixes are
    opened, and films only when DICOM; IM0001 (no suffix) still pairs."""
    pytest.importorskip("pydicom")
    from dicomfiles import write_dicom

    base = tmp_path / "pacs"
    left, right = synth.lung_masks()
    film = synth.chest_image(mask=left | right)
    (base / "images").mkdir(parents=True)
    uids = ("1.2.840.113619.2.55.3.7", "1.2.840.113619.2.55.3.8", "1.2.840.113619.2.55.3.9")
    for name in (*uids, "IM0001"):
        write_dicom(base / "images" / name, film.astype(np.uint16) * 16)
    (base / "images" / "export.v2").write_text("not a film\n")
    synth.save_mask(base / "masks" / f"{uids[0]}.png", left | right)
    synth.save_mask(base / "masks" / f"{uids[1]}_mask.png", left)
    synth.save_mask(base / "masks" / "IM0001.png", right)
    samples, problems = discover(tmp_path)
    assert [(s.id, s.image.name, s.masks[0].name) for s in samples] == [
        (uids[0], uids[0], f"{uids[0]}.png"),
        (uids[1], uids[1], f"{uids[1]}_mask.png"),
        ("IM0001", "IM0001", "IM0001.png"),
    ]
    assert [(p.path, p.problem, p.fix) for p in problems] == [
        (
            str(base / "images" / uids[2]),
            "no lung mask found",
            f"add {base / 'masks' / uids[2]}.png, or remove the image",
        )
    ]
    image, mask = load_pair(samples[1])
    np.testing.assert_array_equal(mask, left)
    assert image.shape == film.shape


def test_film_stem():
    """A film's id: the name less a known image/DICOM suffix (any case), else the whole name."""
    from pathlib import Path

    from lungseg.files import film_stem

    cases = {"a.PNG": "a", "IM0001": "IM0001", "1.2.3.7": "1.2.3.7", "x.dcm": "x"}
    cases |= {"x.DICOM": "x", "b.tiff": "b", "c.jpeg": "c", "d.gif": "d", "e.f.jpg": "e.f"}
    assert {n: film_stem(Path("images") / n) for n in cases} == cases


def test_two_films_with_one_mask_are_neither_scored_and_predicts_outputs_are_no_films(
    tmp_path, synth
):
    """`x.png` and `x.jpg` (different films) beside one `x` mask: whose mask it is cannot be
    told, so neither is paired (one was, and scored against the other's mask). Outputs that
    `lungseg predict` wrote into images/ are not taken for films missing their masks."""
    base = tmp_path / "mine"
    left, right = synth.lung_masks()
    synth.save_png(base / "images" / "x.png", synth.chest_image(mask=left | right))
    Image.fromarray(synth.chest_image(seed=3)).save(base / "images" / "x.jpg")
    synth.save_mask(base / "masks" / "x.png", left | right)
    synth.save_png(base / "images" / "y.png", synth.chest_image(mask=left | right))
    synth.save_mask(base / "masks" / "y.png", left | right)
    for name in ("y_mask.png", "y_overlay.png", "check_overlays_01.png"):  # predict --out images
        synth.save_mask(base / "images" / name, left)
    samples, problems = discover(base)
    assert [s.id for s in samples] == ["y"]
    assert [p.problem for p in problems] == ["another film named x beside it, one mask for both"]


def test_a_montgomery_film_missing_one_half_of_its_mask_says_which(tmp_path, synth):
    base = synth.write_montgomery_official(tmp_path, ids=("MCUCXR_0004_0",))
    (base / "ManualMask" / "leftMask" / "MCUCXR_0004_0.png").unlink()
    with pytest.raises(FileNotFoundError, match="no left lung mask \\(leftMask\\) found"):
        discover(tmp_path)
