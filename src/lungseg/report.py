"""Pictures a person wants: lung outlines on the film, sheets of the results to check, result
grids, training curves."""

from __future__ import annotations

import csv
import logging
import textwrap
from pathlib import Path

import cv2
import numpy as np

from .arrays import from_array
from .files import OVERLAY, SHEET_STEM, output_name
from .imageio import imdecode
from .png import predicted, write_png
from .postprocess import LEFT, RIGHT, bounding_box

log = logging.getLogger(__name__)

RIGHT_COLOR, LEFT_COLOR, TRUTH_COLOR = (255, 80, 60), (60, 160, 255), (80, 230, 80)
# Overlays are 8-bit palette images: 252 gray levels, then the three outline colours. A palette PNG
# is a third of the bytes of RGB to filter and compress (predict writes one per film).
GRAYS = 252
RIGHT_INDEX, LEFT_INDEX, TRUTH_INDEX = GRAYS, GRAYS + 1, GRAYS + 2
PALETTE = np.concatenate(
    [
        np.repeat(np.round(np.arange(GRAYS) * 255 / (GRAYS - 1)), 3).reshape(-1, 3),
        [RIGHT_COLOR, LEFT_COLOR, TRUTH_COLOR],
    ]
).astype(np.uint8)


def _outline(
    img: np.ndarray,
    region: np.ndarray,
    index: int,
    thickness: int,
    at: tuple[int, int] = (0, 0),
    dashed: bool = False,
) -> tuple | None:
    """Draw the outer outline of `region` (bool, a crop of `img`'s size whose top left is at
    (x, y) = `at`) in palette `index`, `dashed` or solid; returns its bounding box (x, y, w, h)
    in `img`."""
    contours, _ = cv2.findContours(
        region.view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE, offset=at
    )
    if dashed:  # every other run of 6 x thickness outline pixels
        n = 6 * thickness
        dashes = [c[i : i + n] for c in contours for i in range(0, len(c), 2 * n)]
        cv2.polylines(img, dashes, False, index, thickness, cv2.LINE_8)
    else:
        cv2.drawContours(img, contours, -1, index, thickness, cv2.LINE_8)
    return cv2.boundingRect(np.concatenate(contours)) if contours else None


