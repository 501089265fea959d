"""Checks on the real data at ../shared/data (skipped when it is absent): the layouts are found,
the fixed split gives the documented counts, and pairs load as binary masks."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from lungseg import datasets
from lungseg.imageio import read_mask
from lungseg.metrics import side_dice
from lungseg.pairs import check_pairs
from lungseg.splits import assign_splits, read_splits, select

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

pytestmark = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"real data not available at {DATA} (optional for tests)"
)

EXPECTED = {  # dataset: (total, train, val, test) as documented in shared/data/README.md
    "montgomery": (138, 96, 14, 28),
    "shenzhen": (118, 83, 11, 24),
    "jsrt": (247, 149, 24, 74),
}


@pytest.fixture(scope="module")
def discovered():
    return datasets.discover(DATA)


def test_discover_counts_and_no_problems(discovered):
    samples, problems = discovered
    assert problems == [], "\n".join(map(str, problems))
    counts = Counter(s.dataset for s in samples)
    assert counts == {ds: n[0] for ds, n in EXPECTED.items()}
    labels = Counter((s.dataset, s.label) for s in samples)
    assert labels[("jsrt", 1)] + labels[("jsrt", 0)] == 247
    assert all(s.label in (0, 1) for s in samples)


def test_fixed_split_counts(discovered, tmp_path):
    samples, _ = discovered
    splits = assign_splits(DATA, samples, tmp_path)
    assert (tmp_path / "splits.csv").is_file()
    assert read_splits(tmp_path / "splits.csv") == read_splits(DATA / "splits.csv")
    for ds, (_, n_train, n_val, n_test) in EXPECTED.items():
        assert len(select(samples, splits, "train", [ds])) == n_train, ds
        assert len(select(samples, splits, "val", [ds])) == n_val, ds
        assert len(select(samples, splits, "test", [ds])) == n_test, ds
    assert len(select(samples, splits, "test")) == 28 + 24 + 74
    assert len(select(samples, splits, "train")) == 96 + 83 + 149


def test_some_pairs_load_binary(discovered):
    samples, _ = discovered
    by_ds: dict[str, list] = {}
    for s in samples:
        by_ds.setdefault(s.dataset, []).append(s)
    chosen = [g[i] for g in by_ds.values() for i in (0, len(g) - 1)]
    good, problems = check_pairs(chosen)
    assert problems == [], "\n".join(map(str, problems))
    assert len(good) == len(chosen) == 6
    for s, image, mask in good:
        assert image.dtype == np.float32 and image.ndim == 2
        assert 0 <= image.min() and image.max() <= 1 and image.std() > 0.05
        assert mask.shape == image.shape and mask.dtype == np.uint8
        assert set(np.unique(mask)) == {0, 1}
        assert 0.1 < mask.mean() < 0.6, (s.id, mask.mean())  # lungs: a plausible fraction
        if s.dataset == "jsrt":
            assert image.shape == (1024, 1024)
            assert "heart" in s.extra


def test_scr_named_lungs_lie_where_side_dice_puts_them(discovered):
    """SCR names each lung for the patient (`left_lung`: the patient's left, on the image right);
    `side_dice` (evaluate's per-lung Dice) splits a mask into its lungs by position: the two
    agree on real films, so a per-lung score compares the same lung."""
    samples, _ = discovered
    jsrt = [s for s in samples if s.dataset == "jsrt"][::25]
    assert len(jsrt) == 10
    for s in jsrt:
        right, left = (read_mask(s.extra[k]) > 0 for k in ("right_lung", "left_lung"))
        labels = (right * 1 + left * 2).astype(np.uint8)
        assert side_dice(labels, right | left) == {"right_dice": 1.0, "left_dice": 1.0}, s.id
