"""Tiny end-to-end training through the CLI (64 px, 1-2 epochs, 4 images), resume, and the
self-describing model files; local encoder weights; the validation score that picks the best
checkpoint. (Settings and their checks, without training: test_train_config.py.)"""

from __future__ import annotations

import csv
import json
import logging
import shutil
import time
from dataclasses import asdict
from types import SimpleNamespace

import pytest
import torch

from lungseg import cli
from lungseg.model import build_model, load_encoder_weights, load_model, read_config


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
    rc = cli.main(_train_args(data_root, out, "--epochs", "1"))
    return rc, out


@pytest.mark.slow
def test_train_writes_run_folder(trained, data_root):
    rc, out = trained
    assert rc == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["encoder"] == "resnet18" and cfg["size"] == 64 and cfg["epochs"] == 1
    assert cfg["limit"] == 4 and cfg["data"] == str(data_root)
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
    step0 = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)[
        "global_step"
    ]
    args = ["train", "--data", str(data_root), "--out", str(out), "--epochs", "2", "--resume"]
    rc = cli.main(args)
    return rc, out, step0, _epochs(out / "metrics.csv")


@pytest.mark.slow
def test_resume_continues(resumed):
    rc, out, step0, epochs = resumed
    assert rc == 0
    assert 1 in epochs
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["epochs"], cfg["encoder"], cfg["size"], cfg["limit"]) == (2, "resnet18", 64, 4)
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
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
    import lungseg.train

    monkeypatch.setattr(lungseg.train, "confusion", _worse_every_call())
    torch.set_num_threads(1)
    assert cli.main(_train_args(data_root, tmp_path, "--epochs", "2")) == 0
    load = lambda name: torch.load(  # noqa: E731
        tmp_path / "checkpoints" / name, map_location="cpu", weights_only=False
    )
    assert load("best.ckpt")["epoch"] == 0  # validation only got worse after epoch 0
    assert load("last.ckpt")["epoch"] == 1


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
    import lungseg.train

    monkeypatch.setattr(lungseg.train, "confusion", _worse_every_call())
    torch.set_num_threads(1)
    first, moved = tmp_path / "first", tmp_path / "elsewhere" / "run"
    assert cli.main(_train_args(data_root, first, "--epochs", "1")) == 0
    shutil.copytree(first, moved)
    untouched = {p: p.stat().st_mtime_ns for p in first.rglob("*")}
    args = ["train", "--data", str(data_root), "--out", str(moved), "--epochs", "2", "--resume"]
    assert cli.main(args) == 0
    load = lambda name: torch.load(  # noqa: E731
        moved / "checkpoints" / name, map_location="cpu", weights_only=False
    )
    assert sorted(p.name for p in (moved / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert load("best.ckpt")["epoch"] == 0 and load("last.ckpt")["epoch"] == 1
    best, _ = load_model(moved / "checkpoints" / "best.ckpt")
    exported, _ = load_model(moved / "model.safetensors")
    for k, v in best.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(exported.state_dict()[k], v.half().float(), rtol=0, atol=0)
    assert {p: p.stat().st_mtime_ns for p in first.rglob("*")} == untouched


@pytest.mark.slow
def test_encoder_weights_file_is_read_once(data_root, tmp_path, monkeypatch):
    """The --encoder-weights file is read at the start only: reloading the best checkpoint at
    the end does not need it. (Also: 3 training films in batches of 2, whose last batch of 1
    would stop BatchNorm, are trained on.)"""
    import lightning as L

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


def test_val_iou_is_the_mean_over_images(monkeypatch):
    """3 validation films in batches of 2: the epoch's val_iou (which picks the best checkpoint)
    is the plain mean of the per-image IoUs, not weighted by the size of their batch."""
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    import lungseg.train
    from lungseg.runconfig import TrainConfig
    from lungseg.train import LungSegModule

    def lung_fraction(pred, truth):  # each film's "IoU": the share of its mask that is lung
        return SimpleNamespace(iou=float(truth.mean()), dice=float(truth.mean()) / 2)

    monkeypatch.setattr(lungseg.train, "confusion", lung_fraction)
    torch.manual_seed(0)
    fractions = [0.25, 0.5, 1.0]
    masks = torch.zeros(3, 1, 64, 64)
    for mask, f in zip(masks, fractions, strict=True):
        mask[:, : int(64 * f)] = 1
    loader = DataLoader(TensorDataset(torch.rand(3, 1, 64, 64), masks), batch_size=2)
    module = LungSegModule(asdict(TrainConfig(encoder="resnet18", size=64)))
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    [logged] = trainer.validate(module, loader, verbose=False)
    assert logged["val_iou"] == pytest.approx(sum(fractions) / 3)  # 0.583; by batch: 0.5
    assert logged["val_dice"] == pytest.approx(sum(fractions) / 6)


@pytest.mark.slow
def test_resume_keeps_earlier_epochs_in_log(resumed):
    _, _, _, epochs = resumed
    assert epochs == {0, 1}


def test_resume_without_a_run_is_an_error(data_root, tmp_path, caplog, capsys):
    out = tmp_path / "empty_run"
    with caplog.at_level(logging.ERROR, logger="lungseg"):
        rc = cli.main(_train_args(data_root, out, "--epochs", "1", "--resume"))
    assert rc == 2
    messages = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert "--resume" in messages and "config.json" in messages
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert not out.exists()


def test_train_on_missing_data_is_an_error(tmp_path, caplog):
    with caplog.at_level(logging.ERROR, logger="lungseg"):
        rc = cli.main(_train_args(tmp_path / "nodata", tmp_path / "run", "--epochs", "1"))
    assert rc == 2
    assert any("folder not found" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- encoder weights


def test_load_encoder_weights_from_torchvision_state_dict(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    sd = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / "resnet18.pth"
    torch.save(sd, path)
    model = build_model("resnet18")
    before = model.encoder.layer1[0].conv1.weight.detach().clone()
    load_encoder_weights(model, path)
    conv1 = model.encoder.conv1.weight.detach()
    assert conv1.shape == (64, 1, 7, 7)
    torch.testing.assert_close(conv1, sd["conv1.weight"].sum(dim=1, keepdim=True))
    torch.testing.assert_close(
        model.encoder.layer1[0].conv1.weight.detach(), sd["layer1.0.conv1.weight"]
    )
    assert not torch.equal(before, sd["layer1.0.conv1.weight"])
    torch.testing.assert_close(model.encoder.bn1.running_var, sd["bn1.running_var"])


def test_load_encoder_weights_safetensors_and_prefixes(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    from safetensors.torch import save_file

    sd = torchvision.models.resnet18(weights=None).state_dict()
    wrapped = {f"module.{k}": v.contiguous() for k, v in sd.items()}
    save_file(wrapped, str(tmp_path / "enc.safetensors"))
    model = build_model("resnet18")
    load_encoder_weights(model, tmp_path / "enc.safetensors")
    torch.testing.assert_close(
        model.encoder.layer4[1].conv2.weight.detach(), sd["layer4.1.conv2.weight"]
    )
    # a Lightning-style {"state_dict": ...} file works too
    torch.save({"state_dict": {f"encoder.{k}": v for k, v in sd.items()}}, tmp_path / "l.pth")
    model = build_model("resnet18")
    load_encoder_weights(model, tmp_path / "l.pth")
    torch.testing.assert_close(
        model.encoder.conv1.weight.detach(), sd["conv1.weight"].sum(dim=1, keepdim=True)
    )


def test_load_encoder_weights_mismatch(tmp_path):
    torch.save(
        {"features.0.weight": torch.zeros(8, 3, 3, 3), "classifier.bias": torch.zeros(10)},
        tmp_path / "other.pth",
    )
    with pytest.raises(ValueError, match="other.pth"):
        load_encoder_weights(build_model("resnet18"), tmp_path / "other.pth")


def test_load_encoder_weights_wrong_architecture(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), tmp_path / "r50.pth")
    with pytest.raises(ValueError, match="encoder tensors match"):
        load_encoder_weights(build_model("resnet18"), tmp_path / "r50.pth")


def test_load_encoder_weights_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        load_encoder_weights(build_model("resnet18"), tmp_path / "nothing.pth")


def test_load_model_missing_and_unknown_format(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "none.safetensors")
    (tmp_path / "m.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="unknown model format"):
        load_model(tmp_path / "m.bin")


def test_balanced_sampler_draws_each_dataset_equally():
    from types import SimpleNamespace

    from lungseg.train import balanced_sampler

    pairs = [
        (SimpleNamespace(dataset=d), None, None)
        for d, n in [("a", 90), ("b", 9), ("c", 1)]
        for _ in range(n)
    ]
    torch.manual_seed(0)
    drawn = [pairs[i][0].dataset for _ in range(30) for i in balanced_sampler(pairs)]
    assert len(drawn) == 30 * len(pairs)
    share = {d: drawn.count(d) / len(drawn) for d in "abc"}
    assert all(abs(v - 1 / 3) < 0.03 for v in share.values()), share


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
