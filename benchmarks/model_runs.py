"""The model runs of a benchmark script: each model file at the input size in its file, or at each
of `--input-sizes` (the network is fully convolutional: any multiple of 16 runs). Imported by the
scripts beside it (a script's own folder is on sys.path)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from lungseg.segmenter import Segmenter


def add_input_sizes(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--input-sizes",
        nargs="+",
        type=_input_size,
        help="run each model at these input sizes instead of the one in its file",
    )


def _input_size(text: str) -> int:
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
