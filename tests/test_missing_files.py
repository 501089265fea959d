"""Files missing from a pair: the problem names the file, and the fix names the missing file
in the layout's own style (Montgomery's ManualMask sides, SCR's spaced folders and GIFs,
Shenzhen's _mask suffix); masks without their image are reported too."""

from __future__ import annotations

from pathlib import Path

from conftest import by_id

from lungseg.datasets import discover

# ---------------------------------------------------------------- images without masks


def test_image_without_mask_is_reported(combined_root, synth):
    base = combined_root / "chest-xray-masks"
    synth.save_png(base / "CXR_png" / "CHNCXR_0099_1.png", synth.chest_image())
    samples, problems = discover(combined_root)
    assert "CHNCXR_0099_1" not in by_id(samples)
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


# ---------------------------------------------------------------- masks without images


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
