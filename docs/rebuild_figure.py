"""Make docs/rebuild.png: what `predict` draws when the model loses a white lung. Phantoms with
one-sided white-out (no third-party image), each segmented by the shipped model without and
with the lost lung rebuilt (`lungseg.rebuild`): red the patient's right lung, blue the left
(dashed: rebuilt), green the phantom's own lung field; Dice against it under each tile.

    python docs/rebuild_figure.py [--out docs/rebuild.png]
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from lungseg.imageio import Radiograph
from lungseg.metrics import confusion
from lungseg.phantom import make_phantom
from lungseg.png import write_png
from lungseg.report import PALETTE, overlay_indexed
from lungseg.segmenter import Segmenter


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="docs/rebuild.png")
    p.add_argument("--seeds", nargs="+", type=int, default=[17, 14])
    p.add_argument("--size", type=int, default=768)
    p.add_argument("--tile", type=int, default=384)
    a = p.parse_args(argv)
    segs = {"without": Segmenter(device="cpu", rebuild=False), "with": Segmenter(device="cpu")}
    tiles = []
    for seed in a.seeds:
        ph = make_phantom(a.size, seed, "white-out")
        for name, seg in segs.items():
            res = seg(Radiograph(ph.image))
            rgb = PALETTE[overlay_indexed(ph.image, res.labels, ph.lungs, rebuilt=res.rebuilt)]
            rgb = cv2.resize(rgb, (a.tile, a.tile), interpolation=cv2.INTER_AREA)
            text = f"seed {seed}, {name} rebuild: Dice {confusion(res.mask, ph.lungs).dice:.3f}"
            cv2.putText(rgb, text, (6, a.tile - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255,) * 3)
            tiles.append(rgb)
            print(text)
    write_png(a.out, np.hstack(tiles))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
