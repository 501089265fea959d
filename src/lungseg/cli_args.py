"""The `lungseg` command line's arguments: one sub-parser per subcommand (`cli.py` runs them).
Imports nothing heavy: `lungseg --help` and a mistyped flag answer at once."""

from __future__ import annotations

import argparse


def _whole(low: int, high: int | None = None):
    """argparse type: a whole number from `low` (to `high`); argparse names the option."""

    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            span = f"at least {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"must be {span}, got {value}")
        return value

    return whole


_positive = _whole(1)
_seed = _whole(0, 2**32 - 1)  # (NumPy's seeds)
_phantom_size = _whole(64, 8192)  # px: a film of 8192 px squared needs about 2 GB to draw


def build_parser() -> argparse.ArgumentParser:
    from .augment import CORRUPTIONS
    from .model import DEVICES, ENCODERS, PRECISIONS
    from .runconfig import RESUMABLE, flag

    p = argparse.ArgumentParser(prog="lungseg", description="Lung segmentation in chest X-rays")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    # -v also after the subcommand; SUPPRESS keeps the subcommand from resetting an earlier -v
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True)
    dev = dict(choices=DEVICES, default="auto", help="where to run")
    prec = dict(choices=PRECISIONS, default="auto", help="auto: bf16-mixed on a GPU, else 32-true")
    names = "only these: montgomery, shenzhen, jsrt, other (any case)"

    t = sub.add_parser(
        "train",
        parents=[common],
        help="train DeepLabV3+ on a data folder",
        description="Options not given take their defaults, or with --resume the run's own "
        f"settings (OUT/config.json): on --resume only {', '.join(map(flag, RESUMABLE))} "
        "may change.",
    )
    # defaults of None: runconfig.run_config tells options given from those left out
    t.add_argument("--data", help="root holding the data layouts (default: ../shared/data)")
    t.add_argument("--out", required=True, help="run folder; must not hold a run unless --resume")
    t.add_argument("--encoder", help=f"SMP encoder (default: resnet50); tested: {ENCODERS}")
    t.add_argument("--encoder-weights", help="local ImageNet state dict (.pth/.safetensors)")
    t.add_argument("--size", type=int, help="model input side, a multiple of 16 (default: 512)")
    t.add_argument("--fit", choices=["letterbox", "crop"], help="(default: letterbox)")
    t.add_argument("--hist", choices=["equalize", "clahe", "none"], help="(default: equalize)")
    t.add_argument("--epochs", type=_positive, help="(default: 50)")
    t.add_argument("--batch-size", type=_positive, help="(default: 8; at least 2, for BatchNorm)")
    t.add_argument("--lr", type=float, help="(default: 1e-3)")
    t.add_argument("--min-lr", type=float, help="end of the cosine schedule (default: 1e-5)")
    t.add_argument("--corruptions", help=f"comma-separated (default: {','.join(CORRUPTIONS)})")
    t.add_argument("--no-corruptions", action="store_true", help="train on clean films only")
    t.add_argument("--p-corrupt", type=float, help="(default: 0.4)")
    t.add_argument("--no-geometry-aug", action="store_true")
    t.add_argument("--datasets", nargs="+", help=names)
    t.add_argument(
        "--balance", action="store_true", default=None, help="draw each dataset equally often"
    )
    t.add_argument("--limit", type=_positive, help="at most N images per split (smoke runs)")
    t.add_argument("--seed", type=_seed, help="(default: 42)")
    t.add_argument("--device", **{**dev, "default": None, "help": "where to run (default: auto)"})
    t.add_argument("--workers", type=int, help="data loader worker processes (default: 1)")
    t.add_argument("--strict", action="store_true", default=None, help="stop on any bad pair")
    t.add_argument("--resume", action="store_true", help="go on with OUT's run from its last.ckpt")
    t.add_argument("--init", help="start from this model file's weights")
    t.add_argument("--precision", **{**prec, "default": None})
    t.add_argument(
        "--max-minutes",
        type=float,
        help="a wall-time limit (a job's time slot; with --resume the earlier run's time counts "
        "too): after each epoch the run and its cosine schedule are shortened to the epochs that "
        "fit, and it stops at the limit in any case; the best model so far is written",
    )

    e = sub.add_parser("evaluate", parents=[common], help="IoU/Dice/accuracy on a split")
    e.add_argument("--model", help="model file (default: shipped model)")
    e.add_argument("--data", default="../shared/data", help="data root (default: ../shared/data)")
    e.add_argument(
        "--split",
        choices=["train", "val", "test", "all"],
        default="test",
        help="split to score (default: test): from the run's splits.csv when --run (or the "
        "model's run folder) lists every film under --data, else the data's splits.csv (in --data "
        "or up to 3 folders above), else a new stratified split; all: every film (e.g. your own "
        "images/ + masks/)",
    )
    e.add_argument("--out", required=True, help="folder for metrics, per-image table, figures")
    e.add_argument("--datasets", nargs="+", help=names)
    e.add_argument("--limit", type=_positive, help="at most N images in all (quick checks)")
    e.add_argument("--no-postprocess", action="store_true", help="score the raw thresholded mask")
    e.add_argument("--no-rebuild", action="store_true", help="leave a lung the model lost as is")
    e.add_argument("--threshold", type=float, help="probability threshold (default: the model's)")
    e.add_argument(
        "--run",
        help="training run folder (default: the one the model file lies in): its training "
        "curves, and its splits.csv as the split to score",
    )
    e.add_argument("--strict", action="store_true", help="stop on any bad pair")
    e.add_argument("--device", **dev)
    e.add_argument("--precision", **prec)

    r = sub.add_parser(
        "predict", parents=[common], help="segment radiographs (PNG/JPEG/TIFF/BMP/GIF/DICOM)"
    )
    r.add_argument(
        "paths",
        nargs="+",
        help="files, folders (recursive, linked folders followed) or globs; folders and globs "
        "skip masks, lungseg outputs and mask folders; a file named here is always segmented",
    )
    r.add_argument(
        "--out",
        required=True,
        help="output folder (created if missing); its results.csv keeps the films of earlier "
        "calls with the same model and options",
    )
    r.add_argument("--model", help="model file (.safetensors, .ckpt, .onnx); default: shipped")
    r.add_argument(
        "--no-postprocess",
        action="store_true",
        help="raw thresholded mask: no component cleaning, hole filling or smoothing",
    )
    r.add_argument("--no-rebuild", action="store_true", help="leave a lung the model lost as is")
    r.add_argument(
        "--batch-size", type=_positive, default=4, help="films per model call (default: 4)"
    )
    r.add_argument("--labels", action="store_true", help="also write <stem>_labels.png (1 R, 2 L)")
    r.add_argument(
        "--no-overlay", action="store_true", help="skip overlay PNGs (faster on large archives)"
    )
    r.add_argument(
        "--workers", type=_positive, help="decoding/post-processing threads (default: cores, max 8)"
    )
    r.add_argument(
        "--full-grid",
        action="store_true",
        help="post-process films over 1024 px on their own grid (slower; default: a 1024 px grid)",
    )
    r.add_argument(
        "--resume",
        action="store_true",
        help="go on with an earlier run into --out: films it finished (row in results.csv, files "
        "there) are not segmented again",
    )
    r.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the PyTorch model: a minute or so before the first batch, then "
        "faster, mostly on a GPU (large folders)",
    )
    r.add_argument("--device", **dev)
    r.add_argument("--precision", **prec)

    x = sub.add_parser("export", parents=[common], help="export a model to ONNX (optionally int8)")
    x.add_argument("--model", help="model file (default: shipped model)")
    x.add_argument("--format", choices=["onnx"], default="onnx", help="(the only one: onnx)")
    x.add_argument("--int8", action="store_true", help="static int8 quantization")
    films = "(films as predict finds them: searched recursively, masks and outputs left out)"
    x.add_argument("--calib", help=f"folder of films for int8 calibration {films}")
    x.add_argument(
        "--check", help=f"folder of films to compare ONNX against PyTorch on (default: --calib; "
        f"neither: random inputs) {films}"
    )  # fmt: skip
    x.add_argument("--out", required=True, help="the .onnx file to write")

    f = sub.add_parser("phantom", parents=[common], help="write synthetic films with known masks")
    f.add_argument("--out", required=True, help="folder for images/ and masks/")
    f.add_argument("-n", type=_positive, default=1, help="number of films (default: 1)")
    f.add_argument("--size", type=_phantom_size, default=512, help="px, 64 to 8192 (default: 512)")
    f.add_argument("--seed", type=_seed, default=0, help="first seed (default: 0)")
    f.add_argument("--disease", default="none", help="none, opacity, white-out, effusion, devices")

    d = sub.add_parser("demo", parents=[common], help="segment a built-in phantom radiograph")
    d.add_argument("--out", default="demo", help="folder (default: demo)")
    d.add_argument("--model", help="model file (default: shipped)")
    d.add_argument("--size", type=_phantom_size, default=1024, help="px, 64-8192 (default: 1024)")
    d.add_argument("--seed", type=_seed, default=7, help="the phantom's seed (default: 7)")
    return p
