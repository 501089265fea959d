"""Where the model and the manual masks disagree: missed and extra area per film, and the largest
missed and the largest extra region with where each lies.

For each film of a split (original pixel grid, default post-processing): IoU, the missed (false
negative) and extra (false positive) area as fractions of the manual mask, and the largest
connected missed region and extra region (`lungseg.metrics.largest_disagreement`, after a 5 px
opening), each with its place:
  under   most of it lies below the lowest pixel of the other mask (the prediction for a missed
          region, the manual mask for an extra one) in the same columns: on chest films, lung
          where the heart or a diaphragm dome hides it, or an opaque base (a geometric test: which
          of these it is takes looking, `--figures`);
  beside  anything else: apex, lateral or medial rim, a mask drawn loosely around the lung.
A film is "flagged" when either region exceeds `--min-region` of its mask; its `kind` is the
larger of the two (e.g. "missed under"). Prints a per-dataset table and the flagged films,
writes JSON; `--figures DIR` also writes each flagged film with its missed (red) and extra
(blue) pixels, for looking by eye (data images: keep them out of git).

    python benchmarks/disagreement.py --data ../shared/data --split train val
    python benchmarks/disagreement.py --data ../shared/data --split test \
        --out benchmarks/results/disagreement_test.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from report_json import write_json  # beside this file (sys.path[0] for a script)

from lungseg import datasets as data
from lungseg.metrics import confusion, largest_disagreement
from lungseg.model import DEFAULT_WEIGHTS
from lungseg.pairs import load_pair
from lungseg.segmenter import Segmenter
from lungseg.splits import assign_splits, select

KINDS = ("missed under", "missed beside", "extra under", "extra beside")


def picture(image: np.ndarray, pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """BGR uint8 film with missed pixels tinted red and extra pixels blue."""
    out = cv2.cvtColor((np.clip(image, 0, 1) * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    for where, colour in (
        ((truth > 0) & (pred == 0), (0, 0, 255)),
        ((truth == 0) & (pred > 0), (255, 0, 0)),
    ):
        out[where] = (out[where] * 0.5 + np.array(colour) * 0.5).astype(np.uint8)
    return out


def summary(films: list[dict]) -> dict:
    """Per-dataset means over films, and the flagged films' count, mean IoU and kinds."""
    flagged = [f for f in films if f["flagged"]]
    rest = [f for f in films if not f["flagged"]]
    mean = lambda fs, k: float(np.mean([f[k] for f in fs])) if fs else None  # noqa: E731
    return {
        "n": len(films),
        **{k: mean(films, k) for k in ("iou", "missed", "extra")},
        "flagged": len(flagged),
        "iou_flagged": mean(flagged, "iou"),
        "iou_rest": mean(rest, "iou"),
        "kinds": {  # flagged films of each kind: how many, mean IoU
            k: f"{len(fs)} ({mean(fs, 'iou'):.3f})"
            for k in KINDS
            if (fs := [f for f in flagged if f["kind"] == k])
        },
    }


def _cell(v) -> str:
    return "-" if v is None else str(v) if isinstance(v, int) else f"{v:.3f}"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--split", nargs="+", default=["val"], choices=["train", "val", "test"])
    p.add_argument("--datasets", nargs="+")
    p.add_argument("--model", default=str(DEFAULT_WEIGHTS))
    p.add_argument("--min-region", type=float, default=0.04)
    p.add_argument("--figures", help="folder for pictures of the flagged films (not for git)")
    p.add_argument("--out", default="benchmarks/results/disagreement.json")
    a = p.parse_args(argv)

    samples, _ = data.discover(a.data)
    splits = assign_splits(Path(a.data), samples)
    chosen = [
        s for s in select(samples, splits, None, a.datasets) if splits[(s.dataset, s.id)] in a.split
    ]
    seg = Segmenter(a.model, device="cpu")
    films, datasets = [], {s.dataset for s in chosen}
    for s in chosen:
        image, truth = load_pair(s)
        pred = seg(image).mask
        c = confusion(pred, truth)
        gt = max(1, c.tp + c.fn)
        d = largest_disagreement(pred, truth)
        size, kind = max(
            (d["missed"], f"missed {d['missed_place']}"), (d["extra"], f"extra {d['extra_place']}")
        )
        kind = kind if size > 0 else ""
        films.append(
            {
                "dataset": s.dataset,
                "id": s.id,
                "split": splits[(s.dataset, s.id)],
                "iou": c.iou,
                "missed": c.fn / gt,
                "extra": c.fp / gt,
                "largest_missed": d["missed"],
                "largest_extra": d["extra"],
                "kind": kind,
                "flagged": size > a.min_region,
            }
        )
        if a.figures and size > a.min_region:
            Path(a.figures).mkdir(parents=True, exist_ok=True)
            name = f"{s.id}_iou{c.iou:.3f}_{kind.replace(' ', '_')}.png"
            cv2.imwrite(str(Path(a.figures) / name), picture(image, pred, truth))

    print(f"{', '.join(a.split)}: {len(films)} films; flagged: largest missed or extra region > "
          f"{a.min_region:.0%} of the mask")  # fmt: skip
    head = ("dataset", "n", "IoU", "missed", "extra", "flagged", "IoU flagged", "IoU rest")
    print(f"{head[0]:11s}" + "".join(f"{h:>12s}" for h in head[1:]) + "  kinds (flagged)")
    table = {ds: summary([f for f in films if f["dataset"] == ds]) for ds in sorted(datasets)}
    for ds, row in table.items():
        cells = [
            row[k] for k in ("n", "iou", "missed", "extra", "flagged", "iou_flagged", "iou_rest")
        ]
        print(f"{ds:11s}" + "".join(f"{_cell(v):>12s}" for v in cells) + f"  {row['kinds']}")
    for f in sorted((f for f in films if f["flagged"]), key=lambda f: f["iou"]):
        print(f"  {f['split']:5s} {f['id']:15s} IoU {f['iou']:.3f}, largest missed "
              f"{f['largest_missed']:.3f}, extra {f['largest_extra']:.3f} {f['kind']}")  # fmt: skip

    meta = {"split": a.split, "model": a.model, "min_region": a.min_region}
    write_json(a.out, meta, datasets=table, films=films)


if __name__ == "__main__":
    main()
