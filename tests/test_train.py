"""Tiny end-to-end training through the CLI (64 px, 1-2 epochs, 4 images), resume, and the
self-describing model files, the run folder's rules. (Settings and their checks, without
training: test_train_config.py and test_run_folder.py; parts of training checked without a run:
test_train_parts.py; --max-minutes: test_schedule.py.)
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import shutil
import time
from types import SimpleNamespace

import lightning as L
import pytest
import torch

import lungseg.train  # (imported here, not first inside a capsys test: see test_train_config)
from lungseg import cli
from lungseg.model import load_model, read_config


def _train_args(root, out, *extra):
    return [
        "train",
        "--data",
        str(root),
        "--out",
        str(out),
        "--size",
        "64",
        "--limit",
        "4",
        "--encoder",
        "resnet18",
        "--workers",
        "0",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        *extra,
    ]


def _ckpt(out, name: str) -> dict:
    return torch.load(out / "checkpoints" / name, map_location="cpu", weights_only=False)


def _epochs(metrics_csv) -> set[int]:
    with open(metrics_csv, newline="") as f:
        return {int(r["epoch"]) for r in csv.DictReader(f) if r.get("epoch")}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, synth):
    """12 pairs (64x64): Montgomery label 0 and Shenzhen label 1, 6 each -> 4/1/1 per group."""
    root = tmp_path_factory.mktemp("data")
    mcu = [f"MCUCXR_{i:04d}_0" for i in range(1, 7)]
    chn = [f"CHNCXR_{i:04d}_1" for i in range(1, 7)]
    synth.write_combined(root, mcu, chn, h=64, w=64)
    return root


@pytest.fixture(scope="module")
def trained(data_root, tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("run")
    rc = cli.main(_train_args(os.path.relpath(data_root), out, "--epochs", "1"))  # (relative)
    return rc, out


@pytest.mark.slow
def test_train_writes_run_folder(trained, data_root):
    rc, out = trained
    assert rc == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["encoder"] == "resnet18" and cfg["size"] == 64 and cfg["epochs"] == 1
    assert cfg["limit"] == 4 and cfg["data"] == str(data_root.resolve())  # from any folder
    for name in (
        "checkpoints/last.ckpt",
        "checkpoints/best.ckpt",
        "metrics.csv",
        "model.safetensors",
        "splits.csv",
    ):
        assert (out / name).is_file(), name
    assert _epochs(out / "metrics.csv") == {0}
    with open(out / "metrics.csv", newline="") as f:
        header = next(csv.reader(f))
    assert {"val_iou", "val_loss", "train_loss"} <= set(header)
    with open(out / "splits.csv", newline="") as f:
        splits = list(csv.DictReader(f))
    assert len(splits) == 12
    from lungseg.model import trained_on

    films = trained_on(out / "model.safetensors")  # (--limit 4: at most 4 of each split's)
    listed = {(r["dataset"], r["id"]): r["split"] for r in splits}
    assert sorted(films.values()).count("train") == 4 and "val" in films.values()
    assert all(listed[k] == v for k, v in films.items())


@pytest.mark.slow
def test_model_files_describe_themselves(trained):
    _, out = trained
    for name in ("model.safetensors", "checkpoints/best.ckpt", "checkpoints/last.ckpt"):
        cfg = read_config(out / name)
        assert (cfg.encoder, cfg.size, cfg.fit, cfg.hist) == (
            "resnet18",
            64,
            "letterbox",
            "equalize",
        ), name
    model, cfg = load_model(out / "model.safetensors")
    assert cfg.encoder == "resnet18" and cfg.size == 64
    assert not model.training
    with torch.no_grad():
        y = model(torch.zeros(1, 1, 64, 64))
    assert y.shape == (1, 1, 64, 64) and torch.isfinite(y).all()
    ckpt_model, ckpt_cfg = load_model(out / "checkpoints" / "best.ckpt")
    assert ckpt_cfg == cfg
    # fp16 safetensors == the best checkpoint, to fp16 precision
    a = dict(model.state_dict())
    for k, v in ckpt_model.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(a[k], v.half().float(), rtol=0, atol=0)


@pytest.fixture(scope="module")
def resumed(trained, data_root):
    """Resume the 1-epoch run to 2 epochs (runs after the tests that read the 1-epoch files), as
    the README says: only --data, --out, --resume (and here the longer --epochs); encoder, size,
    limit, batch size, workers and device come from the run's config.json."""
    _, out = trained
    step0 = _ckpt(out, "last.ckpt")["global_step"]
    split_file = out / "splits.csv"
    split_before = split_file.read_bytes(), split_file.stat().st_mtime_ns
    args = ["train", "--data", str(data_root), "--out", str(out), "--epochs", "2", "--resume"]
    rc = cli.main(args)
    assert (split_file.read_bytes(), split_file.stat().st_mtime_ns) == split_before  # not rewritten
    return rc, out, step0, _epochs(out / "metrics.csv")


