"""Training with PyTorch Lightning: BCE + Dice loss, Adam, cosine LR, validation IoU/Dice each
epoch, best/last checkpoints that carry their own config, resume, CSV log."""

from __future__ import annotations

import json
import logging
import signal
import warnings
from collections import Counter
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader, WeightedRandomSampler

from . import datasets
from .augment import PairDataset
from .metrics import confusion
from .model import build_model, load_encoder_weights, load_init, save_safetensors, trained_on
from .pairs import check_pairs, summarize
from .runconfig import PATHS, TrainConfig, check_device, check_run_folder
from .runlog import read_log, tidy_log
from .schedule import FitToTime
from .splits import assign_splits, read_splits, select

log = logging.getLogger(__name__)


class LungSegModule(L.LightningModule):
    """The network and its training. Builds the architecture only: fit() loads --encoder-weights
    and --init, a checkpoint its own weights (so reloading one reads no other file)."""

    def __init__(self, config: dict):
        super().__init__()
        self.save_hyperparameters(config)
        self.cfg = TrainConfig(**config)
        self.model = build_model(self.cfg.encoder)
        import segmentation_models_pytorch as smp

        self.dice_loss = smp.losses.DiceLoss("binary", from_logits=True)
        self.bce = torch.nn.BCEWithLogitsLoss()

    def forward(self, x):
        return self.model(x)

    def loss(self, logits, y):
        return self.bce(logits, y) + self.dice_loss(logits, y)

    def training_step(self, batch, _):
        x, y = batch
        loss = self.loss(self(x), y)
        self.finite &= torch.isfinite(loss.detach())  # read before validation: no wait per step
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        logits = self(x)
        n = len(x)
        self.log("val_loss", self.loss(logits, y), on_epoch=True, prog_bar=True, batch_size=n)
        pred = (logits > 0).cpu().numpy()
        scores = [confusion(p[0], t[0]) for p, t in zip(pred, y.cpu().numpy(), strict=True)]
        # batch means weighted by batch size: the epoch value is the mean over validation images
        iou, dice = (float(np.mean([getattr(c, k) for c in scores])) for k in ("iou", "dice"))
        self.log("val_iou", iou, on_epoch=True, prog_bar=True, batch_size=n)
        self.log("val_dice", dice, on_epoch=True, batch_size=n)

    def on_train_epoch_start(self):
        self.finite = torch.ones((), dtype=torch.bool, device=self.device)

    def on_validation_epoch_start(self):
        """A training loss that turned NaN or infinite stops the run before its weights are
        validated and saved."""
        if not self.trainer.sanity_checking and not bool(getattr(self, "finite", True)):
            raise ValueError(
                f"the training loss became NaN or infinite in epoch {self.current_epoch}: the "
                f"run diverged; start again with a lower --lr (this run: {self.cfg.lr:g})"
            )

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """--resume: the checkpoint must hold this run's network and input (a file copied in
        from another run would fail on its weights or train under other settings)."""
        saved = checkpoint.get("hyper_parameters", {})
        mine = asdict(self.cfg.model_config())  # the network and its input
        if differ := [k for k, v in mine.items() if k in saved and saved[k] != v]:
            shown = ", ".join(f"--{k} {saved[k]!r} (run: {mine[k]!r})" for k in differ)
            raise ValueError(
                f"{self.cfg.out}/checkpoints/last.ckpt was trained with {shown}: it is another "
                "run's; put this run's own last.ckpt back, or resume that run from its own folder"
            )

    def on_train_start(self):
        # a resumed run's scheduler comes back with the T_max it was saved with: a longer
        # --epochs then decays from the current rate to --min-lr at the new last epoch
        for c in self.trainer.lr_scheduler_configs:
            c.scheduler.T_max = max(1, self.cfg.epochs)
        if self.current_epoch > 0:
            lr = self.trainer.optimizers[0].param_groups[0]["lr"]
            finished = lr <= self.cfg.min_lr * 1.001
            done = " (the run had finished its schedule: start a new one with --init to train at "
            done = done + "a higher rate)" if finished else ""
            log.info(
                "resumed at epoch %d, learning rate %.3g: it goes on to --min-lr %g at the last "
                "epoch%s", self.current_epoch, lr, self.cfg.min_lr, done,
            )  # fmt: skip

    def configure_optimizers(self):
        opt = torch.optim.Adam(
            self.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay
        )
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=max(1, self.cfg.epochs), eta_min=self.cfg.min_lr
        )
        return {"optimizer": opt, "lr_scheduler": sched}


