"""benchmarks/robustness.py: each model's (and input size's) figures under its own key, and a
mistyped condition refused rather than dropped."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import robustness  # noqa: E402


def test_each_model_gets_its_own_figures(tmp_path, synth, tiny_model):
    root = synth.make_dataset_root(tmp_path / "data", n_per_group=3, jsrt=False)
    other = tmp_path / "other.safetensors"
    shutil.copy(tiny_model, other)
    out = tmp_path / "r.json"
    models = ["--models", str(tiny_model), str(other)]
    conditions = ["--conditions", "clean@0.0", "effusion@0.3"]
    robustness.main(["--data", str(root), *models, "--limit", "1", *conditions, "--out", str(out)])
    results = json.loads(out.read_text())["results"]
    assert sorted(results) == sorted([str(tiny_model), str(other)])
    assert all(sorted(r) == ["clean@0.0", "effusion@0.3"] for r in results.values())


def test_a_mistyped_condition_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        robustness.main(["--data", str(tmp_path), "--conditions", "opacity@1", "--out",
                         str(tmp_path / "r.json")])  # fmt: skip
    assert "--conditions: unknown ['opacity@1']" in capsys.readouterr().err
