"""`lungseg predict`: segment files, folders or globs and write mask, overlay and measurements.

Decoding and preprocessing run in a thread pool ahead of the model, post-processing and PNG writing
behind it (the films in flight bounded in number and in pixels, so memory stays flat on folders of
any size and any film size); a bad file is reported by name and skipped.
"""

from __future__ import annotations

import csv
import glob
import json
import logging
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .imageio import ImageReadError, film_pixels, is_byproduct, is_supported, read_image
from .png import write_png
from .report import PALETTE, overlay_indexed
from .segmenter import WORK_SIZE, Segmenter

log = logging.getLogger(__name__)
# Films read ahead of the model or waiting to be written, in pixels (float32: about 1 GB): besides
# the count limit, so that a folder of 40-128 megapixel scans does not hold several GB at once.
READ_AHEAD_PIXELS = 256_000_000
FIELDS = [
    "file",
    "quality",
    "flags",
    "right_area_px",
    "left_area_px",
    "right_area_mm2",
    "left_area_mm2",
    "lung_image_ratio",
    "components",
    "uncertain_fraction",
    "width",
    "height",
    "error",
    "mask",  # the row's mask file in --out (last: columns read by position keep their place)
]


def collect_inputs(paths: list[str], out: str | Path | None = None) -> tuple[list[Path], list[str]]:
    """Expand files, folders (recursive) and globs -> (image files, inputs that matched nothing).
    Folders and globs skip what is not a film (`imageio.is_byproduct`: masks and lungseg's own
    outputs by name, DICOMDIR, OS leftovers such as `._*`, .DS_Store, Thumbs.db, `__MACOSX/`,
    and, below the searched folder or a glob's fixed prefix, anything in mask/, masks/,
    ManualMask/, leftMask/ or rightMask/) and an `out` folder inside a searched folder; a file
    named explicitly is always taken."""
    out_dir = Path(out).resolve() if out is not None else None
    files, missing, skipped = [], [], 0
    for p in paths:
        path = Path(p)
        if path.is_file():
            files.append(path)
            continue
        if path.is_dir():
            root, found = path, path.rglob("*")
        else:  # a glob; the folders it matches are searched too
            root, matches = _glob_root(p), [Path(f) for f in glob.glob(p, recursive=True)]
            found = [g for m in matches for g in ([m] if m.is_file() else m.rglob("*"))]
        found = [f for f in found if f.is_file() and is_supported(f)]
        inner = out_dir if out_dir and root.resolve() in out_dir.parents else None
        if not found:
            missing.append(p)
        kept = [
            f
            for f in sorted(found)
            if not is_byproduct(f, root) and not (inner and inner in f.resolve().parents)
        ]
        skipped += len(found) - len(kept)
        files += kept
    if skipped:
        log.info("skipped %d masks, earlier outputs and other files that are not films", skipped)
    return list(dict.fromkeys(files)), missing


def _glob_root(pattern: str) -> Path:
    """The folder a glob searches: its leading parts without wildcards ('data/**/*.png' ->
    'data'), so that mask folders below it are recognised as in a searched folder."""
    fixed = Path(pattern).parts
    fixed = fixed[: next((i for i, part in enumerate(fixed) if glob.has_magic(part)), len(fixed))]
    return Path(*fixed) if fixed else Path()


def _load(seg: Segmenter, path: Path):
    """Decode + preprocess one file (runs in a worker thread)."""
    try:
        rad = read_image(path)
        x, g = seg.prepare(rad)
        return rad, x, g, None
    except (ImageReadError, ValueError, OSError, MemoryError) as e:
        log.debug("%s: not segmented", path, exc_info=True)  # -v: the traceback
        return None, None, None, str(e)


def pool_size(workers: int | None) -> int:
    """`predict_paths`' thread count: `workers`, at least 1; None: one per core this process may
    run on (its affinity: a container's limit, not the host's), at most 8."""
    if workers is not None:
        return max(1, workers)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(8, cores or 2)


