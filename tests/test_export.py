"""ONNX export: parity with PyTorch, self-describing file, dynamic batch, static int8, CLI.

A tiny seeded from-scratch model (resnet18 at 64 px) keeps this offline and fast. Its head is
re-centred so that about half of the pixels are foreground: a from-scratch model otherwise gives
near-constant logits, and all-background masks would agree trivially.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from lungseg import cli  # noqa: E402
from lungseg.export import compare, export_onnx, model_inputs  # noqa: E402
from lungseg.files import file_sha256  # noqa: E402
from lungseg.model import ModelConfig, build_model, read_config, save_safetensors  # noqa: E402
from lungseg.runners import OnnxRunner, TorchRunner, make_runner  # noqa: E402

SIZE = 64
CONFIG = ModelConfig(encoder="resnet18", size=SIZE)


def _film(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A crude synthetic chest film: bright body, two dark elliptic 'lungs', noise; uint8."""
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    image = 0.75 + 0.1 * rng.standard_normal((h, w))
    for cx in (0.3, 0.7):
        a, b = rng.uniform(0.12, 0.18), rng.uniform(0.25, 0.35)
        image[((xx - cx) / a) ** 2 + ((yy - 0.5) / b) ** 2 < 1] -= 0.45
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def films(tmp_path_factory) -> Path:
    """Six synthetic PNGs of assorted sizes in nested folders (the calibration/check folder)."""
    root = tmp_path_factory.mktemp("films")
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(96, 80), (80, 96), (72, 72), (100, 90), (64, 80), (90, 70)]):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(exist_ok=True)
        Image.fromarray(_film(rng, h, w)).save(folder / f"film{i}.png")
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, films) -> Path:
    torch.manual_seed(0)
    net = build_model("resnet18").eval()
    x = torch.from_numpy(model_inputs(sorted(films.rglob("*.png")), CONFIG))
    with torch.no_grad():
        net.segmentation_head[0].bias -= net(x).median()  # about half foreground
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_safetensors(net, CONFIG, path)
    return path


