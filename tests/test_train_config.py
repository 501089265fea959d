"""`lungseg train`'s settings without training: TrainConfig checks, and the fix-it messages for
bad --encoder, --encoder-weights, --init and --data inputs, all before anything is written. The
run folder rules of a new run and of --resume are in test_run_folder.py."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import train_fails

# Lightning binds its log handlers to the sys.stderr of the moment it is first imported: first
# imported inside a capsys test, later logs go to that test's closed stream ("--- Logging
# error ---" and a traceback on stderr). Imported here, it binds to pytest's lasting stream.
import lungseg.train  # noqa: F401
from lungseg import cli
from lungseg.augment import CORRUPTIONS, Augmenter
from lungseg.model import (
    ModelConfig,
    build_model,
    load_encoder_weights,
    load_init,
    save_safetensors,
)
from lungseg.runconfig import TrainConfig


@pytest.mark.parametrize(
    "settings, option",
    [
        ({"size": 100}, "--size"),
        ({"size": 0}, "--size"),
        ({"max_minutes": 0}, "--max-minutes"),
        ({"max_minutes": -1}, "--max-minutes"),
        ({"max_minutes": float("inf")}, "--max-minutes"),  # (a timedelta overflows)
        ({"max_minutes": float("nan")}, "--max-minutes"),
        ({"max_minutes": 1e12}, "--max-minutes"),
        ({"p_corrupt": -0.1}, "--p-corrupt"),
        ({"p_corrupt": 1.5}, "--p-corrupt"),
        ({"lr": 0.0}, "--lr"),
        ({"lr": -1e-3, "min_lr": 0.0}, "--lr"),
        ({"lr": float("inf")}, "--lr"),  # (NaN fails `> 0` already)
        ({"lr": float("nan")}, "--lr"),
        ({"lr": 10.0}, "--lr"),
        ({"lr": 1e-3, "min_lr": 1e-2}, "--min-lr"),
        ({"min_lr": -1e-5}, "--min-lr"),
        ({"batch_size": 1}, "--batch-size"),
        ({"workers": -1}, "--workers"),
        ({"epochs": 0}, "--epochs"),
        ({"fit": "stretch"}, "--fit"),
        ({"device": "gpu"}, "--device"),
        ({"precision": "16-mixed"}, "--precision"),
        ({"datasets": ["shenzhen", "Shenzen"]}, "--datasets"),
    ],
)
def test_config_refuses_settings_that_cannot_train(settings, option):
    with pytest.raises(ValueError, match=re.escape(option)):
        TrainConfig(**settings)


def test_config_accepts_valid_settings():
    cfg = TrainConfig(size=48, max_minutes=0.05, p_corrupt=1.0, min_lr=1e-3, corruptions=[])
    assert cfg.model_config().size == 48  # DeepLabV3+ needs multiples of 16, not of 32
    assert TrainConfig(datasets=["Shenzhen", " JSRT"]).datasets == ["shenzhen", "jsrt"]
    ModelConfig(size=64)
    with pytest.raises(ValueError, match="multiple of 16"):
        ModelConfig(size=100)


def test_unknown_corruption_lists_the_valid_names():
    with pytest.raises(ValueError, match="--corruptions") as e:
        TrainConfig(corruptions=["opacity", "efusion"])
    assert "'efusion'" in str(e.value) and all(c in str(e.value) for c in CORRUPTIONS)
    with pytest.raises(ValueError, match="efusion"):
        Augmenter(("efusion",))


def test_unknown_encoder_suggests_names():
    with pytest.raises(ValueError, match="resnet19") as e:
        build_model("resnet19")
    assert "resnet18" in str(e.value)


# ---------------------------------------------------------------- weight files


@pytest.mark.parametrize("kind", ["garbage", "whole_model", "list", "safetensors"])
def test_unreadable_encoder_weights_name_the_file_and_the_format(tmp_path, kind):
    path = tmp_path / ("enc.safetensors" if kind == "safetensors" else "enc.pth")
    if kind == "whole_model":
        torch.save(torch.nn.Linear(2, 2), path)  # a pickled module, not its state dict
    elif kind == "list":
        torch.save([torch.zeros(2)], path)
    else:
        path.write_bytes(b"not a weight file at all" * 10)
    with pytest.raises(ValueError, match=re.escape(str(path))) as e:
        load_encoder_weights(build_model("resnet18"), path)
    assert "state dict" in str(e.value) and "state_dict()" in str(e.value)


@pytest.fixture(scope="module")
def mobilenet_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("init") / "mobilenet.safetensors"
    save_safetensors(build_model("mobilenet_v2"), ModelConfig("mobilenet_v2", size=64), path)
    return path


def test_init_checks_the_file_and_its_encoder(tmp_path, mobilenet_file):
    model = build_model("resnet18")
    with pytest.raises(FileNotFoundError, match="--init") as e:
        load_init(model, tmp_path / "nope.safetensors", "resnet18")
    assert "--model" not in str(e.value)
    with pytest.raises(ValueError, match="--encoder mobilenet_v2"):
        load_init(model, mobilenet_file, "resnet18")
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(ValueError, match="onnx"):
        load_init(model, tmp_path / "m.onnx", "resnet18")
    target = build_model("mobilenet_v2")
    load_init(target, mobilenet_file, "mobilenet_v2")  # a different size is fine (fine-tuning)
    source = build_model("mobilenet_v2")
    assert not torch.equal(target.decoder.block1[0].weight, source.decoder.block1[0].weight)


# ---------------------------------------------------------------- through the command line


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--encoder", "resnet19"], "resnet18"),
        (["--size", "100"], "multiple of 16"),
        (["--size", "0"], "--size"),
        (["--corruptions", "opacity,efusion"], "effusion"),
        (["--max-minutes", "0"], "--max-minutes"),
        (["--max-minutes", "-1"], "--max-minutes"),
        (["--p-corrupt", "2"], "--p-corrupt"),
        (["--lr", "1e-4", "--min-lr", "1e-3"], "--min-lr"),
        (["--init", "missing.safetensors"], "--init"),
        (["--datasets", "shenzen"], "valid names are jsrt, montgomery, shenzhen"),
        (["--device", "cuda"], "--device cuda: PyTorch sees no CUDA GPU"),
    ],
)
def test_cli_bad_options_stop_before_anything_is_written(
    tmp_path, caplog, capsys, monkeypatch, args, expected
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run"
    args = ["--out", str(out), "--data", str(tmp_path), "--encoder", "resnet18", *args]
    assert expected in train_fails(args, caplog, capsys)
    assert not out.exists()


def test_cli_bad_weight_files_stop_before_anything_is_written(
    tmp_path, caplog, capsys, mobilenet_file
):
    out = tmp_path / "run"
    (tmp_path / "garbage.pth").write_bytes(b"\x80\x02garbage")
    base = ["--out", str(out), "--data", str(tmp_path), "--encoder", "resnet18"]
    message = train_fails(
        [*base, "--encoder-weights", str(tmp_path / "garbage.pth")], caplog, capsys
    )
    assert "garbage.pth" in message and "state dict" in message
    message = train_fails([*base, "--init", str(mobilenet_file)], caplog, capsys)
    assert "--encoder mobilenet_v2" in message
    assert not out.exists()


def test_train_on_missing_data_is_an_error(tmp_path, caplog, capsys):
    args = [
        "--data",
        str(tmp_path / "none"),
        "--out",
        str(tmp_path / "run"),
        "--encoder",
        "resnet18",
    ]
    assert "folder not found" in train_fails(args, caplog, capsys)


def test_train_options_default_to_none_and_help_shows_the_config_defaults():
    """Defaults of None tell the options given from those left out (see run_config); the
    defaults the help names are TrainConfig's."""
    parser = cli.build_parser()
    train = next(a for a in parser._actions if a.dest == "command").choices["train"]
    defaults = TrainConfig()
    for action in train._actions:
        if action.dest in ("help", "verbose", "resume", "out", "no_corruptions", "no_geometry_aug"):
            continue
        assert action.default is None, action.dest
        shown = re.search(r"\(default: ([^);]+)", action.help or "")  # (default: 8; at least 2)
        if shown:
            want = getattr(defaults, action.dest)
            text = shown.group(1)
            got = text.split(",") if isinstance(want, list) else type(want)(text)
            assert got == want, action.dest
