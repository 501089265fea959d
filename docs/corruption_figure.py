"""Make docs/corruptions.png: each training corruption of lungseg.augment at three severities,
applied to a phantom radiograph (no third-party image), with the lung mask it must still find.

    python docs/corruption_figure.py [--out docs/corruptions.png]
"""

from __future__ import annotations

import argparse

import numpy as np

from lungseg.augment import CORRUPTIONS, corrupt
from lungseg.phantom import make_phantom
from lungseg.png import write_png
from lungseg.report import overlay

SEVERITIES = (0.3, 0.6, 1.0)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="docs/corruptions.png")
    p.add_argument("--size", type=int, default=320)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args(argv)
    ph = make_phantom(size=a.size, seed=a.seed)
    rows = []
    for name in CORRUPTIONS:
        tiles = [overlay(ph.image, ph.lungs * 0, ph.lungs)]  # clean film, lung outline in green
        for sev in SEVERITIES:
            img = corrupt(ph.image, ph.lungs, name, sev, np.random.default_rng(a.seed))
            tiles.append(overlay(img, ph.lungs * 0))
        rows.append(np.hstack(tiles))
    write_png(a.out, np.vstack(rows))
    print(f"wrote {a.out}: rows {', '.join(CORRUPTIONS)}; columns clean, severity {SEVERITIES}")


if __name__ == "__main__":
    main()
