"""Find image/mask pairs in the layouts users download, check them, and split them.

Layouts found anywhere under a root folder:
- Montgomery official:   CXR_png/*.png + ManualMask/{leftMask,rightMask}/*.png
- Shenzhen official:     CXR_png/*.png + mask/ (or masks/) *_mask.png
- "Chest Xray Masks and Labels": CXR_png/ + masks/ (Montgomery same name, Shenzhen `_mask`)
- JSRT + SCR masks:      images/*.png + masks/{left_lung,right_lung,heart,...}/ (SCR's own
                         folder names with spaces, and .gif masks, are accepted too)
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .imageio import ImageReadError, read_image, read_mask

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
JSRT_STRUCTURES = ("left_lung", "right_lung", "heart", "left_clavicle", "right_clavicle")
MASK_SUFFIXES = (".png", ".gif", ".bmp", ".tif")


@dataclass
class Sample:
    """One radiograph with its lung mask files (their union is the lung mask)."""

    dataset: str
    id: str
    image: Path
    masks: list[Path]
    label: int | None = None  # TB (Montgomery/Shenzhen) or nodule (JSRT)
    extra: dict[str, Path] = field(default_factory=dict)  # left/right lung, heart, clavicles


@dataclass
class Problem:
    path: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem} -> {self.fix}"


def dataset_of(stem: str) -> str:
    if stem.upper().startswith("MCUCXR"):
        return "montgomery"
    if stem.upper().startswith("CHNCXR"):
        return "shenzhen"
    if stem.upper().startswith("JPC"):
        return "jsrt"
    return "other"


def label_of(stem: str) -> int | None:
    if stem.upper().startswith("JPCLN"):
        return 1
    if stem.upper().startswith("JPCNN"):
        return 0
    return int(stem[-1]) if stem[-1:] in ("0", "1") and "_" in stem else None


def _find(folder: Path, stem: str) -> Path | None:
    for suffix in MASK_SUFFIXES:
        p = folder / f"{stem}{suffix}"
        if p.is_file():
            return p
    return None


def _subdir(parent: Path, *names: str) -> Path | None:
    """Case-, space- and underscore-insensitive child folder lookup."""
    if not parent.is_dir():
        return None
    wanted = {n.lower().replace(" ", "_") for n in names}
    for child in parent.iterdir():
        if child.is_dir() and child.name.lower().replace(" ", "_") in wanted:
            return child
    return None


def _images(folder: Path) -> list[Path]:
    exts = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm"}
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in exts and p.is_file())


def _cxr_png_layout(cxr: Path, problems: list[Problem]) -> list[Sample]:
    base = cxr.parent
    masks = _subdir(base, "masks", "mask")
    manual = _subdir(base, "ManualMask")
    left = _subdir(manual, "leftMask") if manual else None
    right = _subdir(manual, "rightMask") if manual else None
    found = []
    for img in _images(cxr):
        stem = img.stem
        files: list[Path] = []
        extra: dict[str, Path] = {}
        if left and right and _find(left, stem) and _find(right, stem):
            extra = {"left_lung": _find(left, stem), "right_lung": _find(right, stem)}
            files = list(extra.values())
        elif masks and (m := _find(masks, stem) or _find(masks, stem + "_mask")):
            files = [m]
        if not files:
            where = masks or manual or base
            problems.append(
                Problem(
                    str(img),
                    "no lung mask found",
                    f"add {where}/{stem}.png or {stem}_mask.png, or remove the image",
                )
            )
            continue
        found.append(Sample(dataset_of(stem), stem, img, files, label_of(stem), extra))
    return found


def _jsrt_layout(images: Path, masks: Path, problems: list[Problem]) -> list[Sample]:
    dirs = {s: _subdir(masks, s) for s in JSRT_STRUCTURES}
    found = []
    for img in _images(images):
        stem = img.stem
        lungs = [_find(d, stem) for d in (dirs["left_lung"], dirs["right_lung"]) if d]
        if len(lungs) != 2 or not all(lungs):
            problems.append(
                Problem(
                    str(img),
                    "missing left_lung/right_lung mask",
                    f"add {masks}/left_lung/{stem}.png and right_lung/{stem}.png",
                )
            )
            continue
        extra = {s: p for s, d in dirs.items() if d and (p := _find(d, stem))}
        found.append(
            Sample(
                dataset_of(stem) if stem.upper().startswith("JPC") else "jsrt",
                stem,
                img,
                lungs,
                label_of(stem),
                extra,
            )
        )
    return found


def discover(root: str | Path) -> tuple[list[Sample], list[Problem]]:
    """Every known layout under `root` -> (samples sorted by dataset/id, pairing problems)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--data {root}: folder not found; point it at the data root")
    samples: list[Sample] = []
    problems: list[Problem] = []
    for dirpath, dirnames, _ in os.walk(root):
        d = Path(dirpath)
        dirnames.sort()
        if d.name.lower() == "cxr_png":
            samples += _cxr_png_layout(d, problems)
        elif (m := _subdir(d, "masks")) and _subdir(m, "left_lung") and _subdir(d, "images"):
            samples += _jsrt_layout(_subdir(d, "images"), m, problems)
    seen: set[tuple[str, str]] = set()
    unique = []
    for s in sorted(samples, key=lambda s: (s.dataset, s.id)):
        if (s.dataset, s.id) in seen:
            problems.append(Problem(str(s.image), "duplicate id", "keep one copy of each image"))
            continue
        seen.add((s.dataset, s.id))
        unique.append(s)
    if not unique:
        raise FileNotFoundError(
            f"no image/mask pairs found under {root}: expected CXR_png/ with masks/ or "
            "ManualMask/, or images/ with masks/left_lung/ (see README, 'Data layouts')"
        )
    return unique, problems


