"""benchmarks/gate.py's rules: a candidate passes only when better on val and not worse on the
synthetic and corrupted-film checks than the issues and the baseline allow."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gate  # noqa: E402


def _figures(val=0.949, demo=0.90, phantom=0.88, mean=0.93, worst=0.80) -> dict:
    return {
        "val": {"overall": val},
        "demo": demo,
        "phantoms": {d: {"mean_dice": phantom} for d in ("none", "opacity", "white-out")},
        "robustness": {c: {"mean_iou": mean, "min_iou": worst} for c in gate.CONDITIONS},
    }


def _failed(cand: dict, base: dict) -> list[str]:
    return [rule for rule, ok, _ in gate.rules(cand, base) if not ok]


def test_a_candidate_better_everywhere_passes_and_equal_val_does_not():
    base = _figures()
    assert _failed(_figures(val=0.950, demo=0.93, phantom=0.90, mean=0.94, worst=0.85), base) == []
    assert _failed(copy.deepcopy(base), base) == ["val IoU above the baseline's"]


def test_each_floor_and_slack_is_enforced():
    base = _figures()
    better = dict(val=0.951)
    assert _failed(_figures(demo=0.899, **better), base) == ["demo phantom Dice >= 0.9"]
    cand = _figures(**better)
    cand["phantoms"]["white-out"]["mean_dice"] = 0.849  # below issue 6's floor and the slack
    assert _failed(cand, base) == [
        "white-out phantoms mean Dice >= 0.85",
        "white-out phantoms within 0.02 of the baseline",
    ]
    cand = _figures(**better)
    cand["phantoms"]["none"]["mean_dice"] = 0.859  # clean phantoms: only the slack applies
    assert _failed(cand, base) == ["none phantoms within 0.02 of the baseline"]
    cand = _figures(**better)
    cand["robustness"]["portable@1.0"]["min_iou"] = 0.74  # its worst film 0.06 below
    assert len(_failed(cand, base)) == 1 and "portable@1.0" in _failed(cand, base)[0]
    cand = _figures(**better, mean=0.924)  # every condition's mean 0.006 below
    assert len(_failed(cand, base)) == len(gate.CONDITIONS)
