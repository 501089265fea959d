"""Rebuilding a lost lung on real films: which train/val films `rebuild` changes, and by how much.

The shipped model segments each film with and without rebuilding a lost lung (`Segmenter`'s
`rebuild`); prints every film rebuilt (side, IoU against its mask with and without) and the
count per split, writes JSON. The test split is not offered: it takes no part in choosing rules.

    python benchmarks/rebuild_films.py --data ../shared/data --splits train val
"""

from __future__ import annotations

import argparse
from pathlib import Path

from report_json import write_json  # beside this file (sys.path[0] for a script)

from lungseg import datasets
from lungseg.imageio import Radiograph
from lungseg.metrics import confusion
from lungseg.model import DEFAULT_WEIGHTS
from lungseg.pairs import load_pair
from lungseg.segmenter import Segmenter
from lungseg.splits import assign_splits, select


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--splits", nargs="+", default=["train", "val"], choices=["train", "val"])
    p.add_argument("--model", default=str(DEFAULT_WEIGHTS))
    p.add_argument("--out", default="benchmarks/results/rebuild_films.json")
    a = p.parse_args(argv)
    samples, _ = datasets.discover(a.data)
    splits = assign_splits(Path(a.data), samples)
    seg = Segmenter(a.model, device="cpu")
    counts, rebuilt = {}, []
    for split in a.splits:
        chosen = select(samples, splits, split)
        counts[split] = {"films": len(chosen), "rebuilt": 0}
        for s in chosen:
            image, mask = load_pair(s)
            res = seg(Radiograph(image))
            if res.rebuilt is None:
                continue
            seg.rebuild = False
            plain = seg(Radiograph(image))
            seg.rebuild = True
            row = {"split": split, "id": s.id, "side": res.rebuilt}
            row.update(
                iou=confusion(res.mask, mask).iou, iou_without=confusion(plain.mask, mask).iou
            )
            row["uncertain_fraction"] = res.stats.get("uncertain_fraction")
            rebuilt.append(row)
            counts[split]["rebuilt"] += 1
            print(f"{split:5s} {s.id:24s} side {row['side']}  IoU {row['iou']:.3f} "
                  f"(without {row['iou_without']:.3f})")  # fmt: skip
    for split, c in counts.items():
        print(f"{split}: {c['rebuilt']} of {c['films']} films rebuilt")
    meta = {"model": a.model, "splits": a.splits}
    write_json(a.out, meta, counts=counts, rebuilt=rebuilt)


if __name__ == "__main__":
    main()
