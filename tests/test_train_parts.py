"""Parts of training checked without a training run: local encoder weights and model files,
the validation score that picks the best checkpoint, the balanced sampler, checkpoint state."""

from __future__ import annotations

import re
from dataclasses import asdict
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.trainer.call import _call_callbacks_load_state_dict
from torch.utils.data import DataLoader, TensorDataset

import lungseg.train
from lungseg.model import build_model, load_encoder_weights, load_model
from lungseg.runconfig import TrainConfig
from lungseg.train import LungSegModule, RunCheckpoint, balanced_sampler

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
    with pytest.raises(ValueError, match="does not fit the resnet18 encoder, not loaded") as e:
        load_encoder_weights(build_model("resnet18"), tmp_path / "r50.pth", "resnet18")
    assert "another encoder" in str(e.value)


def test_load_encoder_weights_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        load_encoder_weights(build_model("resnet18"), tmp_path / "nothing.pth")


def test_load_model_missing_and_unknown_format(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "none.safetensors")
    (tmp_path / "m.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="unknown model format"):
        load_model(tmp_path / "m.bin")


def test_a_folder_given_as_the_model_is_called_a_folder(tmp_path):
    """Torch and ONNX runners alike (one check serves both)."""
    from lungseg.runners import make_runner

    (tmp_path / "run.onnx").mkdir()
    for folder in (tmp_path, tmp_path / "run.onnx"):
        with pytest.raises(FileNotFoundError, match="is a folder, not a model file; pass --model"):
            make_runner(folder)
    with pytest.raises(FileNotFoundError, match=r"none\.onnx not found; pass --model"):
        make_runner(tmp_path / "none.onnx")


# ---------------------------------------------------------------- training pieces


def test_val_iou_is_the_mean_over_images(monkeypatch):
    """3 validation films in batches of 2: the epoch's val_iou (which picks the best checkpoint)
    is the plain mean of the per-image IoUs, not weighted by the size of their batch."""

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


def test_a_diverging_run_stops_with_a_message_before_its_weights_are_saved(tmp_path):
    module = LungSegModule(asdict(TrainConfig(encoder="resnet18", size=64, lr=0.5)))
    calls = []

    def loss(logits, y):  # finite once, then NaN in training (as a too high rate makes it)
        calls.append(module.training)
        return logits.mean() * (1 if len(calls) == 1 or not module.training else float("nan"))

    module.loss = loss
    data = DataLoader(TensorDataset(torch.rand(4, 1, 64, 64), torch.ones(4, 1, 64, 64)), 2)
    saved = L.pytorch.callbacks.ModelCheckpoint(tmp_path, save_last=True)
    trainer = L.Trainer(accelerator="cpu", max_epochs=2, logger=False, callbacks=[saved],
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    with pytest.raises(ValueError, match=r"became NaN or infinite in epoch 0.*lower --lr \(this "):
        trainer.fit(module, data, data)
    assert calls.count(True) == 2  # both training steps of epoch 0 ran, then it stopped
    assert not list(tmp_path.glob("*.ckpt"))


def test_resuming_from_another_runs_checkpoint_is_refused_by_setting():
    cfg = asdict(TrainConfig(encoder="resnet18", size=64, out="runs/a"))
    module = LungSegModule(cfg)
    module.on_load_checkpoint({"hyper_parameters": cfg})  # its own: accepted
    for other in ({"encoder": "resnet34"}, {"size": 96, "fit": "crop"}, {"hist": "clahe"}):
        with pytest.raises(ValueError, match=r"runs/a/checkpoints/last.ckpt .* another run's"):
            module.on_load_checkpoint({"hyper_parameters": {**cfg, **other}})


def test_balanced_sampler_draws_each_dataset_equally():
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


@pytest.mark.parametrize("saved_as", ["ModelCheckpoint", "RunCheckpoint"])
def test_checkpoint_state_saved_by_earlier_versions_is_restored(tmp_path, saved_as):
    """Lightning finds a callback's state in a checkpoint by class name and settings: runs
    started before RunCheckpoint saved it as ModelCheckpoint{...}, the first RunCheckpoint
    version as RunCheckpoint{...}. Both are read (else --resume loses the best score)."""
    before = RunCheckpoint(tmp_path, "best", monitor="val_iou", mode="max")
    before.best_model_score = torch.tensor(0.9)
    key = re.sub(r"^\w+\{", saved_as + "{", before.state_key)
    now = RunCheckpoint(tmp_path, "best", monitor="val_iou", mode="max")
    trainer = SimpleNamespace(callbacks=[now])
    _call_callbacks_load_state_dict(trainer, {"callbacks": {key: before.state_dict()}})
    assert now.best_model_score == pytest.approx(0.9)
