"""Tiny end-to-end training through the CLI (64 px, 1-2 epochs, 4 images), resume, and the
self-describing model files; local encoder weights."""

from __future__ import annotations

import csv
import json
import logging
import time

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
    """Resume the 1-epoch run to 2 epochs (runs after the tests that read the 1-epoch files)."""
    _, out = trained
    step0 = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)[
        "global_step"
    ]
    rc = cli.main(_train_args(data_root, out, "--epochs", "2", "--resume"))
    return rc, out, step0, _epochs(out / "metrics.csv")


@pytest.mark.slow
def test_resume_continues(resumed):
    rc, out, step0, epochs = resumed
    assert rc == 0
    assert 1 in epochs
    assert json.loads((out / "config.json").read_text())["epochs"] == 2
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert step0 == 2  # 4 images, batch 2
    assert ckpt["global_step"] == 2 * step0  # continued, not restarted
    assert (out / "model.safetensors").is_file()


@pytest.mark.slow
def test_last_checkpoint_is_written_every_epoch(data_root, tmp_path, monkeypatch):
    """last.ckpt must hold the latest epoch even when validation got worse (Lightning's
    save_last only writes it in epochs that improve the best checkpoint)."""
    from types import SimpleNamespace

    import lungseg.train

    calls = []

    def worse_every_call(pred, truth):
        calls.append(1)
        return SimpleNamespace(iou=1.0 - 0.01 * len(calls), dice=1.0 - 0.01 * len(calls))

    monkeypatch.setattr(lungseg.train, "confusion", worse_every_call)
    torch.set_num_threads(1)
    assert cli.main(_train_args(data_root, tmp_path, "--epochs", "2")) == 0
    load = lambda name: torch.load(  # noqa: E731
        tmp_path / "checkpoints" / name, map_location="cpu", weights_only=False
    )
    assert load("best.ckpt")["epoch"] == 0  # validation only got worse after epoch 0
    assert load("last.ckpt")["epoch"] == 1


@pytest.mark.slow
def test_resume_keeps_earlier_epochs_in_log(resumed):
    _, _, _, epochs = resumed
    assert epochs == {0, 1}


@pytest.mark.slow
def test_resume_without_checkpoint_is_an_error(data_root, tmp_path, caplog, capsys):
    out = tmp_path / "empty_run"
    with caplog.at_level(logging.ERROR, logger="lungseg"):
        rc = cli.main(_train_args(data_root, out, "--epochs", "1", "--resume"))
    assert rc != 0
    messages = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert "--resume" in messages and "last.ckpt" in messages
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert not (out / "checkpoints" / "last.ckpt").exists()


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
