"""`lungseg predict`: segment files, folders or globs and write mask, overlay and measurements.

The films stream through `pipeline.segment` (decoding ahead of the model, writing behind it);
results.csv grows as films finish, so a stopped run keeps its rows and `--resume` goes on from
them; what an earlier call left in --out is read back by outdir.py, the tables by table.py.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import threading
from functools import partial
from pathlib import Path

import numpy as np

from .files import LABELS, MASK, OVERLAY, half_written
from .inputs import collect_inputs, film_key
from .outdir import (
    MISSING,
    RECORD,
    exclusive,
    film_mark,
    finished,
    plan,
    read_earlier,
    resumable,
    run_record,
)
from .pipeline import READ_AHEAD_PIXELS, failure, pool_size, segment
from .png import predicted, write_png
from .report import PALETTE, check_sheets, overlay_indexed
from .segmenter import WORK_SIZE, Segmenter
from .table import CSV_TEXT, FIELDS, TABLE, replace_text, table_text, write_table

log = logging.getLogger(__name__)


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
    for p in missing:
        log.error("%s: %s", p, MISSING)
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
    out_dir.mkdir(parents=True, exist_ok=True)
    with exclusive(out_dir):
        earlier = read_earlier(out_dir)
        trusted = resumable(earlier, run, out_dir) if resume else {}  # (refused before output)
        stems, others, again = plan(earlier, run, files, missing, out_dir)
        for name in filter(half_written, earlier.present):  # a killed call's, never renamed
            with contextlib.suppress(OSError):
                (out_dir / name).unlink()
        wanted = tuple(f"{s}.png" for s in (MASK, *[OVERLAY] * overlays, *[LABELS] * labels))
        rows = finished(trusted, files, stems, out_dir, wanted, earlier)  # index -> row
        if resume:
            log.info("--resume: %d of %d films already segmented in %s", len(rows), len(files), out)
        kept = len(rows)  # (finished by an earlier run)
        earlier_rows = [*others, *(r for i, r in again.items() if i not in rows), *rows.values()]
        replace_text(out_dir / TABLE, table_text(earlier_rows))  # in one step, then appended to
        replace_text(out_dir / RECORD, json.dumps(run, indent=2))  # (after: no other run's rows)
        todo = [(i, fs) for i, fs in enumerate(zip(files, stems, strict=True)) if i not in rows]
        finish = partial(_finish, seg, out_dir, labels=labels, overlays=overlays)
        films = partial(
            segment, seg, todo, finish, batch_size=batch_size, workers=pool_size(workers),
            read_ahead_pixels=read_ahead_pixels,
        )  # fmt: skip
        _write(out_dir, rows, others, again, missing, films)
        sheets = check_sheets(out_dir, others + [rows[i] for i in sorted(rows)])
    failed = missing + [rows[i]["file"] for i in sorted(rows) if rows[i]["error"]]
    _summary(rows, kept, others, sheets if overlays else None, len(failed), out_dir)
    return failed


def _summary(rows: dict, kept: int, others: list, sheets: list | None, failed: int, out_dir):
    """Log what a call did: films segmented (`kept` of them by an earlier run), flagged (and
    where to look at them: `sheets`, None without overlays), failed, and the earlier calls'
    films the table also lists."""
    ok = sum(r["quality"] != "error" for r in rows.values())
    check = sum(r["quality"] == "check" for r in rows.values())
    more = sum(r["quality"] == "check" for r in others)
    look = "" if sheets is None else f": look at {sheets[0].name} ..." if sheets else ""
    mine = (look or ": look at their overlays" * (sheets is not None)) if check else ""
    theirs = look if more and not check else ""  # (the hint beside the films it is for)
    earlier_run = f", {kept} of them by the earlier run" if kept else ""
    whole = f"; results.csv also lists {len(others)} films of earlier calls" if others else ""
    whole += f" ({more} flagged 'check'{theirs})" if more else ""
    log.info("%d image%s segmented%s (%d flagged 'check'%s), %d failed -> %s%s", ok,
             "s" * (ok != 1), earlier_run, check, mine, failed, out_dir, whole)  # fmt: skip


def _write(out_dir: Path, rows: dict, others: list, again: dict, missing: list, films) -> None:
    """results.csv as the films finish, after the earlier rows (written in one step by the
    caller: a kill or a full disk leaves the earlier table): a row appended as each film is
    done (by the thread that wrote the film's PNGs, so a kill loses no row of a film whose
    files are there); at the end in input order. A film's earlier row (`again`) stays until
    its new one is written (read back, the last row of a film wins)."""
    lock, closed = threading.Lock(), threading.Event()
    try:
        with open(out_dir / TABLE, "a", **CSV_TEXT) as f:
            table = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")

            def record(i: int, row: dict) -> None:
                with lock:
                    if not closed.is_set():  # (a worker still running after a second Ctrl-C)
                        rows[i] = row
                        table.writerow(row)
                        f.flush()  # a run that is stopped keeps the rows of the films it finished

            films(record)  # the pipeline, recording each film's row as it is done
    finally:  # stopped or not, the table holds every film finished, in input order
        with lock:
            closed.set()
            final = {**again, **rows}
        errors = [{"file": p, "quality": "error", "error": MISSING} for p in missing]
        write_table(out_dir, others + [final[i] for i in sorted(final)] + errors)


def _finish(seg, out_dir: Path, path, stem, rad, g, prob, *, labels: bool, overlays: bool) -> dict:
    """Post-process one model output and write its PNGs (runs in a worker thread) -> its row.
    An overlay or labels file that an earlier run wrote for the film and this one does not
    is removed (it would show the earlier result beside the new mask)."""
    try:
        res = seg.finish(prob, g, rad)
        mark = {"mark": True, "film": film_mark(film_key(path))}  # whose outputs these are
        if overlays:
            overlay = overlay_indexed(rad.image, res.labels, rebuilt=res.rebuilt)
            write_png(out_dir / f"{stem}{OVERLAY}.png", overlay, PALETTE, **mark)
        if labels:
            write_png(out_dir / f"{stem}{LABELS}.png", res.labels, **mark)
        for kind in [OVERLAY] * (not overlays) + [LABELS] * (not labels):
            if predicted(stale := out_dir / f"{stem}{kind}.png"):
                stale.unlink()
        # the mask last: until it is written, its stamp names the film it was made from, so a
        # kill before it leaves no new overlay beside an old mask that --resume would take
        write_png(out_dir / f"{stem}{MASK}.png", res.mask * np.uint8(255), **mark, stamp=rad.stamp)
    except OSError as e:  # (the only files touched here are the outputs)
        where = e.filename or f"its outputs in {out_dir}"
        e = OSError(e.errno, f"cannot write {where}: {e.strerror or e}")
        return {"file": str(path), "quality": "error", "error": failure(path, e)}
    except Exception as e:
        return {"file": str(path), "quality": "error", "error": failure(path, e)}
    return {"file": str(path), "mask": f"{stem}{MASK}.png", **res.stats, "error": ""}