def _stems(files: list[Path]) -> list[str]:
    """Output name per input: its stem, or <stem>_2, _3, ... when that name is already taken
    (two films called film.png in different folders, or film.png beside film_2.png). Names are
    compared ignoring case, as macOS and Windows file systems do."""
    taken = {f.stem.casefold() for f in files}
    seen: set[str] = set()
    out = []
    for f in files:
        stem, n = f.stem, 1
        while stem.casefold() in seen or (n > 1 and stem.casefold() in taken):
            n += 1
            stem = f"{f.stem}_{n}"
        seen.add(stem.casefold())
        out.append(stem)
    return out


def predict_paths(
    paths: list[str],
    out: str,
    model: str | None = None,
    postprocess: bool = True,
    batch_size: int = 4,
    labels: bool = False,
    overlays: bool = True,
    device: str = "auto",
    workers: int | None = None,
    segmenter: Segmenter | None = None,
    full_grid: bool = False,
    read_ahead_pixels: int = READ_AHEAD_PIXELS,
) -> list[str]:
    """Segment every input; write OUT/<stem>_mask.png (0/255, input size), <stem>_overlay.png
    (unless `overlays` is False), optional <stem>_labels.png (1 right, 2 left), results.csv and
    results.json. `full_grid`: post-process films larger than `segmenter.WORK_SIZE` on their own
    grid (slower) instead of a working grid of that size.
    `workers`: threads that decode, post-process and write beside the model (default: one per
    CPU core, at most 8; with a GPU the model is fast and these threads set the pace).
    `read_ahead_pixels`: films in flight are limited to this many pixels in all (from their
    headers; one film at a time may exceed it). Returns the inputs that failed."""
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    files, missing = collect_inputs(paths, out)
    failed = list(missing)
    for p in missing:
        log.error("%s: no such file, or no supported image in it", p)
    if not files:
        raise FileNotFoundError(f"no images found in {paths} (PNG, JPEG, TIFF, BMP, GIF or DICOM)")
    out_dir = Path(out)
    stems = _stems(files)
    _check_overwrites(out_dir, stems)
    out_dir.mkdir(parents=True, exist_ok=True)
    seg = segmenter or Segmenter(
        model, device=device, postprocess=postprocess, work_size=None if full_grid else WORK_SIZE
    )
    workers = pool_size(workers)
    rows: dict[int, dict] = {}
    finish = partial(_finish, seg, out_dir, labels=labels, overlays=overlays)
    with ThreadPoolExecutor(workers) as pool:
        loading: deque = deque()  # decode + preprocess, ahead of the model
        writing: deque = deque()  # post-process + PNGs, behind the model
        todo = iter(enumerate(zip(files, stems, strict=True)))
        bar = tqdm(total=len(files), unit="img", desc="predict", disable=len(files) < 2)
        held = 0  # pixels of the films in `loading`, in the model and in `writing`
        ahead = None  # the next film, with its pixel count, when memory held it back

        def fill():
            nonlocal held, ahead
            while len(loading) < 2 * batch_size + workers:
                if ahead is None:
                    item = next(todo, None)
                    if item is None:
                        return
                    ahead = item, film_pixels(item[1][0])
                item, pixels = ahead
                if held and held + pixels > read_ahead_pixels:
                    return  # until films in flight have been written
                ahead, held = None, held + pixels
                loading.append((item, pixels, pool.submit(_load, seg, item[1][0])))

        def drain(keep: int):
            nonlocal held
            while len(writing) > keep:
                i, path, pixels, fut = writing.popleft()
                rows[i] = fut.result()
                held -= pixels
                if rows[i]["error"]:
                    failed.append(str(path))
                bar.update()

        fill()
        while loading or ahead:
            if not loading:  # memory held the next film back: wait for the oldest to be written
                if writing:
                    drain(keep=len(writing) - 1)
                else:  # nothing in flight (cannot happen while `held` counts right): admit it
                    held = 0
                fill()
                continue
            batch = []
            while loading and len(batch) < batch_size:
                (i, (path, stem)), pixels, fut = loading.popleft()
                rad, x, g, err = fut.result()
                if err:
                    log.error("%s (skipped)", err)
                    failed.append(str(path))
                    rows[i] = {"file": str(path), "quality": "error", "error": err}
                    held -= pixels
                    bar.update()
                else:
                    batch.append((i, path, stem, pixels, rad, x, g))
            fill()
            if batch:
                probs = seg.runner(np.stack([b[5] for b in batch])[:, None])
                for (i, path, stem, pixels, rad, _, g), p in zip(batch, probs, strict=True):
                    job = pool.submit(finish, path, stem, rad, g, p)
                    writing.append((i, path, pixels, job))
                drain(keep=2 * batch_size)
        drain(keep=0)
        bar.close()
    table = [rows[i] for i in sorted(rows)] + [
        {"file": p, "quality": "error", "error": "no such file, or no supported image in it"}
        for p in missing
    ]
    _write_table(out_dir, table)
    ok = sum(r["quality"] != "error" for r in table)
    log.info("%d images segmented, %d failed -> %s", ok, len(failed), out_dir)
    return failed


