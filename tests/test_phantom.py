"""Synthetic chest radiograph phantom: shapes, determinism, anatomy and disease variants."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from lungseg.phantom import DISEASES, Phantom, make_phantom, write_phantoms

SIZE = 128


@pytest.fixture(scope="module")
def clean() -> Phantom:
    return make_phantom(SIZE, seed=3)


@pytest.fixture(scope="module")
def variants() -> dict[str, Phantom]:
    return {d: make_phantom(SIZE, seed=5, disease=d) for d in DISEASES}


def test_shapes_dtypes_ranges(clean: Phantom) -> None:
    assert clean.image.shape == (SIZE, SIZE) and clean.image.dtype == np.float32
    assert 0.0 <= clean.image.min() and clean.image.max() <= 1.0
    assert clean.image.std() > 0.1  # a real picture, not a flat field
    for m in (clean.lungs, clean.right, clean.left, clean.heart):
        assert m.shape == (SIZE, SIZE) and m.dtype == np.uint8
        assert set(np.unique(m)) <= {0, 1}


def test_non_square_output() -> None:
    p = make_phantom(96, seed=1, height=160)
    assert p.image.shape == p.lungs.shape == (160, 96)
    assert p.right.any() and p.left.any()
    assert make_phantom(160, seed=1, height=96).image.shape == (96, 160)


def test_deterministic_per_seed(clean: Phantom) -> None:
    again = make_phantom(SIZE, seed=3)
    np.testing.assert_array_equal(clean.image, again.image)
    np.testing.assert_array_equal(clean.lungs, again.lungs)


def test_different_seeds_differ(clean: Phantom) -> None:
    other = make_phantom(SIZE, seed=4)
    assert np.abs(clean.image - other.image).mean() > 0.01
    assert (clean.lungs != other.lungs).mean() > 0.005


def test_masks_consistent(clean: Phantom) -> None:
    np.testing.assert_array_equal(clean.lungs, clean.right | clean.left)
    assert not (clean.right & clean.left).any()
    assert not (clean.lungs & clean.heart).any()
    frac = clean.lungs.mean()
    assert 0.15 < frac < 0.45, frac  # lung fields cover a plausible part of the film
    assert clean.heart.sum() > 0.02 * SIZE * SIZE


@pytest.mark.parametrize("seed", range(4))
def test_sides_and_heart_position(seed: int) -> None:
    p = make_phantom(SIZE, seed=seed)
    x_right = np.nonzero(p.right)[1].mean()
    x_left = np.nonzero(p.left)[1].mean()
    x_heart = np.nonzero(p.heart)[1].mean()
    assert x_right < SIZE / 2 < x_left  # patient's right lung is on the image left
    assert x_heart > SIZE / 2  # heart mostly on the image right
    assert p.right.sum() > p.left.sum()  # left lung loses the cardiac notch


def test_anatomy_in_the_range_of_real_films() -> None:
    """Proportions the phantom was calibrated to (benchmarks/phantom_anatomy.py): on the JSRT/SCR
    train and val masks left/right lung area is 0.81 (5-95%: 0.69-0.92), heart/lungs area 0.31
    (0.22-0.43), and the heart ends above the lowest lung point (0.88 of the lungs' height)."""
    lr, hl, bottom = [], [], []
    for seed in range(8):
        p = make_phantom(256, seed=seed)
        rows, hrows = np.flatnonzero(p.lungs.any(1)), np.flatnonzero(p.heart.any(1))
        lr.append(p.left.sum() / p.right.sum())
        hl.append(p.heart.sum() / p.lungs.sum())
        bottom.append((hrows[-1] - rows[0]) / (rows[-1] - rows[0]))
    assert 0.76 < np.mean(lr) < 0.86 and min(lr) > 0.69, lr
    assert 0.26 < np.mean(hl) < 0.36 and max(hl) < 0.43, hl
    assert max(bottom) < 0.99 and np.mean(bottom) < 0.95, bottom


def test_lungs_darker_than_heart_and_mediastinum(clean: Phantom) -> None:
    img, lungs = clean.image, clean.lungs.astype(bool)
    rows = np.nonzero(lungs.any(1))[0]
    band = np.zeros_like(lungs)  # central strip between the lungs, at lung height
    cols = np.nonzero(lungs[rows].any(0))[0]
    mid = (np.nonzero(clean.right.any(0))[0].max() + np.nonzero(clean.left.any(0))[0].min()) // 2
    band[rows, mid - 2 : mid + 3] = True
    band &= ~lungs
    assert cols.size and band.any()
    assert img[lungs].mean() + 0.15 < img[clean.heart.astype(bool)].mean()
    assert img[lungs].mean() + 0.15 < img[band].mean()


def test_diseases_keep_masks(variants: dict[str, Phantom]) -> None:
    base = variants["none"]
    for name, p in variants.items():
        for attr in ("lungs", "right", "left", "heart"):
            np.testing.assert_array_equal(getattr(p, attr), getattr(base, attr), err_msg=name)
        if name != "none":
            assert np.abs(p.image - base.image).mean() > 1e-3, name


@pytest.mark.parametrize("disease", ["opacity", "white-out", "effusion"])
def test_diseases_raise_lung_intensity(variants: dict[str, Phantom], disease: str) -> None:
    lungs = variants["none"].lungs.astype(bool)
    before = variants["none"].image[lungs].mean()
    after = variants[disease].image[lungs].mean()
    assert after > before + 0.01, (disease, before, after)


def test_white_out_one_lung_opaque(variants: dict[str, Phantom]) -> None:
    base, white = variants["none"], variants["white-out"]
    gains = [white.image[m > 0].mean() - base.image[m > 0].mean() for m in (base.right, base.left)]
    assert max(gains) > 0.15 and min(gains) < 0.03, gains


def test_write_phantoms_as_a_data_layout_evaluate_reads(tmp_path, tiny_model) -> None:
    from lungseg.cli import main

    out = tmp_path / "new" / "dir"
    paths = write_phantoms(out, n=2, size=96, seed=7, disease="devices")
    assert paths == [out / "images" / "phantom_007.png", out / "images" / "phantom_008.png"]
    for p in paths:
        with Image.open(p) as im:
            assert im.size == (96, 96) and im.mode == "L"
        with Image.open(out / "masks" / p.name) as m:
            arr = np.asarray(m)
            assert m.size == (96, 96) and set(np.unique(arr)) <= {0, 255} and arr.any()
    ref = make_phantom(96, seed=7, disease="devices")
    np.testing.assert_array_equal(np.asarray(Image.open(out / "masks" / paths[0].name)) > 0,
                                  ref.lungs > 0)  # fmt: skip
    scored = tmp_path / "eval"
    assert main(["evaluate", "--model", str(tiny_model), "--data", str(out), "--split", "all",
                 "--out", str(scored), "--device", "cpu"]) == 0  # fmt: skip
    with open(scored / "per_image.csv", newline="") as f:
        assert [r["id"] for r in csv.DictReader(f)] == ["phantom_007", "phantom_008"]


@pytest.mark.parametrize(
    "kwargs",
    [{"disease": "pneumonia"}, {"disease": ""}, {"size": 32}, {"size": 63}, {"height": 10}],
)
def test_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        make_phantom(**kwargs)


def test_error_message_lists_choices(tmp_path) -> None:
    with pytest.raises(ValueError, match="white-out"):
        make_phantom(disease="nope")
    for kwargs in ({"disease": "nope"}, {"size": 16}):
        with pytest.raises(ValueError):
            write_phantoms(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()  # nothing written for bad arguments


@pytest.mark.parametrize("command", ["phantom", "demo"])
@pytest.mark.parametrize(
    "args, message",
    [
        (["--size", "100000"], "argument --size: must be from 64 to 8192, got 100000"),  # 40 GB
        (["--size", "10"], "argument --size: must be from 64 to 8192, got 10"),
        (["--seed", "-1"], "argument --seed: must be from 0 to 4294967295, got -1"),
    ],
)
def test_cli_phantom_sizes_and_seeds_out_of_range_are_refused(
    tmp_path, capsys, command, args, message
):
    from lungseg.cli import main

    with pytest.raises(SystemExit) as e:
        main([command, "--out", str(tmp_path / "p"), *args])
    assert e.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "p").exists()
