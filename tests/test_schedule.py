"""--max-minutes fits the run and its cosine LR schedule into the time slot (train.FitToTime)."""

from __future__ import annotations

import csv
import itertools
import math
from datetime import timedelta
from types import SimpleNamespace

import lightning as L
import pytest
import torch

import lungseg.schedule
from lungseg import cli
from lungseg.schedule import FitToTime


class FakeClock:
    def __init__(self, step: float):
        self.times = itertools.count(0.0, step)

    def __call__(self) -> float:
        return next(self.times)


def _trainer(epochs: int, lr=1e-3, min_lr=1e-6, callbacks=()):
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=min_lr)
    return SimpleNamespace(
        current_epoch=0,
        callbacks=list(callbacks),
        fit_loop=SimpleNamespace(max_epochs=epochs),
        lr_scheduler_configs=[SimpleNamespace(scheduler=sched)],
        opt=opt,
        should_stop=False,
    )


def _run(trainer, cb: FitToTime, plans: list[int] | None = None) -> list[float]:
    """Lightning's order: on_train_start; per epoch, on_train_epoch_start, its batches, then
    the scheduler steps, then on_train_epoch_end. Returns the learning rate each epoch ran at;
    `plans` gets the planned number of epochs after each."""
    cb.on_train_start(trainer, None)
    lrs = []
    while trainer.current_epoch < trainer.fit_loop.max_epochs:
        cb.on_train_epoch_start(trainer, None)
        lrs.append(trainer.opt.param_groups[0]["lr"])
        trainer.opt.step()
        trainer.lr_scheduler_configs[0].scheduler.step()
        cb.on_train_epoch_end(trainer, None)
        if plans is not None:
            plans.append(trainer.fit_loop.max_epochs)
        trainer.current_epoch += 1
    return lrs


def test_a_run_longer_than_its_slot_ends_its_schedule_inside_it(monkeypatch):
    """50 epochs of 10 s in a 1-minute slot: 5 epochs run (57 s of 60 with the margin). The
    second epoch, the first timed without start-up, plans them; the rate then decays from where
    it is to --min-lr over the last three, instead of stopping near the top of a 50-epoch cosine."""
    monkeypatch.setattr(lungseg.schedule, "_clock", FakeClock(10.0))
    trainer = _trainer(50)
    lrs = _run(trainer, FitToTime(1.0, 50))
    assert len(lrs) == 5
    assert lrs[0] == 1e-3 and all(a > b for a, b in itertools.pairwise(lrs))
    sched = trainer.lr_scheduler_configs[0].scheduler
    assert sched.T_max == 5 and sched.get_last_lr()[0] == pytest.approx(1e-6)  # end of cosine
    low, top = 1e-6, 1e-6 + (1e-3 - 1e-6) * (1 + math.cos(math.pi / 50)) / 2  # epoch 1: 50-cosine
    tail = [low + (top - low) * (1 + math.cos(math.pi * t / 5)) / (1 + math.cos(math.pi / 5))
            for t in range(2, 5)]  # fmt: skip
    assert lrs == pytest.approx([1e-3, top, *tail], rel=1e-6)  # a 5-epoch cosine from epoch 1


def test_a_slot_that_ends_inside_the_first_epoch_stops_the_run_without_a_plan(monkeypatch):
    """Lightning's max_time stops the run mid-epoch: the epoch ends unstepped and stopping, and
    there is nothing to plan (re-planning a schedule at step 0 to end after 1 epoch divided
    by zero)."""
    monkeypatch.setattr(lungseg.schedule, "_clock", FakeClock(100.0))
    trainer = _trainer(50)
    cb = FitToTime(0.5, 50)
    cb.on_train_start(trainer, None)
    cb.on_train_epoch_start(trainer, None)
    trainer.should_stop = True  # (the scheduler not stepped)
    cb.on_train_epoch_end(trainer, None)
    sched = trainer.lr_scheduler_configs[0].scheduler
    assert trainer.fit_loop.max_epochs == 50 and sched.T_max == 50
    assert trainer.opt.param_groups[0]["lr"] == 1e-3


def test_a_run_that_fits_its_slot_is_left_alone(monkeypatch):
    monkeypatch.setattr(lungseg.schedule, "_clock", FakeClock(1.0))
    trainer = _trainer(20)
    lrs = _run(trainer, FitToTime(10.0, 20))  # 20 epochs of 1 s in 10 minutes
    assert len(lrs) == 20 and trainer.lr_scheduler_configs[0].scheduler.T_max == 20


def test_the_plan_follows_the_epochs_as_they_speed_up(monkeypatch):
    """A first epoch slowed by start-up (workers, cuDNN tuning) is not used to plan; the faster
    epochs after it are, never past --epochs."""
    times = iter([0, 30, *range(32, 1000, 2)])  # 30 s, then 2 s per epoch, in a 90 s slot
    monkeypatch.setattr(lungseg.schedule, "_clock", lambda: next(times))
    trainer = _trainer(40)
    cb = FitToTime(1.5, 40)
    cb.on_train_start(trainer, None)
    cb.on_train_epoch_start(trainer, None)
    cb.on_train_epoch_end(trainer, None)
    assert trainer.fit_loop.max_epochs == 40  # the first epoch plans nothing
    trainer.current_epoch = 1
    cb.on_train_epoch_start(trainer, None)
    cb.on_train_epoch_end(trainer, None)
    assert trainer.fit_loop.max_epochs == 28  # 30 + 27 x 2 = 84 s <= 85.5 s
    times = iter([0, 30, *range(32, 1000, 2)])
    short = _trainer(20)
    assert len(_run(short, FitToTime(1.5, 20))) == 20  # never past --epochs


