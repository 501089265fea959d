"""Shared fixtures: small synthetic radiographs with known lung masks, written in the folder
layouts users download (Montgomery, Shenzhen, "Chest Xray Masks and Labels", JSRT, SCR).

Synthetic film: bright body (~0.7) with two dark ellipses (~0.25) as lungs. The masks are those
ellipses, so every answer (pairing, union, area, side) is known exactly."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from PIL import Image

H, W = 80, 64  # portrait, like a chest film


IMG_H, IMG_W = 40, 48  # images of test_gray_levels, test_read_*, test_dicom*, test_arrays


def ramp8(h: int = IMG_H, w: int = IMG_W) -> np.ndarray:
    """uint8 HxW with every value 0..255 present."""
    return (np.arange(h * w).reshape(h, w) % 256).astype(np.uint8)


def ramp16(top: int, h: int = IMG_H, w: int = IMG_W) -> np.ndarray:
    """uint16 HxW ramp from 0 to `top`."""
    return np.round(np.linspace(0, top, h * w)).astype(np.uint16).reshape(h, w)


def check_float_image(img: np.ndarray, shape=(IMG_H, IMG_W)):
    """A reader's contract: float32 of the expected shape, values in [0, 1]."""
    assert img.dtype == np.float32
    assert img.shape == shape
    assert img.min() >= 0.0 and img.max() <= 1.0


