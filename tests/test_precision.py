"""`--precision` of predict and evaluate: bf16 autocast on a CPU when asked for (about 1.9x faster
with AVX-512 BF16 or AMX), fp32 there by default, and refused for ONNX models."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lungseg import runners
from lungseg.cli import main
from lungseg.metrics import confusion
from lungseg.model import DEFAULT_WEIGHTS
from lungseg.phantom import make_phantom
from lungseg.segmenter import Segmenter


def _conv_dtypes(seg: Segmenter, image: np.ndarray):
    """The dtype of the first convolution's output while `seg` segments `image`, and the result."""
    seen = []
    hook = seg.runner.model.encoder.conv1.register_forward_hook(
        lambda module, args, out: seen.append(out.dtype)
    )
    try:
        return seen, seg(image)
    finally:
        hook.remove()


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="shipped model not present")
def test_bf16_on_the_cpu_runs_in_bf16_and_agrees_with_fp32():
    import torch

    ph = make_phantom(size=512, seed=3)
    fp32, bf16 = (Segmenter.default(device="cpu", precision=p) for p in ("auto", "bf16-mixed"))
    seen32, r32 = _conv_dtypes(fp32, ph.image)
    seen16, r16 = _conv_dtypes(bf16, ph.image)
    assert seen32 == [torch.float32] and seen16 == [torch.bfloat16]
    assert r16.prob.dtype == np.float32 and r16.mask.shape == ph.image.shape
    assert not np.array_equal(r16.prob, r32.prob)  # really another computation
    assert confusion(r16.mask, r32.mask).dice >= 0.99
    assert confusion(r16.mask, ph.lungs).dice >= 0.85


def test_predict_and_evaluate_pass_the_precision_on(tiny_model, tmp_path, monkeypatch, synth):
    used = []
    real = runners.TorchRunner.__call__

    def spy(self, x):
        used.append(self.bf16)
        return real(self, x)

    monkeypatch.setattr(runners.TorchRunner, "__call__", spy)
    Image.fromarray(np.full((40, 36), 128, np.uint8)).save(tmp_path / "f.png")
    argv = ["predict", str(tmp_path / "f.png"), "--model", str(tiny_model), "--device", "cpu"]
    assert main([*argv, "--out", str(tmp_path / "a"), "--precision", "bf16-mixed"]) == 0
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    assert used == [True, False]  # default on a CPU: fp32
    assert (tmp_path / "a" / "f_mask.png").is_file()
    synth.save_png(tmp_path / "mine" / "images" / "p.png", synth.chest_image(seed=0))
    synth.save_mask(tmp_path / "mine" / "masks" / "p.png", np.logical_or(*synth.lung_masks()))
    argv = ["evaluate", "--model", str(tiny_model), "--data", str(tmp_path / "mine"), "--split"]
    assert main([*argv, "all", "--out", str(tmp_path / "e"), "--precision", "bf16-mixed"]) == 0
    assert used == [True, False, True]


def test_precision_is_checked_and_refused_for_onnx(tiny_model, tmp_path, caplog):
    with pytest.raises(ValueError, match="--precision must be one of"):
        Segmenter(tiny_model, device="cpu", precision="fp8")
    with pytest.raises(ValueError, match="--precision must be one of"):
        runners.make_runner(tmp_path / "m.onnx", precision="fp8")
    (tmp_path / "f.png").write_bytes(b"")
    (tmp_path / "m.onnx").write_bytes(b"not a model")
    argv = ["predict", str(tmp_path / "f.png"), "--out", str(tmp_path / "o")]
    assert main([*argv, "--model", str(tmp_path / "m.onnx"), "--precision", "bf16-mixed"]) == 2
    assert "--precision is for PyTorch models" in caplog.text
    with pytest.raises(ValueError, match="not a readable ONNX model"):  # fp32 is what ONNX runs
        runners.make_runner(tmp_path / "m.onnx", precision="32-true")


def test_the_cpu_is_told_when_bf16_pays_and_warned_when_it_is_emulated(
    tiny_model, monkeypatch, caplog
):
    caplog.set_level("INFO", logger="lungseg")
    for native in (True, False):
        monkeypatch.setattr(runners, "cpu_has_bf16", lambda native=native: native)
        for precision in ("auto", "32-true", "bf16-mixed"):
            caplog.clear()
            Segmenter(tiny_model, device="cpu", precision=precision)
            hint = "this CPU has bf16 instructions" in caplog.text
            warned = "this CPU has no bf16 instructions" in caplog.text
            assert hint == (native and precision == "auto")
            assert warned == (not native and precision == "bf16-mixed")


def test_run_and_metrics_record_whether_bf16_ran(tiny_model, tmp_path, synth, caplog):
    import json

    Image.fromarray(np.full((40, 36), 128, np.uint8)).save(tmp_path / "f.png")
    argv = ["predict", str(tmp_path / "f.png"), "--model", str(tiny_model), "--out"]
    assert main([*argv, str(tmp_path / "a"), "--precision", "bf16-mixed"]) == 0
    assert json.loads((tmp_path / "a" / "run.json").read_text())["bf16"] is True
    assert main([*argv, str(tmp_path / "a"), "--resume"]) == 0  # fp32 now: warned, not refused
    assert "were segmented in bf16" in caplog.text
    assert json.loads((tmp_path / "a" / "run.json").read_text())["bf16"] is False
    synth.save_png(tmp_path / "mine" / "images" / "p.png", synth.chest_image(seed=0))
    synth.save_mask(tmp_path / "mine" / "masks" / "p.png", np.logical_or(*synth.lung_masks()))
    argv = ["evaluate", "--model", str(tiny_model), "--data", str(tmp_path / "mine"), "--split"]
    for precision, bf16 in (("bf16-mixed", True), ("auto", False)):
        out = tmp_path / f"e_{precision}"
        assert main([*argv, "all", "--out", str(out), "--precision", precision]) == 0
        assert json.loads((out / "metrics.json").read_text())["protocol"]["bf16"] is bf16
