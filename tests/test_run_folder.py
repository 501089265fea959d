"""`lungseg train`'s run folder without training: a new run refuses a folder holding a run,
--resume continues with the run's saved config (only RESUMABLE settings may change), and
--device cuda without a GPU is refused, all before anything is written."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict

import pytest
import torch
from conftest import train_fails

# Lightning binds its log handlers to the sys.stderr of the moment it is first imported: first
# imported inside a capsys test, later logs go to that test's closed stream ("--- Logging
# error ---" and a traceback on stderr). Imported here, it binds to pytest's lasting stream.
import lungseg.train  # noqa: F401
from lungseg.runconfig import RESUMABLE, TrainConfig, run_config

# ---------------------------------------------------------------- run folders and --resume


@pytest.fixture
def run(tmp_path):
    """A run folder as `lungseg train` leaves it (the checkpoint's content is not read here)."""
    out = tmp_path / "run"
    saved = TrainConfig(
        data="films", out=str(out), encoder="resnet18", size=64, epochs=1, workers=0
    )
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "last.ckpt").write_bytes(b"")
    (out / "config.json").write_text(json.dumps(asdict(saved), indent=2))
    return out


def test_resume_continues_with_the_runs_settings(run):
    cfg = run_config({"out": str(run), "data": "films"}, resume=True)
    assert (cfg.encoder, cfg.size, cfg.epochs, cfg.workers) == ("resnet18", 64, 1, 0)
    # the same values given again are fine; RESUMABLE options may change
    changed = {"data": "moved/films", "epochs": 3, "max_minutes": 5.0, "workers": 2,
               "precision": "bf16-mixed"}  # fmt: skip
    cfg = run_config(
        {"out": str(run), "encoder": "resnet18", "size": 64, "device": "cpu", **changed},
        resume=True,
    )
    assert asdict(cfg) == {**asdict(TrainConfig(**json.loads((run / "config.json").read_text()))),
                           "out": str(run), "device": "cpu", **changed}  # fmt: skip
    assert set(changed) | {"device"} == set(RESUMABLE)


def test_resume_takes_a_path_given_again_relative_as_the_same(run, monkeypatch):
    """config.json holds --init (and --data, --encoder-weights) absolute; the same file given
    again from its own folder is no change."""
    saved = json.loads((run / "config.json").read_text())
    model = run.parent / "start.safetensors"
    (run / "config.json").write_text(json.dumps({**saved, "init": str(model)}))
    monkeypatch.chdir(run.parent)
    cfg = run_config({"out": str(run), "init": "start.safetensors"}, resume=True)
    assert cfg.init == str(model)
    with pytest.raises(ValueError, match="--init 'other.safetensors'"):
        run_config({"out": str(run), "init": "other.safetensors"}, resume=True)


def test_resume_refuses_other_changed_settings(run):
    before = (run / "config.json").read_bytes()
    with pytest.raises(ValueError, match=r"--size 512 \(run: 64\)") as e:
        run_config({"out": str(run), "size": 512, "encoder": "resnet50"}, resume=True)
    assert "--encoder 'resnet50' (run: 'resnet18')" in str(e.value)
    with pytest.raises(ValueError, match="--no-geometry-aug"):
        run_config({"out": str(run), "geometry_aug": False}, resume=True)
    assert (run / "config.json").read_bytes() == before


def test_resume_needs_config_and_last_checkpoint(run, tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        run_config({"out": str(tmp_path / "none")}, resume=True)
    (run / "checkpoints" / "last.ckpt").unlink()
    with pytest.raises(FileNotFoundError, match="last.ckpt"):
        run_config({"out": str(run)}, resume=True)


def test_resume_ignores_unknown_saved_settings(run, caplog):
    saved = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**saved, "from_the_future": 1}))
    with caplog.at_level(logging.WARNING):
        assert run_config({"out": str(run)}, resume=True).size == 64
    assert "from_the_future" in caplog.text


def test_new_run_refuses_a_folder_holding_a_run(run):
    with pytest.raises(ValueError, match="already holds a run: --resume"):
        run_config({"out": str(run)})
    (run / "config.json").unlink()  # a checkpoint alone is a run too
    with pytest.raises(ValueError, match="already holds a run"):
        run_config({"out": str(run)})
    (run / "checkpoints" / "last.ckpt").rename(run / "checkpoints" / "best.ckpt")
    with pytest.raises(ValueError, match="already holds a run"):
        run_config({"out": str(run)})
    # config.json and splits.csv of a start that failed before its first checkpoint: no run
    (run / "checkpoints" / "best.ckpt").unlink()
    (run / "config.json").write_text("{}")
    (run / "splits.csv").write_text("dataset,id,split\n")
    assert run_config({"out": str(run)}).out == str(run)
    with pytest.raises(FileNotFoundError, match="start a new run"):
        run_config({"out": str(run)}, resume=True)


def test_device_cuda_without_a_gpu_is_refused_before_anything_is_written(
    run, tmp_path, monkeypatch
):
    """Lightning would stop later with a MisconfigurationException traceback, after config.json
    and splits.csv are written. A run made on a GPU resumes elsewhere with --device cpu."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "new"
    for call in (lambda: run_config({"out": str(out), "device": "cuda"}),
                 lambda: lungseg.train.fit(TrainConfig(out=str(out), device="cuda"))):  # fmt: skip
        with pytest.raises(ValueError, match="--device cuda: PyTorch sees no CUDA GPU"):
            call()
    assert not out.exists()
    saved = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**saved, "device": "cuda"}))
    with pytest.raises(ValueError, match="--device cuda"):
        run_config({"out": str(run)}, resume=True)
    assert run_config({"out": str(run), "device": "cpu"}, resume=True).device == "cpu"


def test_cli_resume_with_a_changed_setting_leaves_the_run_alone(run, caplog, capsys):
    before = (run / "config.json").read_bytes()
    message = train_fails(["--out", str(run), "--resume", "--size", "512"], caplog, capsys)
    assert "--size 512 (run: 64)" in message
    assert (run / "config.json").read_bytes() == before


def test_resume_without_a_run_is_an_error(tmp_path, caplog, capsys):
    out = tmp_path / "empty_run"
    message = train_fails(["--data", str(tmp_path), "--out", str(out), "--resume"], caplog, capsys)
    assert "--resume" in message and "config.json" in message
    assert not out.exists()
