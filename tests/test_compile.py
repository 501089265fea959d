"""`predict --compile`: torch.compile'd model, the same masks as eager, and a folder's smaller
last batch padded rather than compiled a second time."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from lungseg.cli import main
from lungseg.predict import predict_paths


@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on CPU needs a C++ compiler")
def test_predict_compiled_matches_eager_without_recompiling(tiny_model, tmp_path, monkeypatch):
    import torch._dynamo

    rng = np.random.default_rng(5)
    (tmp_path / "in").mkdir()
    for k in range(5):  # batches of 2, 2 and 1
        Image.fromarray(rng.integers(0, 255, (50, 44), np.uint8)).save(tmp_path / "in" / f"{k}.png")
    kw = {"model": str(tiny_model), "device": "cpu", "batch_size": 2, "overlays": False}
    assert predict_paths([str(tmp_path / "in")], str(tmp_path / "eager"), **kw) == []
    torch._dynamo.reset()
    monkeypatch.setattr(torch._dynamo.config, "error_on_recompile", True)
    assert predict_paths([str(tmp_path / "in")], str(tmp_path / "comp"), compile=True, **kw) == []
    torch._dynamo.reset()
    big = tmp_path / "in" / "0.png"  # the first film fills the memory budget: a first batch
    Image.fromarray(rng.integers(0, 255, (200, 200), np.uint8)).save(big)  # of 1, then of 2
    kw["read_ahead_pixels"] = 200 * 200
    assert predict_paths([str(tmp_path / "in")], str(tmp_path / "one"), compile=True, **kw) == []
    for k in range(5):
        a = np.asarray(Image.open(tmp_path / "eager" / f"{k}_mask.png"))
        b = np.asarray(Image.open(tmp_path / "comp" / f"{k}_mask.png"))
        assert a.shape == (50, 44) and np.mean(a != b) < 0.001  # kernels may round differently
    assert np.asarray(Image.open(tmp_path / "one" / "0_mask.png")).shape == (200, 200)


def test_compile_is_refused_for_an_onnx_model(tmp_path):
    (tmp_path / "f.png").write_bytes(b"")
    argv = ["predict", str(tmp_path / "f.png"), "--out", str(tmp_path / "o"), "--compile"]
    assert main([*argv, "--model", str(tmp_path / "m.onnx")]) == 2
