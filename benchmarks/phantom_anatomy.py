"""Phantom anatomy against real masks: is the phantom's chest shaped like the films'?

The same three figures from the phantom's own masks and from the JSRT/SCR masks (lungs and heart)
of the `train` and `val` splits (never `test`): the cardiothoracic ratio (heart width over the
width of both lungs), the left/right lung area ratio (patient's left over right), the heart's
area over the lungs', the heart's height over its width, and where the heart's top and bottom
lie within the lungs' height (0 apex, 1 lowest lung point). Montgomery and Shenzhen masks have
no heart; their left/right ratio is printed from the lung masks split by side. Prints a
table, writes JSON.

    python benchmarks/phantom_anatomy.py --data ../shared/data --seeds 40
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from report_json import write_json  # beside this file (sys.path[0] for a script)

from lungseg import datasets
from lungseg.imageio import read_mask
from lungseg.pairs import load_pair
from lungseg.phantom import make_phantom
from lungseg.postprocess import LEFT, RIGHT
from lungseg.sides import split_sides
from lungseg.splits import assign_splits, select


def _span(mask: np.ndarray, axis: int) -> tuple[int, int]:
    """First and one-past-last row (axis 1) or column (axis 0) holding the mask; (0, 0) if empty."""
    idx = np.flatnonzero(mask.any(axis))
    return (int(idx[0]), int(idx[-1] + 1)) if len(idx) else (0, 0)


def _width(mask: np.ndarray) -> int:
    a, b = _span(mask, 0)
    return b - a


def figures(right: np.ndarray, left: np.ndarray, heart: np.ndarray | None) -> dict:
    """bool HxW masks -> {left_right, ctr, heart_lungs, heart_aspect, heart_top, heart_bottom}
    (without a heart: left_right only)."""
    lungs = right | left
    out = {"left_right": float(left.sum() / max(1, right.sum()))}
    if heart is not None:
        (top, bottom), (h0, h1) = _span(lungs, 1), _span(heart, 1)
        out["ctr"] = _width(heart) / max(1, _width(lungs))
        out["heart_lungs"] = float(heart.sum() / max(1, lungs.sum()))
        out["heart_aspect"] = (h1 - h0) / max(1, _width(heart))
        out["heart_top"] = (h0 - top) / max(1, bottom - top)
        out["heart_bottom"] = (h1 - top) / max(1, bottom - top)
    return out


def summary(rows: list[dict]) -> dict:
    """Per-film figures -> {figure: {n, mean, p5, p95}} over the films that have it."""
    keys = sorted({k for r in rows for k in r})
    return {
        k: {
            "n": len(v),
            "mean": float(np.mean(v)),
            "p5": float(np.percentile(v, 5)),
            "p95": float(np.percentile(v, 95)),
        }
        for k in keys
        for v in [[r[k] for r in rows if k in r]]
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--seeds", type=int, default=40, help="phantoms 0..N-1")
    p.add_argument("--size", type=int, default=768)
    p.add_argument("--out", default="benchmarks/results/phantom_anatomy.json")
    a = p.parse_args(argv)

    samples, _ = datasets.discover(a.data)
    splits = assign_splits(Path(a.data), samples)
    rows: dict[str, list[dict]] = {}
    for s in select(samples, splits, "train") + select(samples, splits, "val"):
        heart = None
        if s.dataset == "jsrt":
            masks = Path(a.data) / "jsrt" / "masks"  # the SCR masks of ../shared/data (README)
            right, left, heart = (read_mask(masks / k / s.image.name) > 0
                                  for k in ("right_lung", "left_lung", "heart"))  # fmt: skip
        else:
            sides = split_sides(load_pair(s)[1].astype(np.uint8))
            right, left = sides == RIGHT, sides == LEFT
        rows.setdefault(s.dataset, []).append(figures(right, left, heart))
    for seed in range(a.seeds):
        ph = make_phantom(a.size, seed)
        rows.setdefault("phantom", []).append(figures(ph.right > 0, ph.left > 0, ph.heart > 0))
    table = {name: summary(r) for name, r in rows.items()}
    cols = ("ctr", "left_right", "heart_lungs", "heart_aspect", "heart_top", "heart_bottom")
    print(f"{'masks':12s} {'n':>4s} " + " ".join(f"{c:>17s}" for c in cols))
    for name, t in table.items():
        cells = [
            f"{t[k]['mean']:.3f} ({t[k]['p5']:.2f}-{t[k]['p95']:.2f})" if k in t else "-"
            for k in cols
        ]
        print(f"{name:12s} {t['left_right']['n']:4d} " + " ".join(f"{c:>17s}" for c in cells))
    write_json(a.out, {"seeds": a.seeds, "size": a.size, "splits": ["train", "val"]}, **table)


if __name__ == "__main__":
    main()
