"""Make the lung templates of `lungseg.rebuild` from the TRAIN split's masks: for every film whose
mask holds both lungs, each lung is sampled in the frame of the other (`rebuild.sample`) and the
samples averaged; stored as uint8 occupancy (0-255), with `offset`: how far right of the film's
mid-line (`rebuild.midline`) the lungs' centre lies, over the width (mean over the train films).
Prints how well `rebuild.rebuild` rebuilds each lung of the train and val films from the other
(Dice against the mask: what a rebuilt lung can be expected to score on a film of this kind):
without the film (the template placed by the other lung's box alone), with it, and (val) with
that lung made white first.

    python tools/lung_templates.py --data ../shared/data   # -> src/lungseg/weights/
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lungseg import datasets
from lungseg.augment import corrupt
from lungseg.metrics import confusion
from lungseg.pairs import load_pair
from lungseg.postprocess import LEFT, RIGHT
from lungseg.rebuild import GRID, U0, U1, V0, V1, load_templates, midline, rebuild, sample
from lungseg.sides import split_sides
from lungseg.splits import assign_splits, select


def sides(samples) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(film, right lung, left lung): float32 HxW, bool HxW, bool HxW, of every film with both
    lungs in its mask."""
    out = []
    for s in samples:
        image, mask = load_pair(s)
        labels = split_sides(mask)
        right, left = labels == RIGHT, labels == LEFT
        if right.any() and left.any():
            out.append((image, right, left))
    return out


def templates(films: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """Mean occupancy of each lung in the other's frame, uint8 GRID[1] x GRID[0]."""
    left = np.mean([sample(lt, rt) for _, rt, lt in films], axis=0)
    right = np.mean([sample(rt[:, ::-1], lt[:, ::-1]) for _, rt, lt in films], axis=0)
    return {k: np.round(v * 255).astype(np.uint8) for k, v in (("left", left), ("right", right))}


def offset(films) -> float:
    """Mean of (the lungs' centre - the film's mid-line) / width, the mid-line found on the rows
    of each lung in turn (as `rebuild.mirror_shift` finds it on the lung that is left)."""
    d = []
    for image, rt, lt in films:
        centre = (np.nonzero(rt)[1].mean() + np.nonzero(lt)[1].mean()) / 2
        for lung in (rt, lt):
            rows = np.flatnonzero(lung.any(axis=1))
            d.append((centre - midline(image, (rows[0], rows[-1]))) / image.shape[1])
    return float(np.mean(d))


def rebuilt_dice(films, film: str, templates: dict) -> dict[str, list[float]]:
    """Dice of each lung rebuilt (`rebuild.rebuild`) from the other, per film; `film`: "none"
    (the template placed by the other lung's box alone), "as is", or "white" (that lung made
    opaque by `augment`'s opacity at severity 1, as the model would have lost it)."""
    out = {"left": [], "right": []}
    rng = np.random.default_rng(0)
    for image, rt, lt in films:
        both = (rt * RIGHT + lt * LEFT).astype(np.uint8)
        for side, truth in (("left", lt), ("right", rt)):
            labels = np.where(truth, 0, both).astype(np.uint8)
            seen = image
            for _ in range(20 * (film == "white")):  # the opacity picks one side or both:
                seen = corrupt(image, truth.view(np.uint8), "opacity", 1.0, rng)  # until this one
                if (seen[truth] != image[truth]).mean() > 0.5:
                    break
            got, _ = rebuild(labels, None if film == "none" else seen, templates)
            out[side].append(confusion(got == (LEFT if side == "left" else RIGHT), truth).dice)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--out", default="src/lungseg/weights/lung_templates.npz")
    a = p.parse_args(argv)
    samples, _ = datasets.discover(a.data)
    splits = assign_splits(Path(a.data), samples)
    train = sides(select(samples, splits, "train"))
    t = templates(train)
    frame = np.array([U0, U1, V0, V1], np.float32)
    off = offset(train)
    np.savez_compressed(a.out, **t, frame=frame, films=len(train), offset=off)
    print(f"{len(train)} train films with both lungs -> {a.out} ({GRID[0]}x{GRID[1]} cells)")
    print(f"the lungs' centre lies {off:.4f} x the width right of the film's mid-line")
    made = load_templates.__wrapped__(Path(a.out))  # the file just written
    for split, films in (("train", train), ("val", sides(select(samples, splits, "val")))):
        for film in ("none", "as is", "white")[: 2 + (split == "val")]:
            for side, d in rebuilt_dice(films, film, made).items():
                q = np.percentile(d, [10, 50])
                print(
                    f"{split:5s} {side:5s} lung rebuilt from the other, "
                    f"film {film:5s}: Dice mean {np.mean(d):.3f}, "
                    f"median {q[1]:.3f}, 10th percentile {q[0]:.3f}, min {min(d):.3f} (n={len(d)})"
                )


if __name__ == "__main__":
    main()
