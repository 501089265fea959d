"""The learning-rate schedule in a time slot (--max-minutes): after each epoch the run and its
cosine schedule are fitted to the time that is left (FitToTime, a Lightning callback)."""

from __future__ import annotations

import logging
import math
import time

import lightning as L

log = logging.getLogger(__name__)
_clock = time.monotonic  # (tests replace it)


class FitToTime(L.Callback):
    """--max-minutes: after each epoch, the run and its cosine schedule end at the last epoch
    that fits in the time left (at most --epochs), with a 5% margin, judged by the mean time of
    its epochs (not the first of a start, which holds the start-up's time too and plans nothing
    while time is left). A plan is shortened whenever it must be, lengthened only by two epochs
    or more: epoch times that wobble do not re-plan the run every epoch. The rate decays
    from where it is to --min-lr at the new end (as a --resume with a longer --epochs does),
    rather than stopping high when the limit hits; Lightning's max_time stays as the hard stop,
    and, as it does, the time of the run before a --resume counts."""

    def __init__(self, minutes: float, epochs: int):
        self.limit, self.epochs = minutes * 60, epochs

    def on_train_start(self, trainer, pl_module) -> None:
        timer = [c for c in trainer.callbacks if isinstance(c, L.pytorch.callbacks.Timer)]
        self.mark, self.first, self.times = _clock(), trainer.current_epoch, []
        self.start = self.mark - (timer[0].time_elapsed("train") if timer else 0.0)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.rates = [[g["lr"] for g in c.scheduler.optimizer.param_groups]
                      for c in trainer.lr_scheduler_configs]  # fmt: skip

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.should_stop:  # the time is up (max_time, mid-epoch): nothing left to plan
            return
        now = _clock()
        took, self.mark = now - self.mark, now
        done = trainer.current_epoch + 1
        left = 0.95 * self.limit - (now - self.start)
        if trainer.current_epoch == self.first and left > 0:
            return
        self.times.append(took)
        per_epoch = sum(self.times) / len(self.times)
        fits = done + int(max(0.0, left) // max(per_epoch, 1e-9))
        last, now_last = max(done, min(self.epochs, fits)), trainer.fit_loop.max_epochs
        if last < now_last or last >= now_last + 2:
            log.info(
                "--max-minutes %g: epochs take %.1f s (mean); the run and its LR schedule now "
                "end after epoch %d (of --epochs %d)", self.limit / 60, per_epoch, last - 1,
                self.epochs,
            )  # fmt: skip
            trainer.fit_loop.max_epochs = last
            for c, rates in zip(trainer.lr_scheduler_configs, self.rates, strict=True):
                _recosine(c.scheduler, last, rates)


def _recosine(sched, epochs: int, rates: list[float]) -> None:
    """A CosineAnnealingLR re-planned mid-run to reach eta_min after `epochs`, from `rates`, those
    its param groups ran the epoch just ended at. Lightning has already stepped it into the next
    epoch when on_train_epoch_end runs, so that step is redone with the new length (torch's own
    recursive step; the steps after it follow from the rate it sets)."""
    sched.T_max = epochs
    t, low = sched.last_epoch, sched.eta_min  # t <= epochs: the new end is not behind
    step = (1 + math.cos(math.pi * t / epochs)) / (1 + math.cos(math.pi * (t - 1) / epochs))
    for group, rate in zip(sched.optimizer.param_groups, rates, strict=True):
        group["lr"] = low + (rate - low) * step
    sched._last_lr = [g["lr"] for g in sched.optimizer.param_groups]
