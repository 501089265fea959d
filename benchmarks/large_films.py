"""Large films: post-processing on the working grid (`Segmenter.work_size`, 1024 px; others with
`--work-sizes`) against post-processing on the film's own grid.

The val films here are at most 1024 px, so they are enlarged (`--scale`, bicubic; masks nearest)
to the size of hospital films. For each: IoU of both against the enlarged mask, the agreement of
the two masks, whether the quality flag differs, and the CPU time of `Segmenter.finish`. Prints a
table, writes JSON.

    python benchmarks/large_films.py --data ../shared/data --scale 2.6
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
from report_json import write_json  # beside this file (sys.path[0] for a script)

from lungseg import datasets as data
from lungseg.imageio import Radiograph
from lungseg.metrics import confusion
from lungseg.model import DEFAULT_WEIGHTS
from lungseg.pairs import load_pair
from lungseg.segmenter import WORK_SIZE, Segmenter
from lungseg.splits import assign_splits, select


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="val", choices=["train", "val"])  # never test
    p.add_argument("--model", default=str(DEFAULT_WEIGHTS))
    p.add_argument("--scale", type=float, default=2.6, help="1: the films as they are")
    p.add_argument("--work-sizes", type=int, nargs="+", default=[WORK_SIZE], help="px")
    p.add_argument("--limit", type=int)
    p.add_argument("--out", default="benchmarks/results/large_films.json")
    a = p.parse_args(argv)

    samples, _ = data.discover(a.data)
    chosen = select(samples, assign_splits(Path(a.data), samples), a.split, limit=a.limit)
    seg = Segmenter(a.model, device="cpu")
    grids = {f"working grid ({n} px)": n for n in a.work_sizes} | {"film's own grid": None}
    iou = {k: [] for k in grids}
    cpu = dict.fromkeys(grids, 0.0)
    agree, flag_diff, sizes = {k: [] for k in grids}, dict.fromkeys(grids, 0), []
    for s in chosen:
        image, truth = load_pair(s)
        h, w = (round(n * a.scale) for n in image.shape)
        image = np.clip(cv2.resize(image, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)
        truth = cv2.resize(truth, (w, h), interpolation=cv2.INTER_NEAREST)
        sizes.append(max(h, w))
        x, geometry = seg.prepare(image)
        prob = seg.runner(x[None, None])[0]  # one model output, post-processed both ways
        out = {}
        for name, work_size in grids.items():
            seg.work_size = work_size
            t0 = time.process_time()
            out[name] = seg.finish(prob, geometry, Radiograph(image))
            cpu[name] += time.process_time() - t0
            iou[name].append(confusion(out[name].mask, truth).iou)
        own = out["film's own grid"]
        for name, r in out.items():  # each against the film's own grid
            agree[name].append(confusion(r.mask, own.mask).dice)
            flag_diff[name] += r.stats["quality"] != own.stats["quality"]

    rows = {
        name: {
            "iou_mean": float(np.mean(iou[name])),
            "iou_min": float(np.min(iou[name])),
            "finish_ms_cpu": 1000 * cpu[name] / len(chosen),
            "dice_vs_own_grid_mean": float(np.mean(agree[name])),
            "dice_vs_own_grid_min": float(np.min(agree[name])),
            "quality_differs": flag_diff[name],
        }
        for name in grids
    }
    span = f"long side {min(sizes)}-{max(sizes)} px"
    print(f"{len(chosen)} {a.split} films enlarged {a.scale}x ({span})")
    print(f"{'post-processing on':26s} {'IoU mean':>9s} {'IoU min':>8s} {'finish ms CPU':>14s} "
          f"{'Dice vs own grid (min)':>23s} {'flag differs':>13s}")  # fmt: skip
    for name, r in rows.items():
        print(f"{name:26s} {r['iou_mean']:9.4f} {r['iou_min']:8.4f} {r['finish_ms_cpu']:14.1f} "
              f"{r['dice_vs_own_grid_mean']:15.4f} ({r['dice_vs_own_grid_min']:.4f}) "
              f"{r['quality_differs']:13d}")  # fmt: skip
    meta = {"split": a.split, "n": len(chosen), "scale": a.scale, "model": a.model}
    write_json(a.out, meta, grids=rows)


if __name__ == "__main__":
    main()
