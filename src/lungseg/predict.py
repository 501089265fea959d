"""`lungseg predict`: segment files, folders or globs and write mask, overlay and measurements.

Decoding and preprocessing run in a thread pool ahead of the model, post-processing and PNG writing
behind it (the films in flight bounded in number and in pixels, so memory stays flat on folders of
any size and any film size); a bad file is reported by name and skipped. results.csv grows as
films finish, so a stopped run keeps its rows and `--resume` goes on from them.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .files import LABELS, MASK, OVERLAY
from .imageio import ImageReadError, film_pixels, read_image
from .inputs import (
    CSV_TEXT,
    RECORD,
    TABLE,
    check_overwrites,
    collect_inputs,
    earlier_rows,
    finished,
    other_films,
    output_stems,
    replace_text,
    resumable,
    run_record,
)
from .png import write_png
from .report import PALETTE, check_sheets, overlay_indexed
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
    "mask",  # the row's mask file in --out
    "view",  # a DICOM's ViewPosition (new columns go last: those read by position stay put)
    "right_height_px",
    "left_height_px",
    "right_height_mm",
    "left_height_mm",
]


def _load(seg: Segmenter, path: Path):
    """Decode + preprocess one file (runs in a worker thread)."""
    try:
        rad = read_image(path)
        x, g = seg.prepare(rad)
        return rad, x, g, None
    except Exception as e:
        return None, None, None, _failure(path, e)


def _failure(path: Path, e: Exception) -> str:
    """Log why one film is skipped and return it for its row, naming the file. A kind of error
    that a bad input does not explain (a bug) is logged with its traceback and, like a bad
    file, stops only that film."""
    expected = isinstance(e, (ImageReadError, ValueError, OSError, MemoryError))
    why = str(e) if expected else f"unexpected {type(e).__name__}: {e}"
    why = why if str(path) in why else f"{path}: {why}"
    if expected:
        log.debug("%s: not segmented", path, exc_info=e)  # -v: the traceback
        log.error("%s (skipped)", why)
    else:
        log.error("%s (skipped; please report it with this traceback)", why, exc_info=e)
    return why


def pool_size(workers: int | None) -> int:
    """`predict_paths`' thread count: `workers`, at least 1; None: one per core this process may
    run on (its affinity: a container's limit, not the host's), at most 8."""
    if workers is not None:
        return max(1, workers)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(8, cores or 2)


def predict_paths(
    paths: list[str],
    out: str,
    model: str | None = None,
    postprocess: bool = True,
    rebuild: bool = True,
    batch_size: int = 4,
    labels: bool = False,
    overlays: bool = True,
    device: str = "auto",
    workers: int | None = None,
    segmenter: Segmenter | None = None,
    full_grid: bool = False,
    read_ahead_pixels: int = READ_AHEAD_PIXELS,
    resume: bool = False,
    compile: bool = False,
    precision: str = "auto",
) -> list[str]:
    """Segment every input; write OUT/<stem>_mask.png (0/255, input size), <stem>_overlay.png
    (unless `overlays` is False), optional <stem>_labels.png (1 right, 2 left), results.csv (a
    row as each film finishes, sorted at the end) and results.json. `full_grid`: post-process
    films larger than `segmenter.WORK_SIZE` on their own grid (slower) instead of a working
    grid of that size. `workers`: threads that decode, post-process and write beside the model
    (default: one per core, at most 8). `read_ahead_pixels`: films in flight are limited to this
    many pixels in all (from their headers; one film at a time may exceed it). `resume`: keep
    the films an earlier run into OUT finished (row and files there). `compile`: torch.compile
    the PyTorch model (a minute or so before the first batch). `precision`: see
    runners.TorchRunner (run.json records whether bf16 ran). `rebuild`: a lung the model lost
    is estimated (`rebuild.rebuild`). Returns the failed inputs."""
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    files, missing = collect_inputs(paths, out)
    failed = list(missing)
    for p in missing:
        log.error("%s: no such file, or no supported image in it", p)
    if not files:
        raise FileNotFoundError(f"no images found in {paths} (PNG, JPEG, TIFF, BMP, GIF or DICOM)")
    out_dir = Path(out)
    seg = segmenter or Segmenter(  # loaded first: a bad --model changes nothing in --out
        model,
        device=device,
        postprocess=postprocess,
        rebuild=rebuild,
        work_size=None if full_grid else WORK_SIZE,
        compile=compile,
        precision=precision,
    )
    if getattr(seg.runner, "compiled", False):
        seg.runner.pad_to = batch_size  # every batch padded to one size: one compile
    run = run_record(  # a Segmenter given: its own model and settings
        seg.model_file() if hasattr(seg, "model_file") else None,
        getattr(seg, "postprocess", postprocess),
        getattr(seg, "work_size", WORK_SIZE) is None,
        getattr(getattr(seg, "runner", None), "bf16", False),
        rebuild=getattr(seg, "rebuild", postprocess and rebuild),
    )
    earlier = earlier_rows(out_dir)
    others = other_films(out_dir, run, earlier, [*files, *missing])  # earlier calls' films
    stems = output_stems(
        files, {r["mask"].removesuffix(f"{MASK}.png") for r in others if r.get("mask")}
    )
    check_overwrites(out_dir, stems, earlier)
    wanted = tuple(f"{s}.png" for s, on in ((MASK, 1), (OVERLAY, overlays), (LABELS, labels)) if on)
    rows = {}
    if resume:
        rows = finished(resumable(out_dir, run, earlier), files, stems, out_dir, wanted)
        log.info("--resume: %d of %d films already segmented in %s", len(rows), len(files), out)
    todo = [(i, fs) for i, fs in enumerate(zip(files, stems, strict=True)) if i not in rows]
    kept = len(rows)  # (finished by an earlier run)
    out_dir.mkdir(parents=True, exist_ok=True)
    replace_text(out_dir / RECORD, json.dumps(run, indent=2))
    try:
        with open(out_dir / TABLE, "w", **CSV_TEXT) as f:
            table = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
            table.writeheader()
            table.writerows([*others, *rows.values()])
            f.flush()

            def record(i: int, row: dict) -> None:
                rows[i] = row
                table.writerow(row)
                f.flush()  # a run that is stopped keeps the rows of the films it finished
                if row["error"]:
                    failed.append(row["file"])

            finish = partial(_finish, seg, out_dir, labels=labels, overlays=overlays)
            _segment(seg, todo, finish, record, batch_size, pool_size(workers), read_ahead_pixels)
    finally:  # stopped or not, the table holds every film finished, in input order
        gone = "no such file, or no supported image in it"
        errors = [{"file": p, "quality": "error", "error": gone} for p in missing]
        _write_table(out_dir, others + [rows[i] for i in sorted(rows)] + errors)
    sheets = check_sheets(out_dir, others + [rows[i] for i in sorted(rows)] if overlays else [])
    ok = sum(r["quality"] != "error" for r in rows.values())
    check = sum(r["quality"] == "check" for r in rows.values())
    look = f"{sheets[0].name} ..." if sheets else "their overlays"
    earlier_run = f", {kept} of them by the earlier run" if kept else ""
    if others:
        earlier_run += f"; results.csv also lists {len(others)} films of earlier calls"
    log.info("%d images segmented%s (%d flagged 'check': look at %s), %d failed -> %s",
             ok, earlier_run, check, look, len(failed), out_dir)  # fmt: skip
    return failed


def _segment(seg, todo, finish, record, batch_size: int, workers: int, read_ahead_pixels: int):
    """The pipeline: `todo` [(index, (path, stem))] decoded ahead of the model in a thread pool,
    the model on batches, `finish` behind it; `record(index, row)` as each film is done."""
    with ThreadPoolExecutor(workers) as pool:
        loading: deque = deque()  # decode + preprocess, ahead of the model
        writing: deque = deque()  # post-process + PNGs, behind the model
        items = iter(todo)
        bar = tqdm(total=len(todo), unit="img", desc="predict", disable=len(todo) < 2)
        held = 0  # pixels of the films in `loading`, in the model and in `writing`
        ahead = None  # the next film, with its pixel count, when memory held it back

        def fill():
            nonlocal held, ahead
            while len(loading) < 2 * batch_size + workers:
                if ahead is None:
                    item = next(items, None)
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
                i, pixels, fut = writing.popleft()
                record(i, fut.result())
                held -= pixels
                bar.update()

        try:
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
                        record(i, {"file": str(path), "quality": "error", "error": err})
                        held -= pixels
                        bar.update()
                    else:
                        batch.append((i, path, stem, pixels, rad, x, g))
                fill()
                if batch:
                    probs = seg.runner(np.stack([b[5] for b in batch])[:, None])
                    for (i, path, stem, pixels, rad, _, g), p in zip(batch, probs, strict=True):
                        writing.append((i, pixels, pool.submit(finish, path, stem, rad, g, p)))
                    drain(keep=2 * batch_size)
        finally:  # films past the model are written and recorded, also when stopped
            for *_, fut in loading:
                fut.cancel()  # not yet decoding: dropped (a stop does not wait for them)
            drain(keep=0)
            bar.close()


def _finish(seg, out_dir: Path, path, stem, rad, g, prob, *, labels: bool, overlays: bool) -> dict:
    """Post-process one model output and write its PNGs (runs in a worker thread) -> its row."""
    try:
        res = seg.finish(prob, g, rad)
        write_png(out_dir / f"{stem}{MASK}.png", res.mask * np.uint8(255), mark=True)
        if overlays:
            overlay = overlay_indexed(rad.image, res.labels, rebuilt=res.rebuilt)
            write_png(out_dir / f"{stem}{OVERLAY}.png", overlay, PALETTE, mark=True)
        if labels:
            write_png(out_dir / f"{stem}{LABELS}.png", res.labels, mark=True)
    except Exception as e:
        return {"file": str(path), "quality": "error", "error": _failure(path, e)}
    return {"file": str(path), "mask": f"{stem}{MASK}.png", **res.stats, "error": ""}


def _write_table(out_dir: Path, rows: list[dict]) -> None:
    """results.csv and results.json, each replaced in one step (a kill leaves old or new)."""
    text = io.StringIO(newline="")
    w = csv.DictWriter(text, fieldnames=FIELDS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    replace_text(out_dir / TABLE, text.getvalue())
    whole = [{**dict.fromkeys(FIELDS), **r} for r in rows]  # a failed film's row: every key
    replace_text(out_dir / "results.json", json.dumps(whole, indent=2))