def load_pair(s: Sample) -> tuple[np.ndarray, np.ndarray]:
    """Read and check one pair -> (image float32 HxW [0,1], lung mask uint8 {0,1}).
    Raises ValueError/FileNotFoundError naming the file and what to do."""
    image = read_image(s.image).image
    mask = np.zeros(image.shape, dtype=np.uint8)
    for p in s.masks:
        raw = read_mask(p)
        if raw.shape != image.shape:
            raise ValueError(
                f"{p}: mask is {raw.shape[1]}x{raw.shape[0]} but image {s.image.name} "
                f"is {image.shape[1]}x{image.shape[0]}; resize the mask with "
                "nearest-neighbour or fix the pairing"
            )
        values = np.unique(raw)
        if len(values) > 2 or (len(values) == 2 and values[0] != 0):
            raise ValueError(
                f"{p}: mask is not binary ({len(values)} gray levels); save it "
                "as 0/255 PNG (not JPEG) or threshold it"
            )
        mask |= (raw > 0).astype(np.uint8)
    if not mask.any():
        raise ValueError(f"{s.masks[0]}: mask is empty; draw the lungs or remove the pair")
    return image, mask


def check_pairs(samples: list[Sample], strict: bool = False):
    """Load every pair; return ([(sample, image, mask)], problems). `strict` raises on the first."""
    good, problems = [], []
    for s in samples:
        try:
            image, mask = load_pair(s)
        except (ValueError, FileNotFoundError, ImageReadError) as e:
            if strict:
                raise
            problems.append(Problem(str(s.image), str(e), "skipped"))
            continue
        good.append((s, image, mask))
    return good, problems


def make_splits(samples: list[Sample], fractions=(0.7, 0.1, 0.2), salt: str = "lungseg"):
    """Deterministic split stratified by (dataset, label), ordered by a salted sha256 of the id."""
    groups: dict[tuple, list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.dataset, s.label), []).append(s)
    out = {}
    for members in groups.values():
        members.sort(key=lambda s: hashlib.sha256(f"{salt}{s.id}".encode()).hexdigest())
        n = len(members)
        n_train = round(n * fractions[0])
        n_val = round(n * fractions[1])
        for i, s in enumerate(members):
            out[(s.dataset, s.id)] = (
                "train" if i < n_train else "val" if i < n_train + n_val else "test"
            )
    return out


def read_splits(path: Path) -> dict[tuple[str, str], str]:
    with open(path, newline="") as f:
        return {(r["dataset"], r["id"]): r["split"] for r in csv.DictReader(f)}


def write_splits(path: Path, splits: dict[tuple[str, str], str]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["dataset", "id", "split"])
        for (ds, i), sp in sorted(splits.items()):
            w.writerow([ds, i, sp])


def assign_splits(root: Path, samples: list[Sample], out_dir: Path | None = None):
    """`root/splits.csv` when present, else a deterministic split (written to out_dir)."""
    path = Path(root) / "splits.csv"
    if path.is_file():
        splits = read_splits(path)
        missing = [s for s in samples if (s.dataset, s.id) not in splits]
        if missing:
            log.warning(
                "%d samples are not in %s and get a deterministic split", len(missing), path
            )
            splits.update(make_splits(missing))
        log.info("using split file %s", path)
    else:
        splits = make_splits(samples)
        log.info("no splits.csv under %s: made a stratified split", root)
    if out_dir is not None:
        write_splits(Path(out_dir) / "splits.csv", splits)
    return splits


def select(samples, splits, split: str | None, datasets=None, limit: int | None = None):
    """Samples of one split (and datasets), at most `limit` per split (spread over datasets)."""
    chosen = [
        s
        for s in samples
        if (split is None or splits.get((s.dataset, s.id)) == split)
        and (not datasets or s.dataset in datasets)
    ]
    if limit:
        by_ds: dict[str, list[Sample]] = {}
        for s in chosen:
            by_ds.setdefault(s.dataset, []).append(s)
        chosen = [s for i in range(limit) for g in by_ds.values() if i < len(g) for s in [g[i]]]
        chosen = chosen[:limit]
    return chosen


def summarize(used: int, problems: list[Problem]) -> str:
    lines = [f"{used} pairs used, {len(problems)} skipped"]
    lines += [f"  skipped {p}" for p in problems]
    return "\n".join(lines)
