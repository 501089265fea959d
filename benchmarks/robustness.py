"""Robustness benchmark: IoU on corrupted val films against the clean lung masks.

Each corruption of lungseg.augment (opacity, effusion, devices, portable film) is applied at three
severities to the images of a split, on their original grid; the model segments the corrupted film
and is scored against the ANATOMICAL mask of the clean film. Prints a table, writes JSON.

    python benchmarks/robustness.py --data ../shared/data --split val \
        --models src/lungseg/weights/lungseg_deeplabv3plus_resnet50.safetensors \
                 runs/clean/model.safetensors

--post also scores post-processing variants on the same probabilities (issue 6: does growing the
mask from confident seeds into lower-probability tissue rebuild lungs fragmented by opacity?):
raw threshold, the default clean-up (the two lungs = the components with the most summed
probability that lie side by side), the same choosing the components with the most pixels, the
two heaviest whether side by side or not (`no_pairs`), a lower threshold, and
hysteresis (seeds p >= 0.5 grown into p >= low); counts films whose raw mask has more than two
significant components. Each condition counts the films whose lost lung `rebuild` estimated.
--input-sizes runs each model at other input sizes than the one it was trained at.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from model_runs import SEVERITIES, add_input_sizes, segmenters  # beside this file (sys.path[0])
from model_runs import conditions as model_conditions
from report_json import write_json

from lungseg import datasets
from lungseg import postprocess as pp
from lungseg.augment import corrupt
from lungseg.imageio import Radiograph
from lungseg.metrics import confusion
from lungseg.model import DEFAULT_WEIGHTS
from lungseg.pairs import load_pair
from lungseg.splits import assign_splits, select


def hysteresis(prob: np.ndarray, low: float, high: float = 0.5) -> np.ndarray:
    """uint8 {0,1}: connected regions of prob >= low that contain a pixel with prob >= high."""
    n, lab = cv2.connectedComponents((prob >= low).astype(np.uint8), connectivity=8)
    seeded = np.zeros(n, bool)
    seeded[np.unique(lab[prob >= high])] = True
    seeded[0] = False
    return seeded[lab].astype(np.uint8)


POST = {  # name -> (prob HxW float32, image HxW float32) -> mask uint8 {0,1}
    "raw": lambda p, im: (p >= 0.5).astype(np.uint8),
    "default": lambda p, im: pp.clean((p >= 0.5).astype(np.uint8), im, p),
    "by_area": lambda p, im: pp.clean((p >= 0.5).astype(np.uint8), im),  # lungs = most pixels
    "no_pairs": lambda p, im: pp.clean((p >= 0.5).astype(np.uint8), im, p, pairs=False),
    "thr0.4": lambda p, im: pp.clean((p >= 0.4).astype(np.uint8), im, p),
    "hyst0.3": lambda p, im: pp.clean(hysteresis(p, 0.3), im, p),
    "hyst0.2": lambda p, im: pp.clean(hysteresis(p, 0.2), im, p),
}


def fragmented(prob: np.ndarray, image: np.ndarray) -> bool:
    """More than two components of >= 2% of the raw mask's area (a lung split by opacity)."""
    areas = pp.components(pp.drop_unexposed((prob >= 0.5).astype(np.uint8), image))[1]
    return int((areas >= 0.02 * areas.sum()).sum()) > 2


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--split", default="val", choices=["train", "val"])
    p.add_argument("--models", nargs="+", default=[str(DEFAULT_WEIGHTS)])
    p.add_argument("--limit", type=int, help="at most N images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--conditions", nargs="+", help="only these, e.g. clean@0.0 opacity@1.0")
    p.add_argument("--post", action="store_true", help="also score post-processing variants")
    add_input_sizes(p)
    p.add_argument("--out", default="benchmarks/results/robustness.json")
    a = p.parse_args(argv)
    conditions = model_conditions(p, a.conditions)  # (checked before any data is read)

    samples, _ = datasets.discover(a.data)
    splits = assign_splits(Path(a.data), samples)
    chosen = select(samples, splits, a.split, limit=a.limit)
    pairs = [load_pair(s) for s in chosen]
    films = {}
    for name, sev in conditions:  # the same corrupted films for every model
        rng = np.random.default_rng(a.seed)
        films[(name, sev)] = [
            img if name == "clean" else corrupt(img, mask, name, sev, rng) for img, mask in pairs
        ]
    results, post = {}, {}
    for model, seg in segmenters(a.models, a.input_sizes):
        table, ptable = {}, {}
        for (name, sev), images in films.items():
            ious, pious, n_frag, n_rebuilt = [], {k: [] for k in POST}, 0, 0
            for img, (_, mask) in zip(images, pairs, strict=True):
                res = seg(Radiograph(img))
                ious.append(confusion(res.mask, mask).iou)
                n_rebuilt += res.rebuilt is not None
                if a.post:
                    n_frag += fragmented(res.prob, img)
                    for k, f in POST.items():
                        pious[k].append(confusion(f(res.prob, img), mask).iou)
            table[f"{name}@{sev}"] = {
                "mean_iou": float(np.mean(ious)),
                "min_iou": min(ious),
                "worst": chosen[int(np.argmin(ious))].id,
                "rebuilt": n_rebuilt,  # films with a lost lung rebuilt (`rebuild`)
            }
            if a.post:
                ptable[f"{name}@{sev}"] = {k: _stats(v) for k, v in pious.items()}
                ptable[f"{name}@{sev}"]["fragmented_films"] = n_frag
        results[model], post[model] = table, ptable
    _print(results)
    if a.post:
        _print_post(post)
    meta = {"split": a.split, "n_images": len(pairs), "seed": a.seed, "severities": SEVERITIES}
    meta["input_sizes"] = a.input_sizes
    write_json(a.out, meta, results=results, **({"postprocess": post} if a.post else {}))


def _print(results: dict) -> None:
    models = list(results)
    print(f"{'condition':22s}" + "".join(f"{Path(m).name[-24:]:>26s}" for m in models))
    for cond in results[models[0]]:
        cells = "".join(
            f"{results[m][cond]['mean_iou']:>14.3f} (min {results[m][cond]['min_iou']:.2f})"
            for m in models
        )
        print(f"{cond:22s}{cells}")


def _stats(ious: list[float]) -> dict:
    return {"mean_iou": float(np.mean(ious)), "min_iou": float(min(ious))}


def _print_post(post: dict) -> None:
    for model, table in post.items():
        print(f"\npost-processing variants, {Path(model).stem}: mean IoU (min)")
        print(f"{'condition':16s}" + "".join(f"{k:>16s}" for k in POST) + "  fragmented")
        for cond, row in table.items():
            cells = "".join(f"{row[k]['mean_iou']:9.4f} ({row[k]['min_iou']:.2f})" for k in POST)
            print(f"{cond:16s}{cells}  {row['fragmented_films']:>10d}")


if __name__ == "__main__":
    main()
