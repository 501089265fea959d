"""The model runs of a benchmark script: each model file at the input size in its file, or at each
of `--input-sizes` (the network is fully convolutional: any multiple of 16 runs); and the
corrupted conditions scripts score (`conditions`). Imported by the scripts beside it (a script's
own folder is on sys.path)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from lungseg.augment import CORRUPTIONS
from lungseg.segmenter import Segmenter

SEVERITIES = (0.3, 0.6, 1.0)  # of each corruption, as robustness.py and quality_flag.py score


def add_input_sizes(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--input-sizes",
        nargs="+",
        type=input_size,
        help="run each model at these input sizes instead of the one in its file",
    )


def input_size(text: str) -> int:
    """argparse type: a positive multiple of 16."""
    try:
        size = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if size <= 0 or size % 16:
        raise argparse.ArgumentTypeError(f"must be a positive multiple of 16, got {size}")
    return size


def segmenters(
    models: list[str], input_sizes: list[int] | None, **kwargs
) -> Iterator[tuple[str, Segmenter]]:
    """(name, Segmenter on the CPU) for each model and input size: the model's path, with
    "@<size>" when run at another input size. `kwargs`: Segmenter's options."""
    for model in models:
        for size in input_sizes or [None]:
            seg = Segmenter(model, device="cpu", **kwargs)
            if size:
                seg.config.size = size
            yield (f"{model}@{size}" if size else model), seg


def conditions(p: argparse.ArgumentParser, given: list[str] | None) -> list[tuple[str, float]]:
    """(corruption, severity) pairs: clean@0.0 and each corruption at each severity, or those of
    `given` (--conditions), checked before any data is read (an unknown one: argparse error)."""
    every = [("clean", 0.0)] + [(c, s) for c in CORRUPTIONS for s in SEVERITIES]
    if given:
        if unknown := set(given) - {f"{c}@{s}" for c, s in every}:
            p.error(f"--conditions: unknown {sorted(unknown)}; each is one of clean@0.0 or a "
                    f"corruption ({', '.join(CORRUPTIONS)}) @ a severity {SEVERITIES}")  # fmt: skip
        every = [c for c in every if f"{c[0]}@{c[1]}" in given]
    return every
