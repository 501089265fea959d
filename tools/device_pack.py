"""Pack what a lent GPU machine needs to train lungseg (docs/gpu.md): a compact copy of the train
and val films, already at the training size, and wheels of the packages its image lacks.

The GPU machine reaches no network and takes at most 64 MiB of working tree; the full data (about
300 MB) does not fit, but training resizes every film to the model size once before anything
else (`preprocess.resize_pair`, in `augment.PairDataset`), and this pack stores films after that
same step, so training gets the same inputs (to 8-bit rounding) when it runs at that size and
fit; `pack.json` records them. Test films are never
packed: the model comes back and is evaluated here. A pair that does not load is reported and
left out.

    python tools/device_pack.py --data ../shared/data --out .device --size 512
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import cv2
import numpy as np

from lungseg import datasets as data
from lungseg.pairs import load_pair
from lungseg.preprocess import resize_pair
from lungseg.splits import assign_splits

# what `lungseg train` needs that the GPU machine's image (Python 3.12) does not have
WHEELS = [
    "segmentation-models-pytorch",
    "albumentations",
    "albucore",
    "simsimd",
    "stringzilla",
    "pydantic",
    "pydantic-core",
    "annotated-types",
    "typing-inspection",
]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]


def pack_data(root: str, out: Path, size: int, fit: str, splits: list[str]) -> int:
    """Write out/CXR_png/<id>.png (8-bit, at the model size) and out/masks/<id>.png (0/255) for
    the chosen splits, and out/splits.csv; returns the number of pairs."""
    samples, _ = data.discover(root)
    assigned = assign_splits(Path(root), samples)
    for folder in ("CXR_png", "masks"):  # an earlier pack's films would stay, in no split
        shutil.rmtree(out / folder, ignore_errors=True)  # (or a new one: val films trained on)
        (out / folder).mkdir(parents=True)
    rows = []
    for s in samples:
        split = assigned[(s.dataset, s.id)]
        if split not in splits:
            continue
        try:
            image, mask = load_pair(s)
        except (ValueError, FileNotFoundError) as e:
            print(f"skipped: {e}")
            continue
        small, small_mask, _ = resize_pair(image, mask, size, fit)  # what training starts from
        png = [cv2.IMWRITE_PNG_COMPRESSION, 9]
        cv2.imwrite(
            str(out / "CXR_png" / f"{s.id}.png"), np.round(small * 255).astype(np.uint8), png
        )
        cv2.imwrite(str(out / "masks" / f"{s.id}.png"), small_mask * np.uint8(255), png)
        rows.append({"dataset": s.dataset, "id": s.id, "split": split})
    with open(out / "splits.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["dataset", "id", "split"])
        w.writeheader()
        w.writerows(rows)
    meta = {"size": size, "fit": fit, "splits": splits, "pairs": len(rows), "source": str(root)}
    (out / "pack.json").write_text(json.dumps(meta, indent=2))
    return len(rows)


def download_wheels(out: Path) -> None:
    """The versions installed here (the ones the tests ran with), as CPython 3.12 x86-64 wheels."""
    out.mkdir(parents=True, exist_ok=True)
    pins = [f"{name}=={version(name)}" for name in WHEELS]
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
         "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(out), *pins],
        check=True,
    )  # fmt: skip


def _mib(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def summary(out: Path, pairs: int, splits: list[str], size: int, wheels: bool) -> str:
    """What was packed and its size: the films, and the wheels only when they were packed."""
    whl = out / "whl"
    if wheels:
        packed = f"{_mib(whl):.1f} MiB"
    else:
        packed = "skipped (--no-wheels)"
        if whl.is_dir():  # left by an earlier pack: still in the folder, so still carried
            packed += f", though {whl} holds {_mib(whl):.1f} MiB from before"
    films = f"{pairs} pairs ({', '.join(splits)}) at {size} px: {_mib(out / 'data'):.1f} MiB"
    return f"{films}, wheels: {packed}, in {out}"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--out", default=".device")
    p.add_argument("--size", type=int, default=512, help="the size the run will train at")
    p.add_argument("--fit", choices=["letterbox", "crop"], default="letterbox")
    p.add_argument("--splits", nargs="+", default=["train", "val"], choices=["train", "val"])
    p.add_argument("--no-wheels", action="store_true")
    a = p.parse_args(argv)

    out = Path(a.out)
    n = pack_data(a.data, out / "data", a.size, a.fit, a.splits)
    if not a.no_wheels:
        download_wheels(out / "whl")
    print(summary(out, n, a.splits, a.size, wheels=not a.no_wheels))
    print("next: docs/gpu.md (the run, with the shipped weights kept out of the working tree)")


if __name__ == "__main__":
    main()
