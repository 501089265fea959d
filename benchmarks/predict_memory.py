"""Peak memory and time of `lungseg predict` on a folder of large films, with its pixel budget
for films in flight (`pipeline.READ_AHEAD_PIXELS`) and with the count limit alone.

Films of `--images` are enlarged to `--size` (W H, bicubic) and written once as 16-bit PNGs
(scanned films and detector exports reach 40-80 megapixels), then linked `--copies` times. Each
variant runs in its own process (peak RSS of that process); variants alternate over `--repeat`
rounds. Prints a table, writes JSON.

    python benchmarks/predict_memory.py --images /tmp/bimg --model m_int8.onnx --size 6000 7000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from report_json import write_json  # beside this file (sys.path[0] for a script)

from lungseg.export import find_images
from lungseg.pipeline import READ_AHEAD_PIXELS

CHILD = """
import json, resource, sys, time
from lungseg.predict import predict_paths
a = json.loads(sys.argv[1])
t0, cpu0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
failed = predict_paths([a["films"]], a["out"], model=a["model"], workers=a["workers"],
                       read_ahead_pixels=a["budget"])
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": time.perf_counter() - t0, "user_s": ru.ru_utime - cpu0.ru_utime,
                  "system_s": ru.ru_stime - cpu0.ru_stime, "peak_rss_mb": ru.ru_maxrss / 1024,
                  "failed": len(failed)}))
"""


def make_films(images: str, n: int, size: tuple[int, int], copies: int, folder: Path) -> int:
    """`n` films enlarged to `size` as 16-bit PNGs, each linked `copies` times; -> film count."""
    (folder / "src").mkdir(parents=True)
    (folder / "films").mkdir()
    for i, f in enumerate(find_images(images, n)):
        film = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
        big = cv2.resize(film, size, interpolation=cv2.INTER_CUBIC).astype(np.uint16) * 257
        cv2.imwrite(str(folder / "src" / f"{i}.png"), big, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        for k in range(copies):
            (folder / "films" / f"{k}_{i}.png").symlink_to(folder / "src" / f"{i}.png")
    return len(list((folder / "films").iterdir()))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--images", required=True, help="folder of radiographs to enlarge")
    p.add_argument("--model", help="model file (default: the shipped model)")
    p.add_argument("--size", type=int, nargs=2, default=[6000, 7000], metavar=("W", "H"))
    p.add_argument("--films", type=int, default=4, help="distinct films")
    p.add_argument("--copies", type=int, default=6, help="links to each")
    p.add_argument("--workers", type=int, nargs="+", default=[2, 8])
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results/predict_memory.json")
    a = p.parse_args(argv)
    if a.model and not Path(a.model).is_file():  # (before minutes of enlarging films)
        p.error(f"--model {a.model}: no such file")

    variants = {"pixel budget": READ_AHEAD_PIXELS, "count limit only": 10**15}
    rows = []
    with tempfile.TemporaryDirectory(prefix="lungseg-mem-") as tmp:
        n = make_films(a.images, a.films, tuple(a.size), a.copies, Path(tmp))
        for r in range(a.repeat):
            for workers in a.workers:
                order = list(variants.items())
                for name, budget in order if r % 2 == 0 else order[::-1]:
                    spec = {"films": f"{tmp}/films", "out": f"{tmp}/out", "model": a.model}
                    spec |= {"workers": workers, "budget": budget}
                    run = subprocess.run(
                        [sys.executable, "-c", CHILD, json.dumps(spec)],
                        capture_output=True,
                        text=True,
                    )
                    if run.returncode:  # the child's own message, not a CalledProcessError
                        raise SystemExit(f"predict failed ({run.returncode}):\n{run.stderr}")
                    res = json.loads(run.stdout.strip().splitlines()[-1])
                    rows.append({"variant": name, "workers": workers, "round": r, **res})
                    print(
                        f"{name:17s} workers {workers}: {res['seconds']:6.1f} s, user "
                        f"{res['user_s']:6.1f} s, system {res['system_s']:6.1f} s, peak RSS "
                        f"{res['peak_rss_mb']:7.0f} MB ({n} films, {res['failed']} failed)",
                        flush=True,
                    )
    meta = {"films": n, "size": a.size, "model": a.model or "shipped", "budget": READ_AHEAD_PIXELS}
    write_json(a.out, meta, runs=rows)


if __name__ == "__main__":
    main()