@pytest.fixture(scope="module")
def fp32_onnx(tiny_model, tmp_path_factory) -> Path:
    """Exported through the CLI, as a user would."""
    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    assert cli.main(["export", "--model", str(tiny_model), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def int8_onnx(tiny_model, films, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("onnx8") / "tiny_int8.onnx"
    return export_onnx(tiny_model, out, int8=True, calib=films)


def test_int8_on_few_calibration_films_warns(tiny_model, films, tmp_path, caplog):
    one = tmp_path / "one"
    one.mkdir()
    first = sorted(films.rglob("*.png"))[0]
    (one / first.name).write_bytes(first.read_bytes())
    export_onnx(tiny_model, tmp_path / "m.onnx", int8=True, calib=one)
    assert "int8 calibrated on only 1 film(s)" in caplog.text and "32 or more" in caplog.text


def _inputs(films: Path) -> np.ndarray:
    return model_inputs(sorted(films.rglob("*.png")), CONFIG)


def test_fp32_matches_pytorch(tiny_model, fp32_onnx, films):
    x = _inputs(films)
    got = OnnxRunner(fp32_onnx)(x)
    ref = TorchRunner(tiny_model, device="cpu")(x)
    assert got.shape == ref.shape == (len(x), SIZE, SIZE)
    np.testing.assert_allclose(got, ref, atol=1e-4)
    assert 0.1 < (ref >= 0.5).mean() < 0.9  # the comparison is not between constant maps


def test_onnx_is_self_describing(fp32_onnx, tiny_model):
    assert read_config(fp32_onnx) == CONFIG
    assert OnnxRunner(fp32_onnx).config == CONFIG
    props = {p.key: p.value for p in onnx.load(str(fp32_onnx)).metadata_props}
    assert props["lungseg_precision"] == "fp32" and props["lungseg_version"]
    assert props["lungseg_source_sha256"] == file_sha256(tiny_model)  # the weights it came from
    assert json.loads(props["lungseg_check"])["max_abs_logit_diff"] < 1e-3


def test_an_export_of_the_shipped_model_is_known_as_such(
    tiny_model, fp32_onnx, tmp_path, monkeypatch
):
    """Evaluate warns when the shipped model, which records no films, is scored off the project's
    split: its copies and exports are the shipped model too (they gave no warning)."""
    from lungseg import protocol
    from lungseg.model import DEFAULT_WEIGHTS

    assert not protocol.is_shipped(tiny_model) and not protocol.is_shipped(fp32_onnx)
    shutil.copyfile(DEFAULT_WEIGHTS, tmp_path / "copy.safetensors")
    assert protocol.is_shipped(DEFAULT_WEIGHTS)
    assert protocol.is_shipped(tmp_path / "copy.safetensors")
    shipped = protocol.is_shipped
    monkeypatch.setattr("lungseg.export.is_shipped", lambda p: p == tiny_model or shipped(p))
    export_onnx(tiny_model, tmp_path / "s.onnx")  # (the tiny model stands in for the shipped)
    assert protocol.is_shipped(tmp_path / "s.onnx")


def test_runner_threads_sleep_rather_than_spin_unless_asked(fp32_onnx):
    def spinning(runner: OnnxRunner) -> str | None:
        try:
            opts = runner.session.get_session_options()
            return opts.get_session_config_entry("session.intra_op.allow_spinning")
        except RuntimeError:  # not set: ONNX Runtime's default, which spins
            return None

    assert spinning(OnnxRunner(fp32_onnx)) == "0"  # predict: CPU left to post-processing
    assert spinning(OnnxRunner(fp32_onnx, spin=True)) in (None, "1")


def test_dynamic_batch(fp32_onnx, films):
    x = _inputs(films)[:3]
    runner = OnnxRunner(fp32_onnx)
    assert runner.session.get_inputs()[0].name == "image"
    assert runner.session.get_outputs()[0].name == "logits"
    one = [runner(x[i : i + 1]) for i in range(3)]
    three = runner(x)
    assert one[0].shape == (1, SIZE, SIZE) and three.shape == (3, SIZE, SIZE)
    np.testing.assert_allclose(np.concatenate(one), three, atol=1e-5)


def test_compare_reports_agreement(tiny_model, fp32_onnx, films):
    result = compare(tiny_model, fp32_onnx, films)
    assert result["n"] == 6
    assert result["max_abs_logit_diff"] < 1e-3 and result["dice_min"] > 0.99


def test_int8_is_loadable_and_agrees(tiny_model, int8_onnx, fp32_onnx, films):
    assert read_config(int8_onnx) == CONFIG
    ops = {n.op_type for n in onnx.load(str(int8_onnx)).graph.node}
    assert "QuantizeLinear" in ops  # really quantized
    assert int8_onnx.stat().st_size < 0.5 * fp32_onnx.stat().st_size
    x = _inputs(films)
    got, ref = OnnxRunner(int8_onnx)(x), OnnxRunner(fp32_onnx)(x)
    # masks thresholded where about half the pixels are foreground, so quantization noise
    # near the threshold does flip pixels: most must still agree
    agree = ((got >= 0.5) == (ref >= 0.5)).mean()
    result = compare(tiny_model, int8_onnx, x)
    # (seen on an AVX2 CPU: 97.7% of pixels agree, Dice 0.977, correlation 0.998)
    assert agree > 0.9 and result["dice_mean"] > 0.9, (agree, result)
    assert np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.95


def test_int8_needs_calibration_images(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="--calib"):
        export_onnx(tiny_model, tmp_path / "x.onnx", int8=True)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        export_onnx(tiny_model, tmp_path / "x.onnx", int8=True, calib=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        export_onnx(tiny_model, tmp_path / "x.onnx", int8=True, calib=tmp_path / "empty")
    assert not (tmp_path / "x.onnx").exists()


def test_cli_reports_user_errors(tiny_model, tmp_path):
    args = ["export", "--model", str(tiny_model), "--out", str(tmp_path / "x.onnx"), "--int8"]
    assert cli.main(args) == 2
    assert cli.main(["export", "--model", str(tmp_path / "nope.safetensors"), "--out",
                     str(tmp_path / "x.onnx")]) == 2  # fmt: skip


def test_onnx_predict_runs_without_torch(fp32_onnx, films, tmp_path):
    """An ONNX model needs only onnxruntime: predict must not import torch (seconds of start-up
    and a GB of memory on a hospital PC)."""
    import subprocess
    import sys

    code = (
        "import sys; from lungseg import cli; "
        f"rc = cli.main(['predict', {str(films)!r}, '--out', {str(tmp_path)!r}, "
        f"'--model', {str(fp32_onnx)!r}]); "
        "print(rc, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-2:] == ["0", "False"], out.stdout + out.stderr
    assert len(list(tmp_path.glob("*_mask.png"))) == 6


def test_an_export_that_does_not_reproduce_pytorch_fails_and_leaves_no_file(
    tiny_model, films, tmp_path, monkeypatch
):
    """A fault in the export (here: another network's weights written) is caught by the check
    against PyTorch: an error naming the figures, and no .onnx file a user might go on with."""
    from lungseg import export

    real = export._export_fp32
    torch.manual_seed(1)
    other = build_model("resnet18").eval()
    monkeypatch.setattr(export, "_export_fp32", lambda net, size, path: real(other, size, path))
    out = tmp_path / "bad.onnx"
    with pytest.raises(ValueError, match="does not reproduce PyTorch"):
        export_onnx(tiny_model, out, check=films)
    assert not out.exists()
    assert cli.main(["export", "--model", str(tiny_model), "--out", str(out)]) == 2


def test_upper_case_suffixes_and_onnx_refusals(tiny_model, fp32_onnx, tmp_path, monkeypatch):
    upper = tmp_path / "TINY.SAFETENSORS"
    upper.write_bytes(tiny_model.read_bytes())
    assert read_config(upper) == CONFIG
    assert export_onnx(upper, tmp_path / "TINY.ONNX").is_file()
    with pytest.raises(ValueError, match="--device cuda is for PyTorch models"):
        make_runner(fp32_onnx, device="cuda")  # ONNX Runtime runs on the CPU here
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # the `onnx` extra not installed
    assert cli.main(["export", "--model", str(tiny_model), "--out", str(tmp_path / "y.onnx")]) == 2


def test_a_failed_export_leaves_an_earlier_file_as_it_was(tiny_model, fp32_onnx, tmp_path):
    """An export that fails after the network was written (here: a --check folder with no
    readable image) leaves the .onnx already at --out untouched, and no other file beside it."""
    out = tmp_path / "keep.onnx"
    out.write_bytes(fp32_onnx.read_bytes())
    (tmp_path / "check").mkdir()
    (tmp_path / "check" / "b.png").write_text("not an image")
    with pytest.raises(ValueError, match=r"none of the 1 images in .*check could be read"):
        export_onnx(tiny_model, out, check=tmp_path / "check")
    assert out.read_bytes() == fp32_onnx.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["check", "keep.onnx"]


def test_an_exported_model_keeps_the_record_of_its_training_films(tiny_model, tmp_path):
    from lungseg.model import load_model, save_safetensors, trained_on

    net, config = load_model(tiny_model)
    films = {("jsrt", "JPCLN001"): "train", ("jsrt", "JPCNN002"): "val"}
    save_safetensors(net, config, tmp_path / "m.safetensors", films=films)
    out = export_onnx(tmp_path / "m.safetensors", tmp_path / "m.onnx")
    assert trained_on(out) == films
