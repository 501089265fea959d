"""Find image/mask pairs in the layouts users download (README, "Data layouts"), anywhere under
a root folder: Montgomery (CXR_png/ + ManualMask/{leftMask,rightMask}/), Shenzhen and the Kaggle
"Chest Xray Masks and Labels" set (CXR_png/ + masks/ and/or mask/, `<id>` or `<id>_mask`), JSRT
+ SCR (images/ + masks/{left_lung,right_lung,heart,...}/, SCR's `left lung` and .gif too), and
your own (images/ + masks/, dataset `other`). Films: PNG, JPEG, TIFF, BMP, DICOM (a suffix, or
the DICM preamble: IM0001, a UID whose whole name is the id), GIF, JSRT's raw .IMG. Names match in
any case; OS leftovers (`._*`, `__MACOSX/`) are ignored; a film without its masks and masks
without their film are reported as problems. (Loading and checks: pairs.py; splits: splits.py.)
"""

from __future__ import annotations

import filecmp
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .files import OVERLAY, film_stem, is_byproduct, is_jsrt, is_leftover, is_supported
from .walk import folders_under

log = logging.getLogger(__name__)

JSRT_STRUCTURES = ("left_lung", "right_lung", "heart", "left_clavicle", "right_clavicle")
# (JPEG masks are thresholded by pairs.load_pair, with a warning)
MASK_SUFFIXES = (".png", ".gif", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")


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
    """The film's label where its data set's names give one: JSRT's nodule (JPCLN / JPCNN),
    Montgomery's and Shenzhen's TB (their last `_0` / `_1`); None for other films (a trailing
    digit of your own names, `film_001`, is not a label)."""
    if stem.upper().startswith("JPCLN"):
        return 1
    if stem.upper().startswith("JPCNN"):
        return 0
    tb = dataset_of(stem) in ("montgomery", "shenzhen")
    return int(stem[-1]) if tb and stem[-2:] in ("_0", "_1") else None


def _masks_in(folder: Path | None, problems: list[Problem]) -> dict[tuple[str, str], Path]:
    """Mask files of `folder` by (stem, suffix), both in lower case: names are matched ignoring
    case (`X_MASK.PNG` pairs with `x.png`), as macOS and Windows file systems compare them; of
    two names alike but for case (possible on Linux only), the first is used, the other
    reported."""
    out: dict[tuple[str, str], Path] = {}
    for p in sorted(folder.iterdir()) if folder else []:
        if p.suffix.lower() in MASK_SUFFIXES and not is_leftover(p) and p.is_file():
            if (first := out.setdefault((p.stem.casefold(), p.suffix.lower()), p)) != p:
                fix = f"remove one (used: {first})"
                problems.append(Problem(str(p), "a second mask of the same name but for case", fix))
    return out


def _find(index: dict[tuple[str, str], Path], stem: str) -> Path | None:
    return next((p for x in MASK_SUFFIXES if (p := index.get((stem.casefold(), x)))), None)


def _candidates(index: dict[tuple[str, str], Path], stem: str) -> list[Path]:
    """The masks named as the film `stem` or <stem>_mask, any suffix: the first is its mask."""
    names = (stem.casefold(), f"{stem}_mask".casefold())
    return [p for n in names for x in MASK_SUFFIXES if (p := index.get((n, x)))]


def _suffix(index: dict[tuple[str, str], Path]) -> str:
    """The suffix most masks of a folder have (SCR: .gif), to name a missing one."""
    return Counter(x for _, x in index).most_common(1)[0][0] if index else ".png"


def _subdir(parent: Path, *names: str) -> Path | None:
    """Case-, space- and underscore-insensitive child folder lookup (the first in name order)."""
    return next(iter(_subdirs(parent, *names)), None)


def _subdirs(parent: Path, *names: str) -> list[Path]:
    """Every child folder of one of `names` (as `_subdir` matches them), in name order."""
    if not parent.is_dir():
        return []
    wanted = {n.lower().replace(" ", "_") for n in names}
    return sorted(
        c for c in parent.iterdir() if c.is_dir() and c.name.lower().replace(" ", "_") in wanted
    )


def _images(folder: Path) -> list[Path]:
    """The films of `folder`: by suffix, and DICOMs without a film suffix (PACS exports: IM0001,
    1.2.840.113619.2.55.3.7), which alone are opened to look for the DICM preamble; not
    DICOMDIR (an index), OS leftovers or `lungseg predict`'s outputs (`files.is_byproduct`). A
    film's id is `film_stem`."""
    files = [p for p in folder.iterdir() if not is_byproduct(p) and p.is_file()]  # (predict's)
    return sorted(p for p in files if p.name.upper() != "DICOMDIR" and is_supported(p))


def _orphans(films: Path, stems: set[str], masks, problems: list[Problem]) -> None:
    """One problem per missing film whose mask files exist; `masks`: (file, film stem) pairs."""
    by_film: dict[str, list[Path]] = {}
    known = {s.casefold() for s in stems}
    for p, film in masks:
        if film.casefold() not in known:
            by_film.setdefault(film, []).append(p)
    for film, files in sorted(by_film.items()):
        fix = f"add {films / film}.png or remove {', '.join(map(str, files))}"
        problems.append(Problem(str(files[0]), "mask without an image", fix))


def _cxr_png_fix(base: Path, stem: str, masks, m_idx, manual, sides) -> str:
    """What to add for a film without a mask, in the layout the folder has."""
    if manual:  # Montgomery official: one file per lung, both needed
        want = [(d or manual / n) / f"{stem}{_suffix(i)}" for n, d, i, p in sides if not p]
        return f"add {' and '.join(map(str, want))}, or remove the image"
    if masks:
        name = f"{stem}_mask" if dataset_of(stem) == "shenzhen" else stem
        return f"add {masks / name}{_suffix(m_idx)}, or remove the image"
    return (
        f"add {base / 'masks' / stem}.png (Shenzhen: {stem}_mask.png), or "
        f"{base / 'ManualMask' / 'leftMask' / stem}.png and rightMask/{stem}.png, "
        "or remove the image"
    )


def _cxr_png_layout(cxr: Path, problems: list[Problem]) -> list[Sample]:
    """CXR_png/ (or images/) beside masks/ and/or mask/ (both read: the Montgomery and the
    Shenzhen masks of the Kaggle set may be unpacked into one each) or ManualMask/."""
    base = cxr.parent
    mask_dirs = _subdirs(base, "masks", "mask")
    for m in [m for m in mask_dirs if _predicted(m)]:
        fix = "keep ground-truth masks in masks/ and write predictions elsewhere"
        problems.append(Problem(str(m), "holds lungseg predict output, not truth", fix))
        mask_dirs.remove(m)
    manual = _subdir(base, "ManualMask")
    if not mask_dirs and not manual and _subdir(base, "masks", "mask"):
        return []  # (its only masks/ holds predictions: said once, not once per film)
    masks = next(iter(mask_dirs), None)
    left = _subdir(manual, "leftMask") if manual else None
    right = _subdir(manual, "rightMask") if manual else None
    l_idx, r_idx = (_masks_in(d, problems) for d in (left, right))
    m_idxs = [_masks_in(d, problems) for d in mask_dirs]
    m_idx = next(iter(m_idxs), {})
    images = _images(cxr)
    found = []
    for img in images:
        stem = film_stem(img)
        files: list[Path] = []
        extra: dict[str, Path] = {}
        lm, rm = _find(l_idx, stem), _find(r_idx, stem)
        if lm and rm:
            extra = {"left_lung": lm, "right_lung": rm}
            files = list(extra.values())
        elif masks_of := [p for idx in m_idxs for p in _candidates(idx, stem)]:
            files = masks_of[:1]
            for other in masks_of[1:]:  # X.png beside X_mask.png or X.jpg: which is right?
                if filecmp.cmp(files[0], other, shallow=False):
                    continue  # (the same mask in masks/ and mask/: no question)
                fix = f"remove one (used: {files[0]})"
                problems.append(Problem(str(other), f"a second mask for film {stem}", fix))
        if not files:
            sides = [("leftMask", left, l_idx, lm), ("rightMask", right, r_idx, rm)]
            fix = _cxr_png_fix(base, stem, masks, m_idx, manual, sides)
            half = "left lung mask (leftMask)" if rm else "right lung mask (rightMask)"
            problems.append(Problem(str(img), f"no {half if lm or rm else 'lung mask'} found", fix))
            continue
        found.append(Sample(dataset_of(stem), stem, img, files, label_of(stem), extra))
    named = [(p, p.stem) for idx in (l_idx, r_idx) for p in idx.values()]
    named += [(p, p.stem[:-5] if p.stem.casefold().endswith("_mask") else p.stem)
              for idx in m_idxs for p in idx.values()]  # fmt: skip
    _orphans(cxr, {film_stem(i) for i in images}, named, problems)
    return found


def _jsrt_layout(images: Path, masks: Path, problems: list[Problem]) -> list[Sample]:
    dirs = {s: _subdir(masks, s) for s in JSRT_STRUCTURES}
    index = {s: _masks_in(d, problems) for s, d in dirs.items()}
    spaced = " " in dirs["left_lung"].name  # SCR's own names: `left lung`
    files = _images(images)
    found = []
    for img in files:
        stem = film_stem(img)
        lungs = {s: _find(index[s], stem) for s in ("left_lung", "right_lung")}
        if not all(lungs.values()):
            want = [
                (dirs[s] or masks / (s.replace("_", " ") if spaced else s))
                / f"{stem}{_suffix(index[s] or index['left_lung'])}"
                for s, p in lungs.items()
                if p is None
            ]
            fix = f"add {' and '.join(map(str, want))}, or remove the image"
            problems.append(Problem(str(img), "missing left_lung/right_lung mask", fix))
            continue
        extra = {s: p for s in JSRT_STRUCTURES if (p := _find(index[s], stem))}
        found.append(
            Sample(
                dataset_of(stem) if stem.upper().startswith("JPC") else "jsrt",
                stem,
                img,
                list(lungs.values()),
                label_of(stem),
                extra,
            )
        )
    named = [(p, p.stem) for idx in index.values() for p in idx.values()]
    _orphans(images, {film_stem(i) for i in files}, named, problems)
    return found


def discover(root: str | Path) -> tuple[list[Sample], list[Problem]]:
    """Every known layout under `root` -> (samples sorted by dataset/id, pairing problems): the
    public sets' and, for other films, `images/` beside `masks/` (one mask per film, named as
    the film or with `_mask`)."""
    root = Path(root)
    if not root.is_dir():
        what = "a file, not a folder" if root.exists() else "folder not found"
        raise FileNotFoundError(f"--data {root}: {what}; point it at the data root")
    samples: list[Sample] = []
    problems: list[Problem] = []
    for d in folders_under(root, lambda parts: parts[-1].lower() != "__macosx"):  # (zip's)
        if d.name.lower() == "cxr_png":
            samples += _cxr_png_layout(d, problems)
        elif not (images := _subdir(d, "images")):
            continue
        elif (m := _subdir(d, "masks")) and _subdir(m, "left_lung"):
            samples += _jsrt_layout(images, m, problems)
        elif _subdir(d, "masks", "mask"):
            samples += _own_films(images, problems)
    seen: dict[tuple[str, str], Sample] = {}  # ids ignoring case, as they pair and split
    torn: set[tuple[str, str]] = set()  # two films paired with one mask: neither is scored
    for s in sorted(samples, key=lambda s: (s.dataset, s.id)):
        key = (s.dataset, s.id.casefold())
        if first := seen.get(key):
            if filecmp.cmp(first.image, s.image, shallow=False):
                what, fix = f"a second copy of film {s.id}", f"keep one copy (used: {first.image})"
            elif first.masks == s.masks and is_jsrt(first.image) != is_jsrt(s.image):
                raw, copy = (first, s) if is_jsrt(first.image) else (s, first)
                seen[key] = raw  # JPCLN001.IMG beside a PNG made of it: the original is scored
                what, fix = f"a copy of JSRT film {s.id} in another format", f"used: {raw.image}"
                s = copy
            elif first.masks == s.masks:  # x.png and x.jpg beside one x mask: whose is it?
                what, fix = f"another film named {s.id} beside it, one mask for both", "rename one"
                torn.add(key)
            else:  # two sites' patient_001: ids must be unique under --data
                what, fix = f"another film named {s.id}", f"rename one (used: {first.image})"
            problems.append(Problem(str(s.image), what, fix))
            continue
        seen[key] = s
    seen = {k: v for k, v in seen.items() if k not in torn}
    if not seen:
        raise FileNotFoundError(
            f"no image/mask pairs found under {root}: expected CXR_png/ with masks/ or "
            "ManualMask/, images/ with masks/left_lung/ (JSRT), or images/ with masks/ "
            "(see README, 'Data layouts')" + "".join(f"\n  {p}" for p in problems[:5])
        )
    return list(seen.values()), problems


def _own_films(images: Path, problems: list[Problem]) -> list[Sample]:
    """images/ beside masks/: paired as in CXR_png/ (a mask named as its film or <stem>_mask).
    Refused with a problem: a masks/ that `lungseg predict` wrote, an images/ of subfolders."""
    subs = [c.name for c in sorted(images.iterdir()) if c.is_dir() and not is_leftover(c)]
    subs = [n for n in subs if _images(images / n)]  # (an empty or unrelated folder: no matter)
    if subs:
        where = ", ".join(f"images/{n}/" for n in subs)
        fix = f"move the films of {where} into images/ and their masks into masks/ (or make "
        fix += "<name>/images + <name>/masks per group)"
        problems.append(Problem(str(images), "images/ holds folders: it must be flat", fix))
        if not _images(images):
            return []
    return _cxr_png_layout(images, problems)  # (a masks/ that predict wrote: refused there)


def _predicted(masks: Path) -> bool:
    """A folder `lungseg predict --out` wrote (its results.csv or overlays): not ground truth."""
    return (masks / "results.csv").is_file() or any(masks.glob(f"*{OVERLAY}.png"))