def train_fails(args, caplog, capsys) -> str:
    """Run `lungseg train ARGS`: exit 2 with a message, no traceback; returns the message."""
    from lungseg import cli

    with caplog.at_level(logging.ERROR, logger="lungseg"):
        assert cli.main(["train", *args]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


def lung_masks(h: int = H, w: int = W, shift: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(image-left ellipse, image-right ellipse) as uint8 {0,1}. The image-left lung is the
    patient's RIGHT lung, the image-right one the patient's LEFT lung."""
    left_img = np.zeros((h, w), np.uint8)
    right_img = np.zeros((h, w), np.uint8)
    cy = int(h * 0.48) + shift
    axes = (max(2, int(w * 0.15)), max(3, int(h * 0.3)))
    cv2.ellipse(left_img, (int(w * 0.3), cy), axes, 0, 0, 360, 1, -1)
    cv2.ellipse(right_img, (int(w * 0.7), cy), axes, 0, 0, 360, 1, -1)
    return left_img, right_img


def chest_image(
    h: int = H, w: int = W, seed: int = 0, mask: np.ndarray | None = None
) -> np.ndarray:
    """uint8 HxW synthetic film: body 180, lungs 64, mild deterministic noise."""
    if mask is None:
        a, b = lung_masks(h, w)
        mask = a | b
    rng = np.random.default_rng(seed)
    img = np.full((h, w), 180.0)
    img[mask > 0] = 64.0
    img += rng.normal(0, 6, (h, w))
    return np.clip(img, 0, 255).astype(np.uint8)


def save_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def save_mask(path: Path, mask01: np.ndarray) -> Path:
    """Binary {0,255} mask; format from the suffix (.png, .gif)."""
    return save_png(path, (mask01 > 0).astype(np.uint8) * 255)


def by_id(samples) -> dict:
    """Discovered samples by their id."""
    return {s.id: s for s in samples}


# ---------------------------------------------------------------- layouts


def write_montgomery_official(root: Path, ids=("MCUCXR_0001_0", "MCUCXR_0002_1"), h=H, w=W):
    base = root / "MontgomerySet"
    for k, stem in enumerate(ids):
        left, right = lung_masks(h, w, shift=k % 3)
        save_png(base / "CXR_png" / f"{stem}.png", chest_image(h, w, k, left | right))
        # Montgomery's leftMask is the patient's left lung (image right)
        save_mask(base / "ManualMask" / "leftMask" / f"{stem}.png", right)
        save_mask(base / "ManualMask" / "rightMask" / f"{stem}.png", left)
    return base


def write_shenzhen_official(root: Path, ids=("CHNCXR_0001_0", "CHNCXR_0002_1"), h=H, w=W):
    base = root / "ChinaSet_AllFiles"
    for k, stem in enumerate(ids):
        left, right = lung_masks(h, w, shift=k % 3)
        save_png(base / "CXR_png" / f"{stem}.png", chest_image(h, w, 10 + k, left | right))
        save_mask(base / "mask" / f"{stem}_mask.png", left | right)
    return base


def write_combined(
    root: Path,
    mcu=("MCUCXR_0001_0", "MCUCXR_0002_1"),
    chn=("CHNCXR_0001_0", "CHNCXR_0002_1"),
    h=H,
    w=W,
):
    """'Chest Xray Masks and Labels': Montgomery masks share the image name, Shenzhen `_mask`."""
    base = root / "chest-xray-masks"
    for k, stem in enumerate(list(mcu) + list(chn)):
        left, right = lung_masks(h, w, shift=k % 3)
        save_png(base / "CXR_png" / f"{stem}.png", chest_image(h, w, 20 + k, left | right))
        name = f"{stem}_mask.png" if stem.startswith("CHNCXR") else f"{stem}.png"
        save_mask(base / "masks" / name, left | right)
    return base


def write_jsrt(root: Path, ids=("JPCLN001", "JPCNN001"), h=H, w=W):
    base = root / "jsrt"
    for k, stem in enumerate(ids):
        left, right = lung_masks(h, w, shift=k % 3)
        save_png(base / "images" / f"{stem}.png", chest_image(h, w, 30 + k, left | right))
        save_mask(base / "masks" / "left_lung" / f"{stem}.png", right)  # patient's left
        save_mask(base / "masks" / "right_lung" / f"{stem}.png", left)
        heart = np.zeros((h, w), np.uint8)
        cv2.circle(heart, (w // 2, int(h * 0.65)), max(2, w // 8), 1, -1)
        save_mask(base / "masks" / "heart" / f"{stem}.png", heart)
        clav = np.zeros((h, w), np.uint8)
        clav[4:7, 4 : w // 2 - 2] = 1
        save_mask(base / "masks" / "right_clavicle" / f"{stem}.png", clav)
        save_mask(base / "masks" / "left_clavicle" / f"{stem}.png", clav[:, ::-1].copy())
    return base


def write_scr(root: Path, ids=("JPCNN001", "JPCLN002"), h=H, w=W):
    """SCR's own naming: folder names with spaces and GIF masks."""
    base = root / "scr"
    for k, stem in enumerate(ids):
        left, right = lung_masks(h, w, shift=k % 3)
        save_png(base / "images" / f"{stem}.png", chest_image(h, w, 40 + k, left | right))
        save_mask(base / "masks" / "left lung" / f"{stem}.gif", right)
        save_mask(base / "masks" / "right lung" / f"{stem}.gif", left)
        heart = np.zeros((h, w), np.uint8)
        cv2.circle(heart, (w // 2, int(h * 0.65)), max(2, w // 8), 1, -1)
        save_mask(base / "masks" / "heart" / f"{stem}.gif", heart)
    return base


def make_dataset_root(
    root: Path, n_per_group: int = 10, h: int = H, w: int = W, jsrt: bool = True
) -> Path:
    """A combined root large enough for splits: Montgomery and Shenzhen (combined layout) with
    labels 0 and 1, and JSRT nodule/non-nodule, `n_per_group` images per (dataset, label)."""
    root = Path(root)
    mcu = [
        f"MCUCXR_{i:04d}_{lab}"
        for lab in (0, 1)
        for i in range(lab * 100 + 1, lab * 100 + 1 + n_per_group)
    ]
    chn = [
        f"CHNCXR_{i:04d}_{lab}"
        for lab in (0, 1)
        for i in range(lab * 100 + 1, lab * 100 + 1 + n_per_group)
    ]
    write_combined(root, mcu, chn, h, w)
    if jsrt:
        ids = [f"JPCLN{i:03d}" for i in range(1, n_per_group + 1)]
        ids += [f"JPCNN{i:03d}" for i in range(1, n_per_group + 1)]
        write_jsrt(root, ids, h, w)
    return root


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A random-weight resnet18 DeepLabV3+ at 64 px: exercises every code path quickly; its
    scores mean nothing."""
    import torch

    from lungseg.model import ModelConfig, build_model, save_safetensors

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_safetensors(build_model("resnet18"), ModelConfig(encoder="resnet18", size=64), path)
    return path


@pytest.fixture(scope="session")
def synth():
    """Helpers to draw and write synthetic data (see module functions)."""
    return SimpleNamespace(
        H=H,
        W=W,
        lung_masks=lung_masks,
        chest_image=chest_image,
        save_png=save_png,
        save_mask=save_mask,
        write_montgomery_official=write_montgomery_official,
        write_shenzhen_official=write_shenzhen_official,
        write_combined=write_combined,
        write_jsrt=write_jsrt,
        write_scr=write_scr,
        make_dataset_root=make_dataset_root,
    )


@pytest.fixture
def montgomery_root(tmp_path):
    write_montgomery_official(tmp_path)
    return tmp_path


@pytest.fixture
def shenzhen_root(tmp_path):
    write_shenzhen_official(tmp_path)
    return tmp_path


@pytest.fixture
def combined_root(tmp_path):
    write_combined(tmp_path)
    return tmp_path


@pytest.fixture
def jsrt_root(tmp_path):
    write_jsrt(tmp_path)
    return tmp_path


@pytest.fixture
def scr_root(tmp_path):
    write_scr(tmp_path)
    return tmp_path


@pytest.fixture
def all_layouts_root(tmp_path):
    """One root holding every layout (distinct ids, so no duplicates)."""
    write_montgomery_official(tmp_path, ids=("MCUCXR_0001_0", "MCUCXR_0002_1"))
    write_shenzhen_official(tmp_path, ids=("CHNCXR_0001_0", "CHNCXR_0002_1"))
    write_combined(tmp_path, mcu=("MCUCXR_0003_0",), chn=("CHNCXR_0003_1",))
    write_jsrt(tmp_path, ids=("JPCLN001", "JPCNN001"))
    write_scr(tmp_path, ids=("JPCNN002", "JPCLN002"))
    return tmp_path


@pytest.fixture
def dataset_root(tmp_path):
    """Combined root with 10 images per (dataset, label) group: 60 pairs."""
    return make_dataset_root(tmp_path / "data")
