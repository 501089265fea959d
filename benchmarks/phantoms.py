"""Phantom benchmark: Dice of a model on synthetic films whose lung field is known.

Every disease of lungseg.phantom (none, patchy opacity, one-sided white-out, effusion, devices) on
the same seeds and sizes; the truth is the ANATOMICAL lung field, so an opaque lung must still be
segmented (issue 6 aims at Dice >= 0.85 on opacified phantoms). Prints a table, writes JSON
(with each phantom's Dice, that of each lung: `right_dice`, `left_dice`, patient's sides, and
`rebuilt`: the side whose lost lung `rebuild` estimated, 1 right, 2 left, 0 none).

    python benchmarks/phantoms.py --seeds 0 1 2 --sizes 768 \
        --models src/lungseg/weights/lungseg_deeplabv3plus_resnet50.safetensors
    python benchmarks/phantoms.py --input-sizes 384 416 448 \
        --out benchmarks/results/phantoms_input_sizes.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from model_runs import add_input_sizes, segmenters  # beside this file (sys.path[0])
from report_json import write_json

from lungseg.imageio import Radiograph
from lungseg.metrics import confusion
from lungseg.model import DEFAULT_WEIGHTS
from lungseg.phantom import DISEASES, make_phantom


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", nargs="+", default=[str(DEFAULT_WEIGHTS)])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--sizes", nargs="+", type=int, default=[768])
    p.add_argument("--diseases", nargs="+", default=list(DISEASES), choices=DISEASES)
    add_input_sizes(p)
    p.add_argument(
        "--no-rebuild", action="store_true", help="leave a lost lung as the model left it"
    )
    p.add_argument("--out", default="benchmarks/results/phantoms.json")
    a = p.parse_args(argv)

    results = {}
    for name, seg in segmenters(a.models, a.input_sizes, rebuild=not a.no_rebuild):
        table = {}
        for disease in a.diseases:
            dice, sides = [], {"right_dice": [], "left_dice": [], "rebuilt": []}
            for size in a.sizes:
                for seed in a.seeds:
                    ph = make_phantom(size, seed, disease)
                    r = seg(Radiograph(ph.image))
                    dice.append(confusion(r.mask, ph.lungs).dice)
                    sides["rebuilt"].append(r.rebuilt or 0)
                    for key, truth, label in (
                        ("right_dice", ph.right, 1),
                        ("left_dice", ph.left, 2),
                    ):
                        sides[key].append(round(confusion(r.labels == label, truth).dice, 4))
            table[disease] = {"mean_dice": float(np.mean(dice)), "min_dice": float(min(dice))}
            table[disease]["dice"] = [round(float(d), 4) for d in dice]
            table[disease].update(sides)
        results[name] = table
    print(f"{'disease':12s}" + "".join(f"{Path(m).name[-30:]:>34s}" for m in results))
    for disease in a.diseases:
        cells = "".join(
            f"{t[disease]['mean_dice']:>20.3f} (min {t[disease]['min_dice']:.3f})"
            for t in results.values()
        )
        print(f"{disease:12s}{cells}")
    meta = {"input_sizes": a.input_sizes, "seeds": a.seeds, "sizes": a.sizes}
    meta["rebuild"] = not a.no_rebuild
    write_json(a.out, meta, results=results)


if __name__ == "__main__":
    main()
