"""The streaming pipeline of `lungseg predict`: films decoded and preprocessed in a thread pool
ahead of the model, the model on batches, each film finished (post-processed, written) in the
pool behind it; the films in flight bounded in number and in pixels, so memory stays flat on
folders of any size and any film size. A film that fails is reported by name and skipped."""

from __future__ import annotations

import logging
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .imageio import ImageReadError, film_pixels, read_image
from .segmenter import Segmenter

log = logging.getLogger(__name__)
# Films read ahead of the model or waiting to be written, in pixels (float32: about 1 GB): besides
# the count limit, so that a folder of 40-128 megapixel scans does not hold several GB at once.
READ_AHEAD_PIXELS = 256_000_000


def load(seg: Segmenter, path: Path):
    """Decode + preprocess one file (runs in a worker thread)."""
    try:
        rad = read_image(path)
        x, g = seg.prepare(rad)
        return rad, x, g, None
    except Exception as e:
        return None, None, None, failure(path, e)


def failure(path: Path, e: Exception) -> str:
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


def segment(seg, todo, finish, record, batch_size: int, workers: int, read_ahead_pixels: int):
    """The pipeline: `todo` [(index, (path, stem))] decoded ahead of the model in a thread pool,
    the model on batches, `finish` behind it; `record(index, row)` once for each film, as it is
    done: by the worker thread that finished it (so `record` must be thread-safe), or here for
    a film that could not be read."""
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
                loading.append((item, pixels, pool.submit(load, seg, item[1][0])))

        def drain(keep: int):
            nonlocal held
            while len(writing) > keep:
                _, pixels, fut = writing.popleft()
                fut.result()  # (recorded by its worker; raises what the worker raised)
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
                        done = pool.submit(_recorded, record, i, finish, path, stem, rad, g, p)
                        writing.append((i, pixels, done))
                    drain(keep=2 * batch_size)
        finally:  # films past the model are written and recorded, also when stopped
            for *_, fut in loading:
                fut.cancel()  # not yet decoding: dropped (a stop does not wait for them)
            drain(keep=0)
            bar.close()


def _recorded(record, i: int, finish, *args) -> dict:
    """`finish` a film, then `record` its row at once (in the worker thread) -> the row."""
    row = finish(*args)
    record(i, row)
    return row
