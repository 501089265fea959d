"""Small user-facing parts of the benchmark and device scripts: a clear argparse error for a batch
BatchNorm cannot train on, end-to-end ratios when the matching model-only variant was not run,
the device pack's summary without wheels, and a read-only git lookup for the JSON reports."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tools")]
import device_pack  # noqa: E402
import inference  # noqa: E402
import inference_table  # noqa: E402
import report_json  # noqa: E402
import train_step  # noqa: E402


def test_train_step_refuses_a_batch_of_one(capsys):
    with pytest.raises(SystemExit) as exit_:
        train_step.main(["--batch", "1", "--out", "unused.json"])
    assert exit_.value.code == 2
    assert "--batch: 1: use 2 or more (BatchNorm)" in capsys.readouterr().err


@pytest.mark.parametrize("steps", ["0", "-1"])
def test_train_step_refuses_fewer_than_one_step(steps, tmp_path, capsys):
    out = tmp_path / "unused.json"  # small and fp32 only, should a step ever be timed
    argv = ["--steps", steps, "--sizes", "64", "--precisions", "32-true", "--out", str(out)]
    with pytest.raises(SystemExit) as exit_:
        train_step.main(argv)
    assert exit_.value.code == 2
    assert f"--steps: {steps}: steps must be at least 1" in capsys.readouterr().err
    assert not out.exists()


def _batches(ms: float) -> dict:
    return {b: {"ms_per_image": ms, "cpu_ms_per_image": 2 * ms} for b in ("1", "8")}


def _e2e(variant: str) -> dict:
    return {"variant": variant, "images": 8, "ms_per_image": 12.0, "images_per_s": 83.3,
            "cpu_ms_per_image": 30.0, "rss_peak_mb": 900.0, "device": "cpu"}  # fmt: skip


def test_e2e_ratios_use_the_measured_variant_of_the_same_runtime():
    fp32 = {"variant": "torch_fp32", "batches": _batches(10.0)}
    cl = {"variant": "torch_channels_last", "batches": _batches(8.0)}
    r = inference_table.e2e_ratios(_e2e("predict_torch"), [fp32, cl])
    assert r["model_variant"] == "torch_channels_last" and r["vs_model"] == {"1": 1.5, "8": 1.5}

    r = _e2e("predict_torch") | inference_table.e2e_ratios(_e2e("predict_torch"), [fp32])
    assert r["model_variant"] == "torch_fp32"
    assert r["vs_model"] == {"1": 1.2, "8": 1.2} and r["cpu_vs_model"] == {"1": 1.5, "8": 1.5}
    wall, cpu = inference_table.e2e_lines(r).splitlines()
    assert wall.endswith("1.20x batch 1, 1.20x batch 8 of torch_fp32 model-only")
    assert cpu.endswith("1.50x batch 1, 1.50x batch 8 of torch_fp32 model-only")


def test_inference_prints_with_the_table_module():
    assert inference.e2e_ratios is inference_table.e2e_ratios
    assert inference.e2e_lines is inference_table.e2e_lines
    assert inference.table is inference_table.table


def test_e2e_ratios_without_a_model_only_run_say_so():
    r = _e2e("predict_ort_int8")
    r |= inference_table.e2e_ratios(r, [{"variant": "torch_fp32", "batches": _batches(10.0)}])
    assert r["model_variant"] is None and r["vs_model"] == r["cpu_vs_model"] == {}
    for line in inference_table.e2e_lines(r).splitlines():
        assert line.endswith("n/a (no model-only run of that runtime)")


def test_inference_reuses_an_onnx_file_only_when_made_from_the_model(tiny_model, tmp_path):
    """Exports are found by file name: two runs' model.safetensors share it, so the second's
    timings were the first's ONNX file's (reused on the name and config alone)."""
    from types import SimpleNamespace

    import torch

    from lungseg.model import ModelConfig, build_model, save_safetensors

    torch.manual_seed(1)
    other = tmp_path / "other" / tiny_model.name
    other.parent.mkdir()
    save_safetensors(build_model("resnet18"), ModelConfig(encoder="resnet18", size=64), other)
    args = SimpleNamespace(onnx=str(tmp_path / "onnx"), int8_calib=None, images=None,
                           calib_limit=4)  # fmt: skip
    fp32 = inference.prepare_onnx(args, tiny_model, tmp_path)["ort_fp32"]
    first = fp32.stat().st_mtime_ns
    assert (
        inference.prepare_onnx(args, tiny_model, tmp_path)["ort_fp32"].stat().st_mtime_ns == first
    )
    inference.prepare_onnx(args, other, tmp_path)  # the same file name, other weights
    assert fp32.stat().st_mtime_ns != first


def test_typos_in_benchmark_options_are_refused_before_any_work(capsys):
    """A variant name with a typo was timed under it or dropped; a condition like opacity@1
    gave an empty table; an input size SMP cannot run failed after the other variants."""
    import quality_flag
    import tta

    for main, argv in (
        (inference.main, ["--variants", "torch_fp32x"]),
        (quality_flag.main, ["--data", "unused", "--conditions", "opacity@1"]),
        (tta.main, ["--data", "unused", "--sizes", "300"]),
    ):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "unknown variant 'torch_fp32x'" in err and "unknown ['opacity@1']" in err
    assert "must be a positive multiple of 16, got 300" in err


def test_device_pack_without_wheels_reports_none(tmp_path, synth, capsys):
    root = synth.make_dataset_root(tmp_path / "data", n_per_group=2, jsrt=False)
    out = tmp_path / "pack"
    device_pack.main(["--data", str(root), "--out", str(out), "--size", "64", "--no-wheels"])
    said = capsys.readouterr().out
    assert "wheels: skipped (--no-wheels), in" in said and "MiB from before" not in said
    assert not (out / "whl").exists()
    (out / "whl").mkdir()
    (out / "whl" / "old.whl").write_bytes(b"x" * 2**20)
    line = device_pack.summary(out, 3, ["train"], 64, wheels=False)
    assert f"skipped (--no-wheels), though {out / 'whl'} holds 1.0 MiB from before" in line
    assert device_pack.summary(out, 3, ["train"], 64, wheels=True).endswith(
        f"wheels: 1.0 MiB, in {out}"
    )


def test_device_pack_again_with_fewer_splits_holds_only_those(tmp_path, synth):
    """A second pack into the same folder (.device is reused) kept the first's films, which a
    new split then gave to train: val films trained on."""
    root = synth.make_dataset_root(tmp_path / "data", n_per_group=3, jsrt=False)
    out = tmp_path / "pack"
    argv = ["--data", str(root), "--out", str(out), "--size", "64", "--no-wheels"]
    device_pack.main([*argv, "--splits", "train", "val"])
    device_pack.main([*argv, "--splits", "train"])
    data = out / "data"
    with open(data / "splits.csv", newline="") as f:
        listed = {r["id"] for r in csv.DictReader(f)}
    assert {p.stem for p in (data / "CXR_png").iterdir()} == listed
    assert {p.stem for p in (data / "masks").iterdir()} == listed


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    ident = ["-c", "user.name=t", "-c", "user.email=t@t"]
    run = subprocess.run(["git", *ident, *args], cwd=repo, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_commit_leaves_the_git_index_alone(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.txt").write_text("a\n")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-q", "-m", "one")
    head = _git(repo, "rev-parse", "--short", "HEAD")
    index = repo / ".git" / "index"

    def stale() -> int:
        """Same content, new file mtime: a `git status` would refresh (rewrite) the index."""
        os.utime(repo / "a.txt", (2_000_000_000, 2_000_000_000))
        os.utime(index, (1_000_000_000, 1_000_000_000))
        return index.stat().st_mtime_ns

    before = stale()
    assert report_json.commit(repo) == head
    assert index.stat().st_mtime_ns == before
    (repo / "a.txt").write_text("b\n")
    assert report_json.commit(repo) == head + "+"
    assert index.stat().st_mtime_ns == before
    (repo / "a.txt").write_text("a\n")
    before = stale()
    _git(repo, "status", "--porcelain")  # the check above would catch the plain command
    assert index.stat().st_mtime_ns != before
