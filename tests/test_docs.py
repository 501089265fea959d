"""The README's lists of table columns are the columns the code writes."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from lungseg.evaluate import evaluate
from lungseg.table import FIELDS

README = (Path(__file__).parents[1] / "README.md").read_text()


def _listed(after: str) -> list[str]:
    """The backquoted, comma-separated names that follow `after` in the README."""
    text = README[README.index(after) + len(after) :]
    names = re.match(r"\s*`([^`]*)`", text).group(1)
    return [n.strip() for n in names.split(",")]


def test_results_csv_columns_are_as_the_readme_lists_them():
    assert _listed("The columns of `results.csv`, in order:") == FIELDS


def test_per_image_csv_columns_are_as_the_readme_lists_them(tiny_model, tmp_path, synth):
    left, right = synth.lung_masks()
    for k in range(2):
        synth.save_png(tmp_path / "d" / "images" / f"p{k}.png", synth.chest_image(seed=k))
        synth.save_mask(tmp_path / "d" / "masks" / f"p{k}.png", left | right)
    evaluate(str(tiny_model), str(tmp_path / "d"), "all", str(tmp_path / "e"), device="cpu")
    with open(tmp_path / "e" / "per_image.csv", newline="") as f:
        header = next(csv.reader(f))
    assert _listed("In order:") == header