def overlay_indexed(
    image: np.ndarray,
    labels: np.ndarray,
    truth: np.ndarray | None = None,
    max_side: int = 2048,
    rebuilt: int | None = None,
) -> np.ndarray:
    """image float32 HxW [0,1], labels uint8 HxW (1 right, 2 left; or a {0,1} mask) -> uint8
    indices into PALETTE: the film in gray with outlines (red: patient's right, blue: left,
    green: ground truth) and R/L marks; the `rebuilt` side (`rebuild`: an estimate) dashed and
    marked "R rebuilt" or "L rebuilt". Downscaled so the long side is at most `max_side`.
    Write it with `write_png(path, indices, PALETTE)`; `PALETTE[indices]` is the RGB picture."""
    scale = min(1.0, max_side / max(image.shape))
    if scale < 1:
        hw = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        image = cv2.resize(image, hw, interpolation=cv2.INTER_AREA)
        labels = cv2.resize(labels, hw, interpolation=cv2.INTER_NEAREST)
        truth = None if truth is None else cv2.resize(truth, hw, interpolation=cv2.INTER_NEAREST)
    img = cv2.convertScaleAbs(image, alpha=GRAYS - 1.0)  # float [0,1] -> 0..251, saturating
    np.minimum(img, GRAYS - 1, out=img)  # (values over 1 would index the outline colours)
    t = max(1, round(min(img.shape) / 300))
    if truth is not None:
        _outline(img, truth > 0, TRUTH_INDEX, t)
    rows, cols = bounding_box(labels, margin=1)  # outlines traced on the lungs' box only
    for side, index, text in ((RIGHT, RIGHT_INDEX, "R"), (LEFT, LEFT_INDEX, "L")):
        guess = side == rebuilt
        box = _outline(img, labels[rows, cols] == side, index, t, (cols.start, rows.start), guess)
        if box is None:
            continue
        x, y, w, _ = box
        text += " rebuilt" * guess
        shift = 4 * t + 6 * t * (len(text) - 1)  # about half the text's width
        _text(img, text, (x + w // 2 - shift, y + 14 * t), index, t)  # above the lung's middle
    return img


def _text(img: np.ndarray, text: str, org: tuple[int, int], index: int, t: int) -> None:
    """Write `text` (bottom-left at `org`) in palette `index`, stroke `t`. OpenCV blends text
    edges even with LINE_8, so it is drawn on a scratch patch just around it, then picked."""
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.6 * t
    (tw, th), base = cv2.getTextSize(text, font, scale, 2 * t)
    m = 3 * t + 2  # the stroke reaches past getTextSize's box by up to its thickness
    y0, x0 = max(0, org[1] - th - m), max(0, org[0] - m)
    y1, x1 = min(img.shape[0], org[1] + base + m), min(img.shape[1], org[0] + tw + m)
    if y1 <= y0 or x1 <= x0:
        return
    ink = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.putText(ink, text, (org[0] - x0, org[1] - y0), font, scale, 255, 2 * t, cv2.LINE_8)
    img[y0:y1, x0:x1][ink >= 128] = index


def overlay(
    image: np.ndarray,
    labels: np.ndarray,
    truth: np.ndarray | None = None,
    max_side: int = 2048,
    rebuilt: int | None = None,
) -> np.ndarray:
    """The overlay of `overlay_indexed` as uint8 RGB HxWx3 (`image` also uint8, uint16, ...:
    `arrays.from_array`), e.g. `overlay(image, result.labels, rebuilt=result.rebuilt)`."""
    if image.dtype != np.float32:
        image = from_array(image)
    return PALETTE[overlay_indexed(image, labels, truth, max_side, rebuilt)]


SHEET = SHEET_STEM + "{:02d}.png"  # `check_sheets`' pages (files.is_byproduct knows them)
TILE, CAPTION, GAP, COLUMNS, ROWS = 256, 50, 6, 6, 5  # px: overlay, text below it, between


def check_sheets(out_dir: str | Path, rows: list[dict]) -> list[Path]:
    """Contact sheets of the overlays `predict` wrote for the results flagged `check` (`rows`:
    results.csv's rows, in order): each overlay shrunk into a TILE px square with the film's
    name and flags below it, COLUMNS x ROWS per page, written as OUT/check_overlays_01.png, 02,
    ... -> the pages written. Pages of an earlier run beyond these are removed, and a file of
    that name lungseg did not write is kept (that page not written); films whose overlay is not
    there (`--no-overlay`, deleted) are left out."""
    out_dir = Path(out_dir)
    flagged = [r for r in rows if r.get("quality") == "check" and r.get("mask")]
    tiles = [(r, out_dir / f"{_film(r)}{OVERLAY}.png") for r in flagged]
    tiles = [(r, p) for r, p in tiles if p.is_file()]
    per_page = COLUMNS * ROWS
    pages = []
    for n, start in enumerate(range(0, len(tiles), per_page), 1):
        page_path = out_dir / SHEET.format(n)
        if page_path.exists() and not predicted(page_path):  # not lungseg's: left as it is
            log.warning("%s exists and lungseg did not write it: that page not written", page_path)
            continue
        page = tiles[start : start + per_page]
        used = -(-len(page) // COLUMNS)  # rows of tiles on this page
        sheet = np.full((used * (TILE + CAPTION), COLUMNS * (TILE + GAP) - GAP, 3), 255, np.uint8)
        for k, (row, path) in enumerate(page):
            y, x = (k // COLUMNS) * (TILE + CAPTION), (k % COLUMNS) * (TILE + GAP)
            _tile(sheet[y : y + TILE + CAPTION, x : x + TILE], path, row)
        pages.append(page_path)
        write_png(page_path, sheet, mark=True)
    for old in out_dir.glob(SHEET.replace("{:02d}", "*")):  # a longer earlier run's last pages
        if old not in pages and predicted(old):
            old.unlink()
    return pages


def _film(row: dict) -> str:
    """The film's output stem of a results.csv row."""
    return output_name(row["mask"])


def _tile(cell: np.ndarray, path: Path, row: dict) -> None:
    """Draw the overlay at `path` shrunk into the top TILE x TILE of `cell` (RGB, white), and
    below it the film's name and flags (on two lines, cut to fit)."""
    bgr = imdecode(path, cv2.IMREAD_COLOR)
    if bgr is not None:
        h, w = bgr.shape[:2]
        scale = TILE / max(h, w)
        small = cv2.resize(bgr, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA)  # fmt: skip
        top, left = (TILE - small.shape[0]) // 2, (TILE - small.shape[1]) // 2
        cell[top : top + small.shape[0], left : left + small.shape[1]] = small[..., ::-1]
    name = _film(row).encode("ascii", "replace").decode()  # (putText: ASCII; crashes on a
    name = name if len(name) <= 40 else name[:37] + "..."  # name that is not UTF-8)
    flags = str(row.get("flags") or "").replace(";", " ")
    for i, text in enumerate([name, *textwrap.wrap(flags, 40, max_lines=2, placeholder=" ...")]):
        cv2.putText(cell, text, (4, TILE + 13 + 15 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.36,
                    (0, 0, 0), 1, cv2.LINE_AA)  # fmt: skip


def results_grid(
    rows: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], path: str | Path, title: str = ""
) -> None:
    """rows of (caption, image, truth mask, predicted mask) -> PNG: image | truth | prediction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.5 * len(rows)), squeeze=False)
    for r, (caption, image, truth, pred) in enumerate(rows):
        for c, (arr, name) in enumerate(
            ((image, "image"), (truth, "ground truth"), (pred, "prediction"))
        ):
            ax = axes[r, c]
            ax.imshow(arr, cmap="gray", vmin=0, vmax=1 if arr.dtype != np.uint8 else arr.max() or 1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name)
        axes[r, 0].set_ylabel(caption, fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def training_curves(metrics_csv: str | Path, path: str | Path) -> bool:
    """Plot loss and validation IoU/Dice per epoch from a Lightning CSV log. False if no data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(metrics_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    series: dict[str, dict[int, float]] = {}
    for row in rows:
        for key in ("train_loss", "val_loss", "val_iou", "val_dice"):
            if row.get(key):
                series.setdefault(key, {})[int(row["epoch"])] = float(row[key])
    if not series:
        return False
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for key in ("train_loss", "val_loss"):
        if key in series:
            a.plot(list(series[key]), list(series[key].values()), marker=".", label=key)
    for key in ("val_iou", "val_dice"):
        if key in series:
            b.plot(list(series[key]), list(series[key].values()), marker=".", label=key)
    a.set_xlabel("epoch")
    b.set_xlabel("epoch")
    a.legend()
    b.legend()
    a.set_title("loss (BCE + Dice)")
    b.set_title("validation (model grid)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
