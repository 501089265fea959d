"""Which films an evaluation scores and whether they are held out: the split to use (a run's
own, the data's), and the films the model was trained or selected on among those scored."""

from __future__ import annotations

import filecmp
import logging
from pathlib import Path

from .model import DEFAULT_WEIGHTS, file_metadata
from .splits import find_splits_file, read_splits

log = logging.getLogger(__name__)
PUBLIC = ("montgomery", "shenzhen", "jsrt")  # the sets the shipped model was trained on
SHIPPED = "lungseg_shipped"  # metadata of an ONNX export of the shipped model: "1"


def not_held_out(listed: dict, source, chosen, split: str) -> list[str]:
    """The `chosen` films that `listed` ((dataset, id) -> split: the training run's splits.csv,
    the model's own record of its films, or with --split all the data's split) names as train
    (or, scoring test or all, as val): their scores are not held-out figures; said, naming
    `source`. None for --split train."""
    used = {"train": (), "val": ("train",)}.get(split, ("train", "val"))  # (as asked for)
    if seen := [s.id for s in chosen if listed.get((s.dataset, s.id)) in used]:
        log.warning(
            "--split %s: %d of the %d films are %s films in %s (not held out), e.g. %s",
            split, len(seen), len(chosen), " or ".join(used), source, ", ".join(seen[:3]),
        )  # fmt: skip
    return seen


def split_file_for(root, trained: Path | None, samples) -> Path | None:
    """The run's splits.csv (`trained`: the split the model was trained with) when it lists
    every film found; else the data's own (`find_splits_file`), e.g. for a model evaluated on
    other data."""
    own = find_splits_file(root)
    if trained is None:
        return own
    listed = read_splits(trained, samples)
    if own is None or all((s.dataset, s.id) in listed for s in samples):
        log.info("evaluating on the split the model was trained with: %s", trained)
        return trained
    log.warning("%s does not list every film under %s; using %s", trained, root, own)
    return own


def find_run_dir(model: str | None, run_dir: str | None) -> Path | None:
    if run_dir:
        return Path(run_dir)
    if model:
        for parent in Path(model).resolve().parents[:2]:
            if (parent / "metrics.csv").is_file():
                return parent
    return None


def shipped_on_public(model_file: Path | None, chosen, split_file: Path | None, split: str) -> int:
    """The number of `chosen` films of the public sets when the shipped model (its file, a copy
    or its ONNX export: it carries no record of its films) scores them on a split other than
    the project's (any splits.csv found with the data is taken for it): a new split or --split
    all. It was trained and selected on the train and val films of the project's
    split (`splits.csv` of the data it was trained on), so their figures may not be held out:
    said. 0 otherwise."""
    if split == "train" or (split_file is not None and split != "all"):
        return 0
    if model_file is None or not is_shipped(model_file):
        return 0
    if n := sum(s.dataset in PUBLIC for s in chosen):
        log.warning(
            "%d of the films are Montgomery, Shenzhen or JSRT films scored on %s: the shipped "
            "model was trained and selected on most of those sets' films (the train and val "
            "films of the project's splits.csv, see its model card), so these figures are not "
            "held-out figures; score it on the project's test split, or on films of your own",
            n, "every film (--split all)" if split == "all" else "a new split",
        )  # fmt: skip
    return n


def is_shipped(path: str | Path) -> bool:
    """Whether a model file is the shipped model: the file, a copy of it, or its ONNX export
    (which export marks `lungseg_shipped`)."""
    path = Path(path)
    if path.resolve() == DEFAULT_WEIGHTS.resolve():
        return True
    if path.suffix.lower() == ".onnx":
        return file_metadata(path).get(SHIPPED) == "1"
    try:
        return path.stat().st_size == DEFAULT_WEIGHTS.stat().st_size and filecmp.cmp(
            path, DEFAULT_WEIGHTS, shallow=False
        )
    except OSError:
        return False
