"""Training with PyTorch Lightning: BCE + Dice loss, Adam, cosine LR, validation IoU/Dice each
epoch, best/last checkpoints that carry their own config, resume, CSV log."""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from . import datasets
from .augment import CORRUPTIONS, Augmenter
from .metrics import confusion
from .model import ModelConfig, build_model, load_encoder_weights, save_safetensors
from .preprocess import finish, place, resize_pair

log = logging.getLogger(__name__)


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

    def model_config(self) -> ModelConfig:
        return ModelConfig(encoder=self.encoder, size=self.size, fit=self.fit, hist=self.hist)


class PairDataset(Dataset):
    """Pairs resized once (aspect kept), then per item: corruptions -> histogram normalisation ->
    canvas -> geometry. Returns (image 1xSxS float32 [0,1], mask 1xSxS float32 {0,1})."""

    def __init__(self, pairs, config: TrainConfig, augment: bool):
        self.items = [resize_pair(image, mask, config.size, config.fit) for _, image, mask in pairs]
        self.hist = config.hist
        self.aug = Augmenter(tuple(config.corruptions), config.p_corrupt, config.geometry_aug)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        image, mask, g = self.items[i]
        if self.augment:
            rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,))))
            image = self.aug.corrupt(image, mask, rng)
        x, m = finish(image, g, self.hist), place(mask, g)
        if self.augment:
            x, m = self.aug.geometric(x, m)
        return torch.from_numpy(x[None].copy()), torch.from_numpy(m[None].astype(np.float32))


class LungSegModule(L.LightningModule):
    def __init__(self, config: dict):
        super().__init__()
        self.save_hyperparameters(config)
        self.cfg = TrainConfig(**config)
        self.model = build_model(self.cfg.encoder)
        if self.cfg.encoder_weights:
            load_encoder_weights(self.model, self.cfg.encoder_weights)
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
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        logits = self(x)
        self.log("val_loss", self.loss(logits, y), on_epoch=True, prog_bar=True)
        pred = (logits > 0).cpu().numpy()
        for p, t in zip(pred, y.cpu().numpy(), strict=True):
            c = confusion(p[0], t[0])
            self.log("val_iou", c.iou, on_epoch=True, prog_bar=True)
            self.log("val_dice", c.dice, on_epoch=True)

    def configure_optimizers(self):
        opt = torch.optim.Adam(
            self.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay
        )
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=max(1, self.cfg.epochs), eta_min=self.cfg.min_lr
        )
        return {"optimizer": opt, "lr_scheduler": sched}


def load_split_pairs(cfg: TrainConfig, out: Path):
    """Discover, check and split the data -> {split: [(sample, image, mask)]}; logs a summary."""
    samples, problems = datasets.discover(cfg.data)
    if problems and cfg.strict:
        raise ValueError("pairing problems (--strict):\n" + "\n".join(map(str, problems)))
    splits = datasets.assign_splits(Path(cfg.data), samples, out)
    pairs = {}
    for split in ("train", "val"):
        chosen = datasets.select(samples, splits, split, cfg.datasets, cfg.limit)
        pairs[split], bad = datasets.check_pairs(chosen, strict=cfg.strict)
        problems += bad
    log.info("data: %s", datasets.summarize(sum(map(len, pairs.values())), problems))
    for split, p in pairs.items():
        if not p:
            raise ValueError(f"no usable {split} pairs under {cfg.data} (datasets={cfg.datasets})")
    return pairs


def balanced_sampler(pairs) -> WeightedRandomSampler:
    """Sampler drawing len(pairs) items per epoch, each dataset equally often in expectation."""
    names = [sample.dataset for sample, _, _ in pairs]
    counts = Counter(names)
    weights = [1.0 / (len(counts) * counts[n]) for n in names]
    return WeightedRandomSampler(weights, num_samples=len(pairs), replacement=True)


def fit(cfg: TrainConfig, resume: bool = False) -> Path:
    """Train; returns the path of the best model exported as fp16 safetensors."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    L.seed_everything(cfg.seed, workers=True)
    pairs = load_split_pairs(cfg, out)
    loaders = {
        s: DataLoader(
            PairDataset(p, cfg, augment=s == "train"),
            batch_size=cfg.batch_size,
            shuffle=s == "train" and not cfg.balance,
            sampler=balanced_sampler(p) if s == "train" and cfg.balance else None,
            num_workers=cfg.workers,
            persistent_workers=cfg.workers > 0,
            drop_last=False,
        )
        for s, p in pairs.items()
    }
    module = LungSegModule(asdict(cfg))
    if cfg.init:
        from .model import load_model

        module.model.load_state_dict(load_model(cfg.init)[0].state_dict())
    gpu = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    best_ckpt = L.pytorch.callbacks.ModelCheckpoint(
        out / "checkpoints", filename="best", monitor="val_iou", mode="max"
    )
    # (not save_last=True: Lightning >= 2.x writes last.ckpt only in epochs that improve `best`)
    last_ckpt = L.pytorch.callbacks.ModelCheckpoint(
        out / "checkpoints",
        filename="last",
        monitor=None,
        save_top_k=1,
        enable_version_counter=False,
    )
    trainer = L.Trainer(
        max_epochs=cfg.epochs,
        max_time=timedelta(minutes=cfg.max_minutes) if cfg.max_minutes else None,
        accelerator="gpu" if gpu else "cpu",
        devices=1,
        precision="bf16-mixed" if gpu else "32-true",
        callbacks=[best_ckpt, last_ckpt],
        logger=L.pytorch.loggers.CSVLogger(out, name="", version=""),
        log_every_n_steps=10,
        deterministic=False,
        enable_model_summary=False,
    )
    last = out / "checkpoints" / "last.ckpt"
    if resume and not last.is_file():
        raise FileNotFoundError(f"--resume: {last} not found; start without --resume")
    earlier = _read_log(out / "metrics.csv") if resume else []  # Lightning overwrites the file
    trainer.fit(module, loaders["train"], loaders["val"], ckpt_path=last if resume else None)
    if earlier:
        _merge_log(out / "metrics.csv", earlier)
    best = LungSegModule.load_from_checkpoint(best_ckpt.best_model_path or last, map_location="cpu")
    target = out / "model.safetensors"
    score = best_ckpt.best_model_score  # (a tensor: `score or nan` would turn 0.0 into nan)
    score = float("nan") if score is None else float(score)
    save_safetensors(best.model, cfg.model_config(), target, {"best_val_iou": score})
    log.info("best checkpoint %s (val IoU %.4f) -> %s", best_ckpt.best_model_path, score, target)
    return target


def _read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _merge_log(path: Path, earlier: list[dict]) -> None:
    """Put the epochs logged before a resume back in front of the resumed run's rows."""
    new = _read_log(path)
    first = min((int(r["epoch"]) for r in new if r.get("epoch")), default=None)
    rows = [r for r in earlier if first is None or int(r["epoch"]) < first] + new
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