def _check_overwrites(out_dir: Path, stems: list[str]) -> None:
    """Refuse to replace a <stem>_mask.png that lungseg did not write: with --out on the films'
    own folder it may be a ground-truth mask. One of an earlier run (listed in the folder's
    results.csv, or with its <stem>_overlay.png beside it) is replaced as usual."""
    if not out_dir.is_dir():
        return
    present = set(os.listdir(out_dir))
    ours = _earlier_outputs(out_dir / "results.csv")
    foreign = [
        f"{s}_mask.png"
        for s in stems
        if f"{s}_mask.png" in present and f"{s}_overlay.png" not in present and s not in ours
    ]
    if foreign:
        raise ValueError(
            f"{out_dir / foreign[0]} exists and is not an earlier lungseg output (it may be a "
            f"ground-truth mask; {len(foreign)} such files): choose another --out"
        )


def _earlier_outputs(table: Path) -> set[str]:
    """Output stems an earlier run wrote, from its results.csv (empty when there is none)."""
    if not table.is_file():
        return set()
    with open(table, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("file")]
    return {r["mask"].removesuffix("_mask.png") if r.get("mask") else Path(r["file"]).stem
            for r in rows}  # fmt: skip


def _finish(seg, out_dir: Path, path, stem, rad, g, prob, *, labels: bool, overlays: bool) -> dict:
    """Post-process one model output and write its PNGs (runs in a worker thread) -> its row."""
    try:
        res = seg.finish(prob, g, rad)
        write_png(out_dir / f"{stem}_mask.png", res.mask * np.uint8(255))
        if overlays:
            write_png(
                out_dir / f"{stem}_overlay.png", overlay_indexed(rad.image, res.labels), PALETTE
            )
        if labels:
            write_png(out_dir / f"{stem}_labels.png", res.labels)
    except (OSError, ValueError, MemoryError) as e:
        log.error("%s: %s (skipped)", path, e)
        return {"file": str(path), "quality": "error", "error": str(e)}
    return {"file": str(path), "mask": f"{stem}_mask.png", **res.stats, "error": ""}


def _write_table(out_dir: Path, rows: list[dict]) -> None:
    with open(out_dir / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    (out_dir / "results.json").write_text(json.dumps(rows, indent=2))


def demo(out: str | Path, size: int = 1024, seed: int = 7, model: str | None = None) -> int:
    """`lungseg demo`: a phantom film -> `predict` (shipped model by default) -> mask, overlay
    and stats under OUT/output, and the Dice against the phantom's own lung mask, printed and
    written to OUT/demo.json. Returns predict's exit code."""
    from .imageio import read_mask
    from .metrics import confusion
    from .model import DEFAULT_WEIGHTS
    from .phantom import make_phantom

    out = Path(out)
    (out / "input").mkdir(parents=True, exist_ok=True)
    ph = make_phantom(size=size, seed=seed)
    write_png(out / "input" / "phantom.png", (ph.image * 255 + 0.5).astype("uint8"))
    write_png(out / "phantom_truth.png", ph.lungs * 255)
    failed = predict_paths([str(out / "input")], str(out / "output"), model=model)
    dice = confusion(read_mask(out / "output" / "phantom_mask.png") > 0, ph.lungs).dice
    record = {"dice": dice, "model": model or str(DEFAULT_WEIGHTS), "size": size, "seed": seed}
    (out / "demo.json").write_text(json.dumps(record, indent=2))  # what gates compare
    print(f"wrote {out / 'output'}: phantom_mask.png, phantom_overlay.png, results.csv")
    print(f"Dice against the phantom's own lung mask: {dice:.3f} (also in {out / 'demo.json'})")
    return 1 if failed else 0
