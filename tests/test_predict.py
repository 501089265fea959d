"""Segmenter, `lungseg predict`, `lungseg evaluate` and the demo through the CLI."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lungseg.cli import main
from lungseg.imageio import Radiograph
from lungseg.metrics import confusion
from lungseg.model import DEFAULT_WEIGHTS
from lungseg.phantom import make_phantom
from lungseg.segmenter import Segmenter

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def folder(tmp_path) -> Path:
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (90, 70), dtype=np.uint8)).save(d / "a.png")
    Image.fromarray(rng.integers(0, 65535, (50, 120), dtype=np.uint16)).save(d / "sub" / "b.png")
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(d / "c.jpg")
    return d


def test_predict_writes_mask_overlay_and_table_at_input_size(tiny_model, folder, tmp_path):
    out = tmp_path / "out"
    rc = main(["predict", str(folder), "--out", str(out), "--model", str(tiny_model), "--labels"])
    assert rc == 0
    for stem, (h, w) in {"a": (90, 70), "b": (50, 120), "c": (64, 64)}.items():
        mask = np.asarray(Image.open(out / f"{stem}_mask.png"))
        assert mask.shape == (h, w) and set(np.unique(mask)) <= {0, 255}
        assert np.asarray(Image.open(out / f"{stem}_overlay.png").convert("RGB")).shape == (h, w, 3)
        labels = np.asarray(Image.open(out / f"{stem}_labels.png"))
        assert ((labels > 0) == (mask > 0)).all()
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 3 and all(r["quality"] in ("ok", "check") for r in rows)
    assert len(json.loads((out / "results.json").read_text())) == 3
    flagged = any(r["quality"] == "check" for r in rows)  # their overlays on one sheet
    assert [p.name for p in out.glob("check_overlays_*.png")] == ["check_overlays_01.png"] * flagged


def test_predict_reads_jsrt_films_as_distributed(tiny_model, tmp_path):
    """A JSRT .IMG in a folder (raw, no header): segmented at its 2048 px, areas in mm² from
    its 0.175 mm pixels; an .IMG of another size is no film."""
    (tmp_path / "in").mkdir()
    rng = np.random.default_rng(0)
    rng.integers(0, 4096, (2048, 2048)).astype(">u2").tofile(tmp_path / "in" / "JPCNN001.IMG")
    (tmp_path / "in" / "disk.img").write_bytes(bytes(1000))
    out = tmp_path / "out"
    assert (
        main(["predict", str(tmp_path / "in"), "--out", str(out), "--model", str(tiny_model)]) == 0
    )
    assert np.asarray(Image.open(out / "JPCNN001_mask.png")).shape == (2048, 2048)
    (row,) = csv.DictReader(open(out / "results.csv"))
    area = int(row["right_area_px"]) + int(row["left_area_px"])
    mm2 = float(row["right_area_mm2"] or 0) + float(row["left_area_mm2"] or 0)
    assert row["file"].endswith("JPCNN001.IMG") and area > 0
    assert mm2 == pytest.approx(area * 0.175**2, rel=1e-3)


def test_predict_no_overlay_writes_masks_only(tiny_model, folder, tmp_path):
    out = tmp_path / "out"
    assert main(["predict", str(folder), "--out", str(out), "--model", str(tiny_model),
                 "--no-overlay"]) == 0  # fmt: skip
    assert sorted(p.name for p in out.glob("*.png")) == ["a_mask.png", "b_mask.png", "c_mask.png"]
    assert len(list(csv.DictReader(open(out / "results.csv")))) == 3


def test_the_summary_points_at_overlays_only_when_there_are_some(tmp_path, caplog):
    from lungseg.predict import _summary

    rows = {0: {"quality": "check"}, 1: {"quality": "ok"}}
    with caplog.at_level(logging.INFO, logger="lungseg"):
        _summary(rows, 0, [], [], 0, tmp_path)  # overlays written, no sheet
        _summary(rows, 0, [], None, 0, tmp_path)  # --no-overlay
    first, second = caplog.messages[-2:]
    assert "2 images segmented (1 flagged 'check': look at their overlays)" in first
    assert "(1 flagged 'check')," in second and "look at" not in second
    sheet = [tmp_path / "check_overlays_01.png"]  # a film of an earlier call flagged, none now
    with caplog.at_level(logging.INFO, logger="lungseg"):
        _summary({0: {"quality": "ok"}}, 0, [{"quality": "check"}], sheet, 0, tmp_path)
    assert "(0 flagged 'check'), 0 failed" in caplog.messages[-1]
    assert "earlier calls (1 flagged 'check': look at check_overlays_01.png ...)" in caplog.text


def test_predict_reports_bad_files_and_continues(tiny_model, folder, tmp_path, caplog):
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "empty.png").write_bytes(b"")
    out = tmp_path / "out"
    rc = main(["predict", str(folder), "--out", str(out), "--model", str(tiny_model)])
    assert rc == 1
    assert (out / "a_mask.png").is_file() and (out / "c_mask.png").is_file()
    text = caplog.text
    assert "broken.png" in text and "empty.png" in text
    errors = [r for r in csv.DictReader(open(out / "results.csv")) if r["quality"] == "error"]
    assert {Path(r["file"]).name for r in errors} == {"broken.png", "empty.png"}
    rows = json.loads((out / "results.json").read_text())  # every row with every column
    assert all(list(r) == list(rows[0]) for r in rows) and len(rows) == 5
    failed = [r for r in rows if r["quality"] == "error"]
    assert len(failed) == 2 and all(r["right_area_px"] is None and r["error"] for r in failed)


def test_predict_missing_input_is_an_error_not_a_traceback(tiny_model, tmp_path):
    assert main(["predict", str(tmp_path / "nope"), "--out", str(tmp_path / "o"),
                 "--model", str(tiny_model)]) == 2  # fmt: skip


def test_segmenter_accepts_arrays_and_maps_back_to_input_size(tiny_model):
    seg = Segmenter(tiny_model, device="cpu")
    for arr in (np.zeros((100, 40), np.uint8), np.full((33, 77), 0.5, np.float32)):
        r = seg(arr)
        assert r.mask.shape == arr.shape == r.labels.shape == r.prob.shape
        assert r.mask.dtype == np.uint8
    with pytest.raises(ValueError):
        seg(np.full((10, 10), 3.0))
    assert seg.batch([]) == []
    film = np.random.default_rng(0).integers(0, 256, (60, 50), dtype=np.uint8)
    x8, _ = seg.prepare(film)  # an 8-bit array is read as the PNG reader reads it, not as [0,1]
    np.testing.assert_array_equal(x8, seg.prepare(film.astype(np.float32) / 255)[0])
    assert x8.std() > 0.1
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        Segmenter(tiny_model, device="gpu")


@pytest.mark.parametrize("flipped, upside_down", [(False, False), (True, False), (True, True)])
def test_large_films_are_post_processed_on_a_smaller_grid_with_the_same_result(
    flipped, upside_down
):
    """A 1800x2100 phantom: post-processing on the 1024 px working grid and on the film's own
    grid give the same lungs (the model's output is the same; only the grid differs), also for
    a film displayed mirrored or upside down (its header says so: the result comes back so)."""
    ph = make_phantom(size=1800, seed=3, height=2100)
    shown = lambda a: a[:: -1 if upside_down else 1, :: -1 if flipped else 1]  # noqa: E731
    seg = Segmenter.default(device="cpu")
    rad = Radiograph(np.ascontiguousarray(shown(ph.image)), None, flipped, upside_down)
    x, geometry = seg.prepare(rad)
    prob = seg.runner(x[None, None])[0]
    assert seg.work_size == 1024
    work = seg.finish(prob, geometry, rad)
    seg.work_size = None
    full = seg.finish(prob, geometry, rad)
    assert work.mask.shape == full.mask.shape == work.prob.shape == ph.lungs.shape
    assert confusion(work.mask, full.mask).dice > 0.995
    for side in (1, 2):
        assert confusion(work.labels == side, full.labels == side).dice > 0.99
    assert confusion(work.mask, shown(ph.lungs)).dice > 0.85
    assert confusion(work.labels == 1, shown(ph.right)).dice > 0.85  # the patient's right
    assert work.stats["quality"] == full.stats["quality"]


@pytest.mark.parametrize("full_grid", [False, True])
def test_predict_full_grid_flag(tiny_model, tmp_path, full_grid):
    """`--full-grid` post-processes a large film on its own grid, as Segmenter(work_size=None)."""
    film = make_phantom(size=1100, seed=1, height=1300).image
    Image.fromarray((film * 255).round().astype(np.uint8)).save(tmp_path / "big.png")
    out = tmp_path / "out"
    argv = ["predict", str(tmp_path / "big.png"), "--out", str(out), "--model", str(tiny_model)]
    assert main(argv + ["--full-grid"] * full_grid) == 0
    seg = Segmenter(tiny_model, device="cpu", work_size=None if full_grid else 1024)
    expected = seg(tmp_path / "big.png").mask * 255
    np.testing.assert_array_equal(np.asarray(Image.open(out / "big_mask.png")), expected)


def test_same_stem_in_two_folders_gets_two_outputs(tiny_model, tmp_path):
    for sub in ("x", "y"):
        (tmp_path / "in" / sub).mkdir(parents=True)
        Image.fromarray(np.zeros((40, 40), np.uint8)).save(tmp_path / "in" / sub / "film.png")
    out = tmp_path / "out"
    assert (
        main(["predict", str(tmp_path / "in"), "--out", str(out), "--model", str(tiny_model)]) == 0
    )
    assert (out / "film_mask.png").is_file() and (out / "film_2_mask.png").is_file()


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data not present")
def test_evaluate_contract_on_shared_test_split(tiny_model, tmp_path):
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(tiny_model), "--data", str(SHARED), "--split", "test",
                 "--out", str(out)]) == 0  # fmt: skip
    m = json.loads((out / "metrics.json").read_text())
    assert {k: m[k]["n"] for k in ("montgomery", "shenzhen", "jsrt")} == {
        "montgomery": 28, "shenzhen": 24, "jsrt": 74}  # fmt: skip
    assert 0 <= m["overall"]["iou"] <= 1 and "original pixel grid" in m["protocol"]["note"]
    rows = list(csv.DictReader(open(out / "per_image.csv")))
    assert len(rows) == 126
    for row in rows:  # where each film disagrees most with its mask
        assert 0 <= float(row["largest_missed"]) <= 1 and float(row["largest_extra"]) >= 0
        assert row["largest_missed_place"] in ("under", "beside", "")
    assert (out / "results_grid.png").is_file() and any((out / "worst").iterdir())


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data not present")
def test_evaluate_threshold_override(tiny_model, tmp_path):
    """--threshold (to choose one on val) replaces the model's and changes the masks."""
    ious = {}
    for t in (0.05, 0.95):
        out = tmp_path / f"t{t}"
        args = ["evaluate", "--model", str(tiny_model), "--data", str(SHARED), "--split", "val"]
        args += ["--limit", "2", "--out", str(out), "--threshold", str(t), "--no-postprocess"]
        assert main(args) == 0
        m = json.loads((out / "metrics.json").read_text())
        assert m["protocol"]["threshold"] == t
        ious[t] = [r["iou"] for r in csv.DictReader(open(out / "per_image.csv"))]
    assert ious[0.05] != ious[0.95]
    assert main(["evaluate", "--model", str(tiny_model), "--data", str(SHARED), "--split", "val",
                 "--out", str(tmp_path / "bad"), "--threshold", "1.5"]) == 2  # fmt: skip


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="shipped model not present")
def test_shipped_model_segments_the_phantom():
    seg = Segmenter.default(device="cpu")
    dice, right_dice = [], []
    for seed in range(4):
        ph = make_phantom(size=512, seed=seed)
        r = seg(ph.image)
        dice.append(confusion(r.mask, ph.lungs).dice)
        right_dice.append(confusion(r.labels == 1, ph.right).dice)  # patient's right: image left
    assert np.mean(dice) >= 0.90 and min(dice) >= 0.85
    assert min(right_dice) >= 0.85


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="shipped model not present")
def test_demo_runs_with_shipped_model(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    assert (tmp_path / "demo" / "output" / "phantom_mask.png").is_file()
    printed = capsys.readouterr().out
    record = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert f"Dice against the phantom's own lung mask: {record['dice']:.3f}" in printed
    assert 0.8 < record["dice"] <= 1 and record["seed"] == 7 and record["size"] == 1024
