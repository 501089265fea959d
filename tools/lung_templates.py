"""Make the lung templates of `lungseg.rebuild` from the TRAIN split's masks: for every film whose
mask holds both lungs, each lung is sampled in the frame of the other (`rebuild.sample`) and the
samples averaged; stored as uint8 occupancy (0-255). Prints how well a template rebuilds each
lung of the train and val masks from the other (Dice: what a rebuilt lung can be expected to
score against a mask of this kind).

    python tools/lung_templates.py --data ../shared/data   # -> src/lungseg/weights/
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lungseg import datasets
from lungseg.metrics import confusion
from lungseg.pairs import load_pair
from lungseg.postprocess import LEFT, RIGHT
from lungseg.rebuild import GRID, U0, U1, V0, V1, place, sample
from lungseg.sides import split_sides
from lungseg.splits import assign_splits, select


def sides(samples) -> list[tuple[np.ndarray, np.ndarray]]:
    """(right lung, left lung) bool HxW of every film with both lungs in its mask."""
    out = []
    for s in samples:
        labels = split_sides(load_pair(s)[1])
        right, left = labels == RIGHT, labels == LEFT
        if right.any() and left.any():
            out.append((right, left))
    return out


def templates(films: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """Mean occupancy of each lung in the other's frame, uint8 GRID[1] x GRID[0]."""
    left = np.mean([sample(lt, rt) for rt, lt in films], axis=0)
    right = np.mean([sample(rt[:, ::-1], lt[:, ::-1]) for rt, lt in films], axis=0)
    return {k: np.round(v * 255).astype(np.uint8) for k, v in (("left", left), ("right", right))}


def rebuilt_dice(t: dict[str, np.ndarray], films) -> dict[str, list[float]]:
    """Dice of each lung rebuilt from the other, per film."""
    f = {k: v.astype(np.float32) / 255 for k, v in t.items()}
    return {
        "left": [confusion(place(f["left"], rt), lt).dice for rt, lt in films],
        "right": [confusion(place(f["right"], lt[:, ::-1])[:, ::-1], rt).dice for rt, lt in films],
    }


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
    np.savez_compressed(a.out, **t, frame=frame, films=len(train))
    print(f"{len(train)} train films with both lungs -> {a.out} ({GRID[0]}x{GRID[1]} cells)")
    for split, films in (("train", train), ("val", sides(select(samples, splits, "val")))):
        for side, d in rebuilt_dice(t, films).items():
            q = np.percentile(d, [10, 50])
            print(
                f"{split:5s} {side:5s} lung rebuilt from the other: Dice mean {np.mean(d):.3f}, "
                f"median {q[1]:.3f}, 10th percentile {q[0]:.3f}, min {min(d):.3f} (n={len(d)})"
            )


if __name__ == "__main__":
    main()
