"""Test-time variants on the val split: left-right flip averaging and other input sizes.

The shipped pipeline uses neither; this script is the measurement behind that choice (model card,
"Selection"). For each variant: mean IoU per dataset and over all images on the ORIGINAL pixel
grid, default post-processing, the model's threshold. Prints a table, writes JSON.

    python benchmarks/tta.py --data ../shared/data --split val --sizes 320 448
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from model_runs import input_size  # beside this file (sys.path[0] for a script)
from report_json import write_json

from lungseg import datasets as data
from lungseg.imageio import Radiograph
from lungseg.metrics import confusion, summarize
from lungseg.model import DEFAULT_WEIGHTS
from lungseg.pairs import load_pair
from lungseg.segmenter import Segmenter
from lungseg.splits import assign_splits, select


class FlipAverage:
    """A runner that averages the model's probabilities on the film and on its mirror image."""

    def __init__(self, runner):
        self.runner, self.config = runner, runner.config

    def __call__(self, x: np.ndarray) -> np.ndarray:
        mirrored = self.runner(np.ascontiguousarray(x[..., ::-1]))[..., ::-1]
        return (self.runner(x) + mirrored) / 2


def score(seg: Segmenter, samples) -> dict:
    rows = []
    for s in samples:
        image, truth = load_pair(s)
        res = seg(Radiograph(image))
        rows.append({"dataset": s.dataset, "id": s.id, **confusion(res.mask, truth).as_dict()})
    return summarize(rows)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="val", choices=["train", "val"])  # never test
    p.add_argument("--model", default=str(DEFAULT_WEIGHTS))
    p.add_argument(
        "--sizes", nargs="*", type=input_size, default=[320, 448], help="other input sizes"
    )
    p.add_argument("--limit", type=int)
    p.add_argument("--out", default="benchmarks/results/tta.json")
    a = p.parse_args(argv)

    samples, _ = data.discover(a.data)
    splits = assign_splits(Path(a.data), samples)
    chosen = select(samples, splits, a.split, limit=a.limit)
    seg = Segmenter(a.model, device="cpu")
    size = seg.config.size
    results = {f"plain ({size} px)": score(seg, chosen)}
    flipped = Segmenter(a.model, device="cpu")
    flipped.runner = FlipAverage(flipped.runner)
    results[f"flip average ({size} px)"] = score(flipped, chosen)
    for other in a.sizes:  # the network is fully convolutional: any multiple of 16 runs
        resized = Segmenter(a.model, device="cpu")
        resized.config.size = other
        results[f"plain ({other} px)"] = score(resized, chosen)

    names = sorted({k for r in results.values() for k in r if k not in ("mean_of_datasets",)})
    print(f"{'variant':24s}" + "".join(f"{n:>12s}" for n in names))
    for variant, r in results.items():
        print(f"{variant:24s}" + "".join(f"{r[n]['iou']:12.4f}" for n in names))
    write_json(a.out, {"split": a.split, "n": len(chosen), "model": a.model}, iou=results)


if __name__ == "__main__":
    main()