def load_split_pairs(cfg: TrainConfig, out: Path, resume: bool = False):
    """Discover, check and split the data -> {split: [(sample, image, mask)]}; logs a summary.
    The split is written to out/splits.csv; `resume` keeps and uses the run's own, and leaves
    out films it does not list (a new split could move trained-on films into val)."""
    samples, problems = datasets.discover(cfg.data)
    if problems and cfg.strict:
        raise ValueError("pairing problems (--strict):\n" + "\n".join(map(str, problems)))
    run_split = out / "splits.csv"
    if resume and run_split.is_file():
        listed = read_splits(run_split, samples)
        if new := [f"{s.dataset}/{s.id}" for s in samples if (s.dataset, s.id) not in listed]:
            log.warning(
                "%d films under %s are not in %s, the split this run started with: left out "
                "of the resumed run (e.g. %s)", len(new), cfg.data, run_split, ", ".join(new[:3])
            )  # fmt: skip
            samples = [s for s in samples if (s.dataset, s.id) in listed]
        splits = assign_splits(Path(cfg.data), samples, split_file=run_split)
    else:
        splits = assign_splits(Path(cfg.data), samples, out)
    pairs = {}
    for split in ("train", "val"):
        chosen = select(samples, splits, split, cfg.datasets, cfg.limit)
        pairs[split], bad = check_pairs(chosen, strict=cfg.strict)
        problems += bad
    log.info("data: %s", summarize(sum(map(len, pairs.values())), problems))
    for split, p in pairs.items():
        if len(p) < (2 if split == "train" else 1):  # a batch of 1 cannot train (BatchNorm)
            few = ", or too few films for a new split to give val films (groups of one dataset "
            few += "and label need 3 or more): add films or give a splits.csv in --data"
            raise ValueError(
                f"{len(p)} usable {split} pairs under {cfg.data} (datasets={cfg.datasets}, "
                f"limit={cfg.limit}): too few; check --data, --datasets and --limit"
                + (few if split == "val" and not p else "")
            )
    return pairs


def balanced_sampler(pairs) -> WeightedRandomSampler:
    """Sampler drawing len(pairs) items per epoch, each dataset equally often in expectation."""
    names = [sample.dataset for sample, _, _ in pairs]
    counts = Counter(names)
    weights = [1.0 / (len(counts) * counts[n]) for n in names]
    return WeightedRandomSampler(weights, num_samples=len(pairs), replacement=True)


class RunCheckpoint(L.pytorch.callbacks.ModelCheckpoint):
    """checkpoints/NAME.ckpt, overwritten in place (no NAME-v1.ckpt beside a stale one), whose
    state (best path and score) follows a run folder moved or copied before --resume: Lightning
    drops it then, and the first resumed epoch, however poor, would replace best.ckpt."""

    def __init__(self, out: Path, name: str, **kwargs):
        super().__init__(out / "checkpoints", name, enable_version_counter=False, **kwargs)

    @property
    def state_key(self) -> str:
        """ModelCheckpoint's key (Lightning keys a callback's state by its class name): runs
        started before this class saved their best score under it, and resumed they would
        silently lose it."""
        return super().state_key.replace(type(self).__qualname__, "ModelCheckpoint", 1)

    @property
    def _legacy_state_key(self) -> str:  # Lightning's second choice: the key RunCheckpoint's
        return super().state_key  # first version saved under (RunCheckpoint{...})

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict.get("dirpath", self.dirpath) != self.dirpath:  # moved: its files are here
            here = {k: self._here(v) for k, v in state_dict.items() if k.endswith("_path")}
            best_k = {self._here(p): v for p, v in state_dict.get("best_k_models", {}).items()}
            if here["best_model_path"] and not Path(here["best_model_path"]).exists():
                log.warning("%s is missing: best model tracked anew", here["best_model_path"])
                return
            state_dict = {**state_dict, **here, "best_k_models": best_k, "dirpath": self.dirpath}
        super().load_state_dict(state_dict)

    def _here(self, path: str | None) -> str | None:
        return str(Path(self.dirpath) / Path(path).name) if path else path


