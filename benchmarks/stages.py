"""Per-stage CPU cost of `predict` outside the model: what end-to-end throughput must hide.

For each image of a folder: decode, preprocess, the mapping back to the original grid, the
post-processing, measurements, overlay drawing and the PNG writes, timed as CPU time of this
process (so other load on the machine does not inflate it). Prints ms per image, writes JSON.

    python benchmarks/stages.py --images /tmp/bimg --limit 10
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from report_json import write_json  # beside this file (sys.path[0] for a script)

from lungseg import postprocess as pp
from lungseg.imageio import read_image
from lungseg.inputs import collect_inputs
from lungseg.model import DEFAULT_WEIGHTS
from lungseg.png import write_png
from lungseg.preprocess import to_original
from lungseg.report import PALETTE, overlay_indexed
from lungseg.segmenter import Segmenter
from lungseg.sides import split_sides
from lungseg.stats import measure


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--images", required=True, help="folder of radiographs")
    p.add_argument("--model", default=str(DEFAULT_WEIGHTS))
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--out", default="benchmarks/results/stages.json")
    a = p.parse_args(argv)

    seg = Segmenter(a.model, device="cpu")
    files = collect_inputs([a.images])[0][: a.limit]
    times: dict[str, list[float]] = {}

    def timed(stage, f, *args):
        t0 = time.process_time()
        out = f(*args)
        times.setdefault(stage, []).append(1000 * (time.process_time() - t0))
        return out

    with tempfile.TemporaryDirectory() as tmp:
        for f in files:
            rad = timed("decode", read_image, f)
            x, g = timed("preprocess", seg.prepare, rad)
            small = seg.runner(x[None, None])[0]
            prob = timed("to_original", to_original, small, g)
            raw = (prob >= seg.config.threshold).astype(np.uint8)
            comps = timed("raw components (QC count)", pp.components, raw)
            m, mc = timed(
                "clean (default post-processing)", pp.clean_labelled, raw, rad.image, prob, comps
            )
            labels = timed("split_sides", split_sides, m, False, mc)
            timed("measure", measure, labels, prob, rad.spacing, 2)
            timed("finish (all of the above + to_original)", seg.finish, small, g, rad)
            ov = timed("overlay drawing", overlay_indexed, rad.image, labels)
            timed("overlay PNG (palette)", write_png, Path(tmp) / "o.png", ov, PALETTE)
            timed("mask PNG", write_png, Path(tmp) / "m.png", m * np.uint8(255))
    rows = {k: float(np.mean(v)) for k, v in times.items()}
    for k, v in rows.items():
        print(f"{k:42s} {v:7.1f} ms CPU/image")
    shapes = sorted({tuple(read_image(f).image.shape) for f in files})
    write_json(a.out, {"n": len(files), "shapes": shapes}, ms_cpu_per_image=rows)


if __name__ == "__main__":
    main()
