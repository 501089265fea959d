"""Robustness benchmark: IoU on corrupted val films against the clean lung masks.

Each corruption of lungseg.augment (opacity, effusion, devices, portable film) is applied at three
severities to the images of a split, on their original grid; the model segments the corrupted film
and is scored against the ANATOMICAL mask of the clean film. Prints a table, writes JSON.

    python benchmarks/robustness.py --data ../shared/data --split val \
        --models src/lungseg/weights/lungseg_deeplabv3plus_resnet50.safetensors \
                 runs/clean/model.safetensors
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from lungseg import datasets
from lungseg.augment import CORRUPTIONS, corrupt
from lungseg.imageio import Radiograph
from lungseg.metrics import confusion
from lungseg.model import DEFAULT_WEIGHTS
from lungseg.segmenter import Segmenter

SEVERITIES = (0.3, 0.6, 1.0)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--split", default="val", choices=["train", "val"])
    p.add_argument("--models", nargs="+", default=[str(DEFAULT_WEIGHTS)])
    p.add_argument("--limit", type=int, help="at most N images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/robustness.json")
    a = p.parse_args(argv)

    samples, _ = datasets.discover(a.data)
    splits = datasets.assign_splits(Path(a.data), samples)
    chosen = datasets.select(samples, splits, a.split, limit=a.limit)
    pairs = [datasets.load_pair(s) for s in chosen]
    conditions = [("clean", 0.0)] + [(c, s) for c in CORRUPTIONS for s in SEVERITIES]
    films = {}
    for name, sev in conditions:  # the same corrupted films for every model
        rng = np.random.default_rng(a.seed)
        films[(name, sev)] = [
            img if name == "clean" else corrupt(img, mask, name, sev, rng) for img, mask in pairs
        ]
    results = {}
    for model in a.models:
        seg = Segmenter(model, device="cpu")
        table = {}
        for (name, sev), images in films.items():
            ious = []
            for img, (_, mask) in zip(images, pairs, strict=True):
                ious.append(confusion(seg(Radiograph(img)).mask, mask).iou)
            table[f"{name}@{sev}"] = {"mean_iou": float(np.mean(ious)), "min_iou": min(ious)}
        results[model] = table
    _print(results)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "split": a.split,
        "n_images": len(pairs),
        "seed": a.seed,
        "date": time.strftime("%F"),
        "machine": platform.platform(),
        "severities": SEVERITIES,
    }
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(f"wrote {out}")


def _print(results: dict) -> None:
    models = list(results)
    print(f"{'condition':22s}" + "".join(f"{Path(m).stem[:24]:>26s}" for m in models))
    for cond in results[models[0]]:
        cells = "".join(
            f"{results[m][cond]['mean_iou']:>14.3f} (min {results[m][cond]['min_iou']:.2f})"
            for m in models
        )
        print(f"{cond:22s}{cells}")


if __name__ == "__main__":
    main()