@pytest.mark.slow
def test_resume_continues(resumed):
    rc, out, step0, epochs = resumed
    assert rc == 0
    assert 1 in epochs
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["epochs"], cfg["encoder"], cfg["size"], cfg["limit"]) == (2, "resnet18", 64, 4)
    ckpt = _ckpt(out, "last.ckpt")
    assert step0 == 2  # 4 images, batch 2
    assert ckpt["global_step"] == 2 * step0  # continued, not restarted
    assert ckpt["lr_schedulers"][0]["T_max"] == 2  # the cosine schedule follows the new --epochs
    assert read_config(out / "model.safetensors").size == 64


@pytest.mark.slow
def test_train_into_a_run_folder_needs_resume(resumed, data_root, caplog):
    _, out, _, _ = resumed
    before = (out / "config.json").read_bytes()
    with caplog.at_level(logging.ERROR, logger="lungseg"):
        assert cli.main(_train_args(data_root, out, "--epochs", "1")) == 2
    assert "already holds a run: --resume to continue it" in caplog.text
    assert (out / "config.json").read_bytes() == before
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]


@pytest.mark.slow
def test_last_checkpoint_is_written_every_epoch(data_root, tmp_path, monkeypatch):
    """last.ckpt must hold the latest epoch even when validation got worse (Lightning's
    save_last only writes it in epochs that improve the best checkpoint)."""
    monkeypatch.setattr(lungseg.train, "confusion", _worse_every_call())
    torch.set_num_threads(1)
    assert cli.main(_train_args(data_root, tmp_path, "--epochs", "2")) == 0
    assert _ckpt(tmp_path, "best.ckpt")["epoch"] == 0  # validation only got worse after epoch 0
    assert _ckpt(tmp_path, "last.ckpt")["epoch"] == 1


@pytest.mark.parametrize("stop", ["SIGTERM", "Ctrl-C"])
def test_a_run_stopped_by_sigterm_leaves_its_best_model_and_a_tidy_log(
    data_root, tmp_path, monkeypatch, caplog, stop
):
    """A job's time limit (SIGTERM) or Ctrl-C in epoch 1: model.safetensors holds epoch 0,
    metrics.csv has one row per epoch, the exit status says which (Lightning's own: 0 and 1),
    and --resume finishes the run."""
    import signal

    start = lungseg.train.LungSegModule.on_train_epoch_start

    def stop_in_epoch_1(self):
        start(self)
        if self.current_epoch == 1 and stop == "SIGTERM":
            os.kill(os.getpid(), signal.SIGTERM)
        elif self.current_epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(lungseg.train.LungSegModule, "on_train_epoch_start", stop_in_epoch_1)
    torch.set_num_threads(1)
    with pytest.raises(SystemExit) as e:
        cli.main(_train_args(data_root, tmp_path, "--epochs", "3"))
    assert e.value.code == (143 if stop == "SIGTERM" else 130)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C works again
    assert "model.safetensors holds the best epoch so far" in caplog.text
    assert read_config(tmp_path / "model.safetensors").encoder == "resnet18"
    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows if r.get("val_iou")] == ["0"]
    assert len({r["epoch"] for r in rows}) == len(rows)  # one row per epoch
    monkeypatch.undo()
    assert cli.main(_train_args(data_root, tmp_path, "--epochs", "3", "--resume")) == 0
    assert _epochs(tmp_path / "metrics.csv") == {0, 1, 2}


def _worse_every_call():
    """A stand-in for metrics.confusion whose scores only get worse."""
    calls = []

    def confusion(pred, truth):
        calls.append(1)
        return SimpleNamespace(iou=1.0 - 0.01 * len(calls), dice=1.0 - 0.01 * len(calls))

    return confusion


