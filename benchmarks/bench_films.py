"""The bench films of `inference.py`, `stages.py` and `predict_memory.py`: every Nth `train` id
of the project's splits.csv (default 12: 28 films; Montgomery/Shenzhen 512 or 1000 px, JSRT
1024 px), linked into a folder (data files are never copied into the repository).

    python benchmarks/bench_films.py --data ../shared/data --out /tmp/bimg
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="folder with splits.csv and manifest.csv")
    p.add_argument("--out", required=True, help="folder to link the films into (created)")
    p.add_argument("--every", type=int, default=12, help="take every Nth train id")
    a = p.parse_args(argv)
    data, out = Path(a.data).resolve(), Path(a.out)
    with open(data / "splits.csv", newline="") as f:
        train = [r["id"] for r in csv.DictReader(f) if r["split"] == "train"]
    with open(data / "manifest.csv", newline="") as f:
        image = {r["id"]: r["image"] for r in csv.DictReader(f)}
    out.mkdir(parents=True, exist_ok=True)
    for i in train[:: a.every]:
        link = out / Path(image[i]).name
        if not link.exists():
            link.symlink_to(data / image[i])
    print(f"{len(train[:: a.every])} films linked in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
