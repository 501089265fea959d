"""The typed config of a training run (saved as config.json beside it and inside its
checkpoints), its checks, and how `--resume` combines it with the command line."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from .augment import CORRUPTIONS, Augmenter, check_corruptions
from .model import DEVICES, PRECISIONS, ModelConfig
from .preprocess import FITS, HIST_METHODS
from .splits import check_dataset_names

log = logging.getLogger(__name__)

# the options `--resume` takes from the command line; all others stay as the run's config.json
RESUMABLE = ("data", "epochs", "max_minutes", "workers", "device", "precision")
PATHS = ("data", "encoder_weights", "init")  # saved absolute in config.json (`train.fit`)
MAX_MINUTES = 525_600  # --max-minutes: at most a year (Lightning's max_time is a timedelta)
# a folder holds a run once it has one of these; config.json and splits.csv alone are what a
# start that failed before its first checkpoint leaves, and a new run may overwrite them
RUN_CHECKPOINTS = ("checkpoints/last.ckpt", "checkpoints/best.ckpt")


@dataclass
class TrainConfig:
    """Everything a run needs; saved as config.json beside the run and inside checkpoints."""

    data: str = "../shared/data"
    out: str = "runs/default"
    encoder: str = "resnet50"
    encoder_weights: str | None = None
    size: int = 512
    fit: str = "letterbox"
    hist: str = "equalize"
    epochs: int = 50
    batch_size: int = 8
    lr: float = 1e-3
    min_lr: float = 1e-5
    weight_decay: float = 0.0
    corruptions: list[str] = field(default_factory=lambda: list(CORRUPTIONS))
    p_corrupt: float = 0.4
    geometry_aug: bool = True
    datasets: list[str] | None = None
    balance: bool = False  # draw each dataset equally often (weighted sampling with replacement)
    limit: int | None = None
    seed: int = 42
    device: str = "auto"
    workers: int = 1
    strict: bool = False
    init: str | None = None  # start from another model's weights (e.g. fine-tune at a larger size)
    max_minutes: float | None = None  # stop after this wall time, keeping the best model so far
    precision: str = "auto"  # auto: bf16-mixed on a GPU, else 32-true (lightning_precision)

    def __post_init__(self):
        """ValueError naming the option (and how to fix it) for settings that cannot train."""
        self.model_config()  # checks --size
        check_corruptions(self.corruptions, "--corruptions")
        self.datasets = check_dataset_names(self.datasets)
        checks = [
            ("--fit", self.fit, self.fit in FITS, f"use {' or '.join(FITS)}"),
            ("--hist", self.hist, self.hist in HIST_METHODS, f"use {', '.join(HIST_METHODS)}"),
            ("--epochs", self.epochs, self.epochs >= 1, "use 1 or more"),
            ("--batch-size", self.batch_size, self.batch_size >= 2, "use 2 or more (BatchNorm)"),
            ("--lr", self.lr, 0 < self.lr <= 1, "use a rate above 0 and at most 1, e.g. 1e-3"),
            ("--min-lr", self.min_lr, 0 <= self.min_lr <= self.lr, f"use 0 to --lr {self.lr}"),
            ("--p-corrupt", self.p_corrupt, 0 <= self.p_corrupt <= 1, "use 0 to 1"),
            ("--workers", self.workers, self.workers >= 0, "use 0 (no worker processes) or more"),
            ("--limit", self.limit, self.limit is None or self.limit >= 1, "use 1 or more"),
            ("--max-minutes", self.max_minutes, self.max_minutes is None
             or 0 < self.max_minutes <= MAX_MINUTES, "use minutes above 0 (at most a year), or "
             "leave it out for no limit"),
            ("--device", self.device, self.device in DEVICES, "auto, cpu or cuda"),
            ("--precision", self.precision, self.precision in PRECISIONS, " or ".join(PRECISIONS)),
        ]  # fmt: skip
        bad = [f"{option} {value!r}: {fix}" for option, value, ok, fix in checks if not ok]
        if bad:
            raise ValueError("; ".join(bad))

    def lightning_precision(self, gpu: bool) -> str:
        """Lightning's precision for this run: bf16 mixed precision (with channels_last) on a
        GPU, or on a CPU when asked for: a training step 2-3.3x faster than fp32 on CPUs with
        AVX-512 BF16 or AMX (benchmarks/train_step.py; inference: the model 1.9x); emulated,
        and slow, on CPUs without bf16 instructions."""
        return self.precision if self.precision != "auto" else "bf16-mixed" if gpu else "32-true"

    def model_config(self) -> ModelConfig:
        return ModelConfig(encoder=self.encoder, size=self.size, fit=self.fit, hist=self.hist)

    def augmenter(self) -> Augmenter:
        return Augmenter(tuple(self.corruptions), self.p_corrupt, self.geometry_aug)


def _same_path(given: str | None, saved: str | None) -> bool:
    """Two paths of one file or folder (config.json holds them absolute)."""
    if given == saved or not (given and saved):
        return given == saved
    return Path(given).resolve() == Path(saved).resolve()


def flag(name: str) -> str:
    return "--no-geometry-aug" if name == "geometry_aug" else "--" + name.replace("_", "-")


def check_device(device: str) -> None:
    """--device cuda needs a GPU PyTorch can use (checked when a run starts, not in TrainConfig:
    a checkpoint trained on a GPU is read on machines without one)."""
    import torch  # here: every parser reads this module; predict with ONNX needs no torch

    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: PyTorch sees no CUDA GPU here; use --device cpu or auto")


def check_run_folder(out: Path, resume: bool) -> list[str]:
    """A new run needs a folder without a run (a checkpoint) in it, and returns the files of a
    start that failed before its first checkpoint, which it overwrites; `resume` needs
    config.json and last.ckpt."""
    if not resume and any((out / name).exists() for name in RUN_CHECKPOINTS):
        raise ValueError(
            f"{out} already holds a run: --resume to continue it, or choose another --out"
        )
    for need in ("config.json", "checkpoints/last.ckpt") if resume else ():
        if not (out / need).is_file():
            raise FileNotFoundError(
                f"--resume: {out / need} not found, so {out} holds no run to continue (or one "
                "that stopped before its first epoch ended); check --out, or start a new run "
                "(without --resume) in it"
            )
    return [] if resume else [n for n in ("config.json", "splits.csv") if (out / n).exists()]


def run_config(options: dict, resume: bool = False) -> TrainConfig:
    """The config of `lungseg train`: `options` (those given explicitly; `out` at least) over the
    defaults, or with `resume` over the run's config.json, of which only RESUMABLE options may
    change (any other option given must equal the run's). Reads and checks; writes nothing."""
    cfg = TrainConfig(**options)
    out, path = Path(cfg.out), Path(cfg.out) / "config.json"
    check_run_folder(out, resume)
    if not resume:
        check_device(cfg.device)
        return cfg
    new = {k: getattr(cfg, k) for k in options if k in RESUMABLE}
    try:
        saved = json.loads(path.read_text())
        if unknown := sorted(set(saved) - {f.name for f in fields(TrainConfig)}):
            log.warning("%s: ignoring settings this version does not know: %s", path, unknown)
        # (with the new RESUMABLE values: a GPU run's device may change to cpu on resume)
        saved = TrainConfig(**{**{k: v for k, v in saved.items() if k not in unknown}, **new})
    except (OSError, TypeError, AttributeError, json.JSONDecodeError) as e:
        raise ValueError(f"--resume: cannot read the run's settings from {path} ({e})") from e
    fixed = {k: getattr(cfg, k) for k in options if k not in (*RESUMABLE, "out")}
    same = {k: _same_path(v, getattr(saved, k)) if k in PATHS else v == getattr(saved, k)
            for k, v in fixed.items()}  # fmt: skip
    if differ := [k for k, v in same.items() if not v]:
        shown = ", ".join(f"{flag(k)} {fixed[k]!r} (run: {getattr(saved, k)!r})" for k in differ)
        raise ValueError(
            f"--resume continues {out} with the settings in its config.json, which {shown} "
            f"would change; leave them out (only {', '.join(map(flag, RESUMABLE))} may "
            "change on --resume), or choose another --out for a new run"
        )
    check_device(saved.device)
    return replace(saved, out=str(out))