def test_a_slow_first_epoch_does_not_end_the_run(monkeypatch):
    """The first epoch holds the start-up (35 s of a 60 s slot): on its own it would leave no
    room, but the second, timed alone (5 s), shows three more fit."""
    times = iter([0, 35, *range(40, 1000, 5)])
    monkeypatch.setattr(lungseg.schedule, "_clock", lambda: next(times))
    assert len(_run(_trainer(50), FitToTime(1.0, 50))) == 5  # 35 + 4 x 5 = 55 s <= 57 s


def test_epoch_times_that_wobble_do_not_re_plan_every_epoch(monkeypatch):
    """Epochs of 9.5 s and 10.5 s in turn (a busy machine) in a 10-minute slot: the plan is not
    remade every epoch, and the run still ends inside the slot, on its cosine's last epoch."""
    ends = itertools.accumulate(itertools.cycle([9.5, 10.5]), initial=0.0)
    monkeypatch.setattr(lungseg.schedule, "_clock", lambda: next(ends))
    trainer = _trainer(100)
    plans: list[int] = []
    _run(trainer, FitToTime(10.0, 100), plans)
    changes = sum(a != b for a, b in itertools.pairwise(plans))
    assert changes <= 3  # a plan, and a few more as the estimate firms up (not every epoch)
    assert 10 * len(plans) <= 570  # inside 95% of the slot
    assert trainer.lr_scheduler_configs[0].scheduler.get_last_lr()[0] == pytest.approx(1e-6)


def test_a_resumed_run_counts_the_time_it_ran_before(monkeypatch):
    """As Lightning's max_time does: 40 s of the 60 s slot were spent before --resume at epoch 3.
    The first 10 s epoch after it (a start: it may hold start-up time) is followed by one more,
    and that one, at 60 s, past the 57 s margin, ends the run."""
    monkeypatch.setattr(lungseg.schedule, "_clock", FakeClock(10.0))
    timer = L.pytorch.callbacks.Timer(duration=timedelta(minutes=1))
    timer.load_state_dict({"time_elapsed": {"train": 40.0}})  # as restored from last.ckpt
    trainer = _trainer(50, callbacks=[timer])
    trainer.current_epoch = 3
    assert len(_run(trainer, FitToTime(1.0, 50))) == 2


@pytest.mark.parametrize("minutes", [1.0, 100.0])  # re-planned, or not
def test_a_resumed_run_goes_on_from_the_rate_it_stopped_at(monkeypatch, minutes):
    """A run cut to 5 epochs ended at --min-lr; resumed with --epochs 50 (the module sets T_max
    back to 50), it goes on at that rate whether the new slot is short or long."""
    monkeypatch.setattr(lungseg.schedule, "_clock", FakeClock(10.0))
    trainer = _trainer(5)
    sched = trainer.lr_scheduler_configs[0].scheduler
    for _ in range(5):
        trainer.opt.step()
        sched.step()
    sched.T_max, trainer.current_epoch, trainer.fit_loop.max_epochs = 50, 5, 50
    lrs = _run(trainer, FitToTime(minutes, 50))
    assert len(lrs) == (5 if minutes == 1.0 else 45)
    assert lrs == pytest.approx([1e-6] * len(lrs), rel=1e-9)


@pytest.mark.slow
def test_train_with_max_minutes_runs_the_epochs_that_fit(tmp_path, monkeypatch, synth):
    """Through the CLI and Lightning: each epoch 'takes' 12 s of a 1-minute slot, so 4 of the 500
    epochs run, planned after the second, the last of them near the end of the cosine."""
    root = tmp_path / "data"
    ids = range(1, 7)
    synth.write_combined(
        root, [f"MCUCXR_{i:04d}_0" for i in ids], [f"CHNCXR_{i:04d}_1" for i in ids]
    )
    monkeypatch.setattr(lungseg.schedule, "_clock", FakeClock(12.0))
    torch.set_num_threads(1)
    out = tmp_path / "run"
    argv = ["train", "--data", str(root), "--out", str(out), "--size", "64", "--limit", "4"]
    argv += ["--encoder", "resnet18", "--workers", "0", "--batch-size", "2", "--device", "cpu"]
    assert (
        cli.main(
            [*argv, "--epochs", "500", "--max-minutes", "1", "--lr", "1e-3", "--min-lr", "1e-6"]
        )
        == 0
    )
    with open(out / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("epoch")]
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]  # one row per epoch
    assert all(r["val_iou"] and r["train_loss"] for r in rows)
    lrs = [float(r["lr"]) for r in rows]
    assert len(lrs) == 4 and lrs[0] == pytest.approx(1e-3)
    top = 1e-6 + (1e-3 - 1e-6) * (1 + math.cos(math.pi / 500)) / 2  # planned after epoch 1
    later = [1e-6 + (top - 1e-6) * (1 + math.cos(math.pi * t / 4)) / (1 + math.cos(math.pi / 4))
             for t in (2, 3)]  # fmt: skip
    assert lrs[1:] == pytest.approx([top, *later], rel=1e-5)  # (logged in float32)
    assert (out / "model.safetensors").is_file()
