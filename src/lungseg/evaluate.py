"""Evaluate a model on a split, per image and per dataset: IoU, Dice and pixel accuracy, the Dice
of each lung (the patient's right and left), the lung area's error and the distances between
the outlines, computed on each image's ORIGINAL pixel grid (predictions mapped back through the
inverse geometry)."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from . import datasets as data
from . import pairs, report
from .metrics import (
    boundary_distances,
    confusion,
    largest_disagreement,
    side_dice,
    summarize,
)
from .model import trained_on
from .png import write_png
from .protocol import find_run_dir, not_held_out, shipped_on_public, split_file_for
from .segmenter import Segmenter
from .sides import split_sides
from .splits import (
    assign_splits,
    check_dataset_names,
    find_splits_file,
    read_splits,
    select,
)

log = logging.getLogger(__name__)
THUMB = 256
# what an evaluation writes in its --out (besides a new split's splits.csv): `_clear_earlier`
METRICS, PER_IMAGE = "metrics.json", "per_image.csv"
GRID, CURVES = "results_grid.png", "training_curves.png"
WORST = "worst"  # folder of the worst films' overlays, <id>_iou<IoU>.png
NOTE = (
    "Metrics are computed per image on the original pixel grid of each image (the "
    "prediction is mapped back through the inverse resize/crop/letterbox); dataset "
    "figures are means over images."
)


def _thumb(a: np.ndarray) -> np.ndarray:
    """A film or mask shrunk for the figures, its long side THUMB px (its shape kept)."""
    interp = cv2.INTER_AREA if a.dtype != np.uint8 else cv2.INTER_NEAREST
    scale = THUMB / max(a.shape)
    size = (max(1, round(a.shape[1] * scale)), max(1, round(a.shape[0] * scale)))
    return cv2.resize(a, size, interpolation=interp)


def evaluate(
    model: str | None,
    root: str,
    split: str,
    out: str,
    datasets: list | None = None,
    limit: int | None = None,
    postprocess: bool = True,
    rebuild: bool = True,
    run_dir: str | None = None,
    strict: bool = False,
    device: str = "auto",
    batch_size: int = 4,
    n_worst: int = 6,
    threshold: float | None = None,
    precision: str = "auto",
) -> dict:
    """Writes OUT/metrics.json, per_image.csv (with each film's largest missed and extra region,
    `metrics.largest_disagreement`, each lung's Dice, `metrics.side_dice`, the lung area's
    error, `Confusion.area_error`, and the outlines' distances in pixels,
    `metrics.boundary_distances`), results_grid.png, worst/*.png and, when a run folder is
    known, training_curves.png. Returns the metrics dict.
    `threshold` overrides the model's probability threshold (to choose one on `val`);
    `precision`: runners.TorchRunner;
    `rebuild`: a lung the model lost is estimated (`rebuild.rebuild`), as `predict` does.
    Split: the training run's splits.csv (`run_dir`, or the run folder, marked by its
    metrics.csv, holding `model` or its checkpoints/) when it lists every film found under
    `root` or the data has no splits.csv of its own, so a model is scored on films it was not
    trained on; else the data's splits.csv (`splits.find_splits_file`); else a new split
    (logged as a warning). Nothing but
    OUT/splits.csv is written when no pair can be evaluated (ValueError); `strict` stops on any
    pairing or loading problem."""
    if threshold is not None and not 0 < threshold < 1:
        raise ValueError(f"--threshold must be between 0 and 1, got {threshold}")
    if run_dir and not Path(run_dir).is_dir():
        raise FileNotFoundError(f"--run {run_dir}: folder not found; give a training run folder")
    samples, problems = data.discover(root)
    if problems and strict:
        raise ValueError("pairing problems (--strict):\n" + "\n".join(map(str, problems)))
    datasets = check_dataset_names(datasets)
    # loaded first: a bad model writes nothing
    seg = Segmenter(
        model, device=device, postprocess=postprocess, rebuild=rebuild, precision=precision
    )
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear_earlier(out_dir)
    run = find_run_dir(model, run_dir)
    trained = run / "splits.csv" if run and (run / "splits.csv").is_file() else None
    if split == "all":  # every film: no split to find or make
        split_file, chosen = None, select(samples, {}, None, datasets, limit)
        trained = trained or find_splits_file(root)
    else:
        split_file = split_file_for(root, trained, samples)
        splits = assign_splits(Path(root), samples, out_dir, split_file=split_file)
        chosen = select(samples, splits, split, datasets, limit)
        trained = None if split_file == trained else trained  # (another split than the run's)
        if split_file is None and all(s.dataset == "other" for s in samples):
            log.warning(
                "scoring the %s films of a new split (%d of %d): for every film of your own, "
                "use --split all", split, len(chosen), len(samples)
            )  # fmt: skip
    listed, source = (read_splits(trained, chosen), trained) if trained else ({}, None)
    if not trained and (model_file := seg.model_file()) and (listed := trained_on(model_file)):
        source = f"the training record inside {model_file}"  # (a model out of its run folder)
    seen = not_held_out(listed, source, chosen, split) if source else []
    unknown = 0 if source else shipped_on_public(seg.model_file(), chosen, split_file, split)
    if not chosen:
        which = "" if split == "all" else f"{split} "
        among = f" of datasets {', '.join(datasets)}" if datasets else ""
        why = "" if split == "all" or split_file else (
            f" (a new split of {len(samples)} films: groups of one dataset and label with fewer "
            "than 3 films, and films in a train/ folder, give no val or test film; --split all "
            "scores every film)")  # fmt: skip
        raise ValueError(f"no {which}films under {root}{among}{why}")
    if threshold is not None:
        seg.config.threshold = threshold
    rows, thumbs = [], {}
    for start in tqdm(range(0, len(chosen), batch_size), desc=f"evaluate {split}", unit="batch"):
        batch, truths = [], []
        for s in chosen[start : start + batch_size]:
            try:
                rad, mask = pairs.load_film_pair(s)
            except (ValueError, FileNotFoundError) as e:
                if strict:
                    raise
                problems.append(data.Problem(str(s.image), str(e), "skipped"))
                continue
            batch.append((s, rad))
            truths.append(mask)
        if not batch:
            continue
        results = seg.batch([r for _, r in batch])
        for (s, rad), truth, res in zip(batch, truths, results, strict=True):
            c = confusion(res.mask, truth)
            rows.append(
                {
                    "dataset": s.dataset,
                    "id": s.id,
                    **c.as_dict(),
                    "height": truth.shape[0],
                    "width": truth.shape[1],
                    "quality": res.stats["quality"],
                    "flags": res.stats["flags"],
                    **{f"largest_{k}": v for k, v in largest_disagreement(res.mask, truth).items()},
                    **side_dice(res.labels, truth),
                    "area_error": c.area_error,  # the lung area measured, off by this fraction
                    **{f"{k}_px": v for k, v in boundary_distances(res.mask, truth).items()},
                    "image": str(s.image),  # last: columns read by position keep their place
                }
            )
            thumbs[(s.dataset, s.id)] = (_thumb(rad.image), _thumb(truth), _thumb(res.mask))
    log.info("%s", pairs.summarize(len(rows), problems))
    if not rows:
        raise ValueError(
            f"no pair could be evaluated: all {len(chosen)} failed their checks; first "
            "problems:\n" + "\n".join(f"  {p}" for p in problems[:5])
        )
    if len(rows) > 1 and all(r["iou"] == 1.0 for r in rows):
        log.warning("every film scores IoU 1.0: are the masks this model's own predictions?")
    metrics = summarize(rows)
    metrics["protocol"] = {
        "split": split,
        "split_file": None
        if split == "all"
        else str(split_file or f"new split, saved as {out_dir / 'splits.csv'}"),
        "datasets": datasets,
        "limit": limit,
        "model": str(model or "shipped default"),
        "postprocess": postprocess,
        "rebuild": seg.rebuild,
        "threshold": seg.config.threshold,
        "bf16": getattr(seg.runner, "bf16", False),  # the PyTorch model in bf16 autocast
        "note": NOTE,
        "skipped": [str(p) for p in problems],
        "not_held_out": seen,  # films the model was trained or selected on (when known)
        "public_films_maybe_seen": unknown,  # the shipped model off the project's split
    }
    (out_dir / METRICS).write_text(json.dumps(metrics, indent=2))
    with open(out_dir / PER_IMAGE, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    _figures(rows, thumbs, out_dir, n_worst)
    if run is not None and (run / "metrics.csv").is_file():
        report.training_curves(run / "metrics.csv", out_dir / CURVES)
    return metrics


def _clear_earlier(out_dir: Path) -> None:
    """Remove what an earlier evaluation into `out_dir` wrote (its metrics.json says there was
    one), so that no figure or split of it passes for this one's: its tables and figures, its
    worst/ overlays and the splits.csv it made for a new split (not one it was given)."""
    try:
        said = json.loads((out_dir / METRICS).read_text())["protocol"]["split_file"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    made = [out_dir / "splits.csv"] if str(said).startswith("new split") else []
    names = (METRICS, PER_IMAGE, GRID, CURVES)
    for path in [*(out_dir / n for n in names), *made, *(out_dir / WORST).glob("*_iou*.png")]:
        path.unlink(missing_ok=True)


def table(metrics: dict) -> str:
    """One line per dataset of `evaluate`'s metrics: n, IoU, Dice, pixel accuracy, the Dice of
    the patient's right and left lung, the lung area's error (mean signed, mean absolute) and
    the outlines' distances (95th percentile, mean) in pixels."""
    lines = []
    for ds, m in metrics.items():
        if isinstance(m, dict) and "iou" in m:
            n = f"n={m['n']:>4}" if "n" in m else ""  # (mean_of_datasets: a mean of means)
            more = ""  # (older metrics.json files lack these)
            if "right_dice" in m and "left_dice" in m:
                more += f"  right {m['right_dice']:.4f}  left {m['left_dice']:.4f}"
            if "area_error_abs" in m:
                more += f"  area {m['area_error']:+.1%} (abs {m['area_error_abs']:.1%})"
            if "hd95_px" in m and "assd_px" in m:
                more += f"  HD95 {m['hd95_px']:.1f} px  ASSD {m['assd_px']:.1f} px"
            lines.append(
                f"{ds:18s} {n:6s}  IoU {m['iou']:.4f}  Dice {m['dice']:.4f}  "
                f"acc {m['pixel_accuracy']:.4f}{more}"
            )
    return "\n".join(lines)


def _figures(rows: list[dict], thumbs: dict, out_dir: Path, n_worst: int) -> None:
    """A results grid (best, median and worst image per dataset) and overlays of the worst."""
    grid = []
    for ds in sorted({r["dataset"] for r in rows}):
        sub = sorted((r for r in rows if r["dataset"] == ds), key=lambda r: r["iou"])
        for r in (sub[-1], sub[len(sub) // 2], sub[0]):
            grid.append((f"{r['id']}\nIoU {r['iou']:.3f}", *thumbs[(r["dataset"], r["id"])]))
    report.results_grid(grid, out_dir / GRID, "best / median / worst per dataset")
    worst_dir = out_dir / WORST
    worst_dir.mkdir(exist_ok=True)
    for r in sorted(rows, key=lambda r: r["iou"])[:n_worst]:
        image, truth, pred = thumbs[(r["dataset"], r["id"])]
        write_png(
            worst_dir / f"{r['id']}_iou{r['iou']:.3f}.png",
            report.overlay_indexed(image, split_sides(pred), truth),
            report.PALETTE,
        )