@pytest.mark.slow
def test_resume_of_a_moved_run_keeps_its_best_checkpoint(data_root, tmp_path, monkeypatch):
    """A run folder copied elsewhere and resumed: the earlier best stays best.ckpt (Lightning
    forgets the best score when the checkpoint folder changed) and no best-v1.ckpt appears."""
    monkeypatch.setattr(lungseg.train, "confusion", _worse_every_call())
    torch.set_num_threads(1)
    first, moved = tmp_path / "first", tmp_path / "elsewhere" / "run"
    assert cli.main(_train_args(data_root, first, "--epochs", "1")) == 0
    shutil.copytree(first, moved)
    untouched = {p: p.stat().st_mtime_ns for p in first.rglob("*")}
    args = ["train", "--data", str(data_root), "--out", str(moved), "--epochs", "2", "--resume"]
    assert cli.main(args) == 0
    assert sorted(p.name for p in (moved / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert _ckpt(moved, "best.ckpt")["epoch"] == 0 and _ckpt(moved, "last.ckpt")["epoch"] == 1
    best, _ = load_model(moved / "checkpoints" / "best.ckpt")
    exported, _ = load_model(moved / "model.safetensors")
    for k, v in best.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(exported.state_dict()[k], v.half().float(), rtol=0, atol=0)
    assert {p: p.stat().st_mtime_ns for p in first.rglob("*")} == untouched


@pytest.mark.slow
def test_resume_reads_best_score_saved_under_model_checkpoint_key(data_root, tmp_path, monkeypatch):
    """Runs started before RunCheckpoint have their best score saved under ModelCheckpoint's
    key (Lightning keys callback state by class name): resumed, it is read, so a worse epoch
    does not replace best.ckpt; and new runs keep saving it under that key."""
    monkeypatch.setattr(lungseg.train, "confusion", _worse_every_call())
    torch.set_num_threads(1)
    assert cli.main(_train_args(data_root, tmp_path, "--epochs", "1")) == 0
    last = tmp_path / "checkpoints" / "last.ckpt"
    ckpt = _ckpt(tmp_path, "last.ckpt")
    old = {re.sub(r"^\w+\{", "ModelCheckpoint{", k): v for k, v in ckpt["callbacks"].items()}
    torch.save({**ckpt, "callbacks": old}, last)  # (as the earlier version saved it)
    args = ["train", "--data", str(data_root), "--out", str(tmp_path), "--epochs", "2", "--resume"]
    assert cli.main(args) == 0
    assert _ckpt(tmp_path, "best.ckpt")["epoch"] == 0 and _ckpt(tmp_path, "last.ckpt")["epoch"] == 1
    assert all(k.startswith("ModelCheckpoint{") for k in _ckpt(tmp_path, "last.ckpt")["callbacks"])


@pytest.mark.slow
def test_a_start_that_failed_before_a_checkpoint_leaves_no_run(data_root, tmp_path, caplog):
    """A start that fails after config.json and splits.csv are written (here: in its first
    epoch) holds no run: --resume says to start a new one, and a new run may use the folder."""

    def crash(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    with pytest.MonkeyPatch.context() as m:
        m.setattr(L.Trainer, "fit", crash)
        with pytest.raises(RuntimeError):
            cli.main(_train_args(data_root, tmp_path, "--epochs", "1"))
    assert {p.name for p in tmp_path.iterdir()} >= {"config.json", "splits.csv"}
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()
    rows = (tmp_path / "splits.csv").read_text().replace(",train", ",test")
    (tmp_path / "splits.csv").write_text(rows)  # a new run does not read the leftover split
    with caplog.at_level(logging.INFO, logger="lungseg"):
        assert cli.main(_train_args(data_root, tmp_path, "--epochs", "1", "--resume")) == 2
        assert "start a new run" in caplog.text
        torch.set_num_threads(1)
        assert cli.main(_train_args(data_root, tmp_path, "--epochs", "1")) == 0
    assert "overwritten" in caplog.text
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert ",train" in (tmp_path / "splits.csv").read_text()


@pytest.mark.slow
def test_encoder_weights_file_is_read_once(data_root, tmp_path, monkeypatch):
    """The --encoder-weights file is read at the start only: reloading the best checkpoint at
    the end does not need it. (Also: 3 training films in batches of 2, whose last batch of 1
    would stop BatchNorm, are trained on.)"""
    torchvision = pytest.importorskip("torchvision")
    weights = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    fit = L.Trainer.fit

    def fit_then_delete(self, *args, **kwargs):
        fit(self, *args, **kwargs)
        weights.unlink()  # e.g. a scratch copy removed while the job ran

    monkeypatch.setattr(L.Trainer, "fit", fit_then_delete)
    torch.set_num_threads(1)
    out = tmp_path / "run"
    args = _train_args(data_root, out, "--epochs", "1", "--limit", "3")
    assert cli.main([*args, "--encoder-weights", str(weights)]) == 0
    assert not weights.exists() and (out / "model.safetensors").is_file()
    assert json.loads((out / "config.json").read_text())["encoder_weights"] == str(weights)


@pytest.mark.slow
def test_resume_keeps_earlier_epochs_in_log(resumed):
    _, _, _, epochs = resumed
    assert epochs == {0, 1}


@pytest.mark.slow
def test_max_minutes_stops_early_and_keeps_the_best_model(data_root, tmp_path):
    """A wall-time limit (a GPU job's time slot) ends the run early, and the run still leaves
    its best model behind."""
    torch.set_num_threads(1)
    out = tmp_path / "run"
    start = time.monotonic()
    rc = cli.main(_train_args(data_root, out, "--epochs", "500", "--max-minutes", "0.05"))
    assert time.monotonic() - start < 60  # 500 epochs of this take several minutes
    assert rc == 0
    assert json.loads((out / "config.json").read_text())["max_minutes"] == 0.05
    epochs = _epochs(out / "metrics.csv")
    assert 0 in epochs and len(epochs) < 500
    assert (out / "model.safetensors").is_file()


def test_bf16_training_on_the_cpu_leaves_an_ordinary_model(data_root, tmp_path, monkeypatch):
    """--precision bf16-mixed on a CPU (fast with bf16 instructions): Lightning trains in bf16
    autocast with the network in channels_last, and the model file is the usual fp16 NCHW one,
    whose .ckpt and .safetensors give the same network."""
    torch.set_num_threads(1)
    seen = {}
    fit = L.Trainer.fit

    def spy(trainer, module, *args, **kwargs):
        seen["precision"] = trainer.precision
        seen["layout"] = module.model.encoder.layer1[0].conv2.weight.is_contiguous(
            memory_format=torch.channels_last
        )
        return fit(trainer, module, *args, **kwargs)

    monkeypatch.setattr(L.Trainer, "fit", spy)
    out = tmp_path / "bf16"
    assert cli.main(_train_args(data_root, out, "--epochs", "1", "--precision", "bf16-mixed")) == 0
    assert seen == {"precision": "bf16-mixed", "layout": True}
    assert json.loads((out / "config.json").read_text())["precision"] == "bf16-mixed"
    x = torch.rand(1, 1, 64, 64)
    outputs = []
    for name in ("model.safetensors", "checkpoints/best.ckpt"):
        model, config = load_model(out / name)
        assert config.size == 64
        with torch.no_grad():
            outputs.append(model(x))
    assert torch.isfinite(outputs[0]).all()
    assert torch.allclose(outputs[0], outputs[1], atol=0.05)  # fp16 file against fp32 checkpoint


@pytest.mark.parametrize("lr,finished", [(3e-4, False), (1e-5, True)])
def test_the_resume_log_says_whether_the_schedule_had_finished(caplog, lr, finished):
    """Resumed halfway, the log says the rate goes on down (it said, cut short, that the run had
    finished its schedule); resumed at --min-lr, that a new run is needed to train higher."""
    from types import SimpleNamespace

    from lungseg.train import LungSegModule

    sched = SimpleNamespace(scheduler=SimpleNamespace(T_max=8))
    opt = SimpleNamespace(param_groups=[{"lr": lr}])
    stub = SimpleNamespace(
        trainer=SimpleNamespace(lr_scheduler_configs=[sched], optimizers=[opt]),
        current_epoch=3,
        cfg=SimpleNamespace(epochs=8, min_lr=1e-5),
    )
    with caplog.at_level(logging.INFO, logger="lungseg"):
        LungSegModule.on_train_start(stub)
    assert "resumed at epoch 3" in caplog.text
    assert ("finished its schedule" in caplog.text) == finished
    assert caplog.text.rstrip().endswith("higher rate)" if finished else "last epoch")