def fit(cfg: TrainConfig, resume: bool = False) -> Path:
    """Train (`resume`: continue cfg.out's run from checkpoints/last.ckpt); returns the path of
    the best model exported as fp16 safetensors. The run folder, device, encoder and weight
    files are checked before the data is read or anything is written."""
    out = Path(cfg.out)
    leftovers = check_run_folder(out, resume)
    check_device(cfg.device)
    L.seed_everything(cfg.seed, workers=True)
    module = LungSegModule(asdict(cfg))
    if not resume:  # a resumed run's weights come from its checkpoint
        if cfg.encoder_weights:
            load_encoder_weights(module.model, cfg.encoder_weights, cfg.encoder)
        if cfg.init:
            load_init(module.model, cfg.init, cfg.encoder)
    gpu = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    precision = cfg.lightning_precision(gpu)
    if precision == "bf16-mixed":  # the layout bf16 convolutions are fastest in (20% at 256 px)
        module.model.to(memory_format=torch.channels_last)
    if leftovers:
        log.warning(
            "%s holds %s of a start that failed before its first checkpoint (no run): "
            "overwritten by this run", out, " and ".join(leftovers)
        )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    pairs = load_split_pairs(cfg, out, resume)
    loaders = {
        s: DataLoader(
            PairDataset(p, cfg.size, cfg.fit, cfg.hist, cfg.augmenter() if s == "train" else None),
            batch_size=cfg.batch_size,
            shuffle=s == "train" and not cfg.balance,
            sampler=balanced_sampler(p) if s == "train" and cfg.balance else None,
            num_workers=cfg.workers,
            persistent_workers=cfg.workers > 0,
            # a last training batch of 1 film would stop training (BatchNorm needs 2)
            drop_last=s == "train" and len(p) % cfg.batch_size == 1,
        )
        for s, p in pairs.items()
    }
    # its paths absolute: --resume from another folder finds the data, and the record holds
    saved = {k: str(Path(v).resolve()) if k in PATHS and v else v for k, v in asdict(cfg).items()}
    (out / "config.json").write_text(json.dumps(saved, indent=2))
    best_ckpt = RunCheckpoint(out, "best", monitor="val_iou", mode="max")
    # (not save_last=True: Lightning >= 2.x writes last.ckpt only in epochs that improve `best`)
    last_ckpt = RunCheckpoint(out, "last", monitor=None, save_top_k=1)
    trainer = L.Trainer(
        max_epochs=cfg.epochs,
        max_time=timedelta(minutes=cfg.max_minutes) if cfg.max_minutes else None,
        accelerator="gpu" if gpu else "cpu",
        devices=1,
        precision=precision,
        callbacks=[best_ckpt, last_ckpt]
        + ([FitToTime(cfg.max_minutes, cfg.epochs)] if cfg.max_minutes else []),
        logger=L.pytorch.loggers.CSVLogger(out, name="", version=""),
        log_every_n_steps=min(10, len(loaders["train"])),  # a small run logs too, unwarned
        deterministic=False,
        enable_model_summary=False,
    )
    last = out / "checkpoints" / "last.ckpt"
    earlier = read_log(out / "metrics.csv") if resume else []  # Lightning overwrites the file
    films = trained_on(cfg.init) if cfg.init and Path(cfg.init).is_file() else {}  # (its own)
    films.update({(s.dataset, s.id): split for split, p in pairs.items() for s, _, _ in p})
    try:
        with warnings.catch_warnings():  # about the run's own files (config.json, a resume's
            # checkpoints and log, merged back below): alarming and not true here
            warnings.filterwarnings("ignore", message=r"(Experiment logs|Checkpoint) directory")
            start = last if resume else None
            trainer.fit(module, loaders["train"], loaders["val"], ckpt_path=start)
    except SystemExit as e:  # SIGTERM (after the step in progress) or Ctrl-C, via Lightning
        tidy_log(out / "metrics.csv", earlier)
        if best_ckpt.best_model_path:
            _save_best(best_ckpt, cfg, films, out / "model.safetensors")
        log.error(
            "stopped: %s; `lungseg train --resume --out %s` goes on", "model.safetensors holds "
            "the best epoch so far" if best_ckpt.best_model_path else "no epoch finished", out,
        )  # fmt: skip
        if not isinstance(e, SIGTERMException):  # Ctrl-C: Lightning left SIGINT ignored
            signal.signal(signal.SIGINT, signal.default_int_handler)
        raise SystemExit(143 if isinstance(e, SIGTERMException) else 130) from None
    tidy_log(out / "metrics.csv", earlier)
    return _save_best(best_ckpt, cfg, films, out / "model.safetensors", last)


def _save_best(best_ckpt, cfg: TrainConfig, films: dict, target: Path, last: Path | None = None):
    """The best checkpoint (else `last`) as the run's fp16 model file, with the films it saw."""
    best = LungSegModule.load_from_checkpoint(best_ckpt.best_model_path or last, map_location="cpu")
    score = best_ckpt.best_model_score  # (a tensor: `score or nan` would turn 0.0 into nan)
    score = float("nan") if score is None else float(score)
    save_safetensors(best.model, cfg.model_config(), target, {"best_val_iou": score}, films)
    log.info("best checkpoint %s (val IoU %.4f) -> %s", best_ckpt.best_model_path, score, target)
    return target
