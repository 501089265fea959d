"""`evaluate` on small synthetic data: which split it scores (the run's, the data root's found from
a sub-folder), --strict, a selection where every pair fails, and its input checks."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lungseg import datasets
from lungseg.cli import main
from lungseg.evaluate import evaluate, table
from lungseg.segmenter import Segmenter
from lungseg.splits import read_splits, write_splits


@pytest.fixture
def root(tmp_path, synth):
    """12 pairs: Montgomery and Shenzhen (combined layout), 3 per (dataset, label) group, and
    the data's own splits.csv with val = the first film of each group."""
    root = synth.make_dataset_root(tmp_path / "data", n_per_group=3, jsrt=False)
    samples, _ = datasets.discover(root)
    split = {(s.dataset, s.id): "train" for s in samples}
    for s in samples:
        if s.id[-6:-2] in ("0001", "0101"):
            split[(s.dataset, s.id)] = "val"
    write_splits(root / "splits.csv", split)
    return root


def _ids(out):
    with open(out / "per_image.csv", newline="") as f:
        return sorted(r["id"] for r in csv.DictReader(f))


DATA_VAL = ["CHNCXR_0001_0", "CHNCXR_0101_1", "MCUCXR_0001_0", "MCUCXR_0101_1"]


def _own_films(synth, folder: Path, n: int) -> None:
    """`folder`/images/p0.png ... and their lung masks in `folder`/masks/ (a user's own data)."""
    left, right = synth.lung_masks()
    for k in range(n):
        synth.save_png(folder / "images" / f"p{k}.png", synth.chest_image(seed=k))
        synth.save_mask(folder / "masks" / f"p{k}.png", left | right)


def test_subfolder_uses_the_data_roots_split(root, tiny_model, tmp_path):
    """--data ROOT/chest-xray-masks scores ROOT/splits.csv's val films, not a new split's."""
    out = tmp_path / "eval"
    m = evaluate(str(tiny_model), str(root / "chest-xray-masks"), "val", str(out), device="cpu")
    assert _ids(out) == DATA_VAL
    assert m["protocol"]["split_file"] == str(root / "splits.csv")
    with open(out / "per_image.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[-6:] == [
        "right_dice", "left_dice", "area_error", "hd95_px", "assd_px", "image"
    ]  # fmt: skip
    assert m["shenzhen"]["hd95_px"] == pytest.approx(
        np.mean([float(r["hd95_px"]) for r in rows if r["dataset"] == "shenzhen"])
    )
    errors = [float(r["area_error"]) for r in rows]
    assert m["overall"]["area_error"] == pytest.approx(np.mean(errors))
    assert m["overall"]["area_error_abs"] == pytest.approx(np.mean(np.abs(errors)))
    for ds in ("montgomery", "shenzhen"):
        for side in ("right_dice", "left_dice"):
            scores = [float(r[side]) for r in rows if r["dataset"] == ds]
            assert all(0 <= x <= 1 for x in scores)
            assert m[ds][side] == pytest.approx(np.mean(scores))
    assert all(f" {k} " in table(m) for k in ("right", "left", "area", "HD95", "ASSD"))
    assert read_splits(out / "splits.csv") == read_splits(root / "splits.csv")


def test_run_split_wins_and_protocol_records_the_selection(root, tiny_model, tmp_path, caplog):
    run = tmp_path / "run"
    run.mkdir()
    samples, _ = datasets.discover(root)
    run_split = {(s.dataset, s.id): "train" for s in samples}
    for key in [("montgomery", "MCUCXR_0002_0"), ("shenzhen", "CHNCXR_0103_1")]:
        run_split[key] = "val"
    write_splits(run / "splits.csv", run_split)
    out = tmp_path / "eval"
    with caplog.at_level("INFO", logger="lungseg"):
        m = evaluate(str(tiny_model), str(root), "val", str(out), run_dir=str(run), device="cpu")
    assert _ids(out) == ["CHNCXR_0103_1", "MCUCXR_0002_0"]
    assert f"trained with: {run / 'splits.csv'}" in caplog.text
    assert read_splits(out / "splits.csv") == run_split
    saved = json.loads((out / "metrics.json").read_text())["protocol"]
    assert saved["split_file"] == str(run / "splits.csv") == m["protocol"]["split_file"]
    assert saved["limit"] is None and saved["datasets"] is None

    # protocol: --datasets (lower-cased) and --limit are recorded
    out2 = tmp_path / "eval2"
    evaluate(str(tiny_model), str(root), "val", str(out2), ["Shenzhen"], 1, device="cpu")
    saved = json.loads((out2 / "metrics.json").read_text())["protocol"]
    assert saved["datasets"] == ["shenzhen"] and saved["limit"] == 1
    assert _ids(out2) == ["CHNCXR_0001_0"]


def test_a_run_split_that_misses_films_gives_way_to_the_datas_own(
    root, tiny_model, tmp_path, caplog
):
    """A model evaluated on other data than it was trained on: its run's splits.csv does not list
    these films, so the data's own splits.csv decides (not a brand-new split)."""
    run = tmp_path / "run"
    run.mkdir()
    write_splits(run / "splits.csv", {("jsrt", "JPCLN001"): "train"})
    out = tmp_path / "eval"
    evaluate(str(tiny_model), str(root), "val", str(out), run_dir=str(run), device="cpu")
    assert _ids(out) == DATA_VAL
    assert "does not list every film" in caplog.text


def test_run_folder_of_the_model_gives_the_split(root, tiny_model, tmp_path):
    """A model inside a training run folder (metrics.csv beside it) is scored on its run's split."""
    run = tmp_path / "run"
    run.mkdir()
    model = shutil.copy(tiny_model, run / "model.safetensors")
    (run / "metrics.csv").write_text("epoch,train_loss,val_loss,val_iou\n0,0.9,0.8,0.5\n")
    samples, _ = datasets.discover(root)
    run_split = {(s.dataset, s.id): "test" for s in samples}
    run_split[("jsrt", "JPCLN999")] = "val"  # not in the data: a warning, not an error
    run_split[("montgomery", "MCUCXR_0003_0")] = "val"
    write_splits(run / "splits.csv", run_split)
    out = tmp_path / "eval"
    evaluate(str(model), str(root), "val", str(out), device="cpu")
    assert _ids(out) == ["MCUCXR_0003_0"]
    assert (out / "training_curves.png").is_file()


def test_strict_stops_on_pairing_problems(root, tmp_path):
    (root / "chest-xray-masks" / "masks" / "MCUCXR_0002_0.png").unlink()
    out = tmp_path / "eval"
    with pytest.raises(ValueError) as e:
        evaluate(None, str(root), "test", str(out), strict=True, device="cpu")
    assert "--strict" in str(e.value) and "MCUCXR_0002_0.png: no lung mask found" in str(e.value)
    assert not out.exists()  # stopped before writing anything
    assert main(["evaluate", "--data", str(root), "--out", str(out), "--strict"]) == 2


def test_every_pair_failing_is_a_clear_error(root, tiny_model, tmp_path, synth):
    masks = root / "chest-xray-masks" / "masks"
    for p in masks.iterdir():
        synth.save_png(p, np.zeros((synth.H, synth.W), np.uint8))  # every mask empty
    out = tmp_path / "eval"
    with pytest.raises(ValueError) as e:
        evaluate(str(tiny_model), str(root), "val", str(out), device="cpu")
    msg = str(e.value)
    assert msg.startswith("no pair could be evaluated: all 4 failed their checks")
    assert "MCUCXR_0001_0.png: mask is empty" in msg
    assert not (out / "metrics.json").exists() and not (out / "per_image.csv").exists()


def test_unknown_dataset_name_lists_the_valid_ones(root, tmp_path):
    out = tmp_path / "eval"
    with pytest.raises(ValueError) as e:
        evaluate(None, str(root), "val", str(out), datasets=["shenzen"], device="cpu")
    assert "'shenzen'" in str(e.value) and "jsrt, montgomery, shenzhen" in str(e.value)
    assert not out.exists()


def test_a_broken_model_is_refused_before_anything_is_written(root, tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"junk")
    out = tmp_path / "eval"
    with pytest.raises(ValueError, match="bad.safetensors: not a readable lungseg model"):
        evaluate(str(tmp_path / "bad.safetensors"), str(root), "val", str(out), device="cpu")
    assert not out.exists()


def test_missing_run_folder(root, tmp_path):
    out = tmp_path / "eval"
    with pytest.raises(FileNotFoundError, match="--run .*nope: folder not found"):
        evaluate(None, str(root), "val", str(out), run_dir=str(tmp_path / "nope"))
    assert not out.exists()
    argv = ["evaluate", "--data", str(root), "--out", str(out), "--run", str(tmp_path / "nope")]
    assert main(argv) == 2


def test_split_all_scores_every_film_of_your_own_folder(tiny_model, tmp_path, synth, caplog):
    """`--split all` on images/ + masks/ without a splits.csv: every film, no split made,
    written or warned about."""
    _own_films(synth, tmp_path / "mine", 3)
    out = tmp_path / "eval"
    argv = ["evaluate", "--model", str(tiny_model), "--data", str(tmp_path / "mine")]
    assert main(argv + ["--split", "all", "--out", str(out), "--device", "cpu"]) == 0
    assert _ids(out) == ["p0", "p1", "p2"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["other"]["n"] == 3 and metrics["protocol"]["split_file"] is None
    assert not (out / "splits.csv").exists() and "split" not in caplog.text.lower()


def test_the_shipped_model_off_the_projects_split_says_its_figures_are_not_held_out(
    root, tmp_path, caplog
):
    """It carries no record of its films, and was trained on most of the public sets' films: a
    new split of them, or --split all, would pass its training films off as test films."""
    evaluate(None, str(root), "val", str(tmp_path / "own"), limit=2, device="cpu")
    assert "not held-out" not in caplog.text  # the data's own splits.csv: the project's
    protocol = json.loads((tmp_path / "own" / "metrics.json").read_text())["protocol"]
    assert protocol["public_films_maybe_seen"] == 0
    (root / "splits.csv").unlink()
    for split in ("all", "test"):
        evaluate(None, str(root), split, str(tmp_path / split), limit=2, device="cpu")
        protocol = json.loads((tmp_path / split / "metrics.json").read_text())["protocol"]
        assert protocol["public_films_maybe_seen"] == 2  # the films scored (--limit 2)
    assert caplog.text.count("so these figures are not held-out figures") == 2


def test_a_new_split_too_small_for_test_films_says_so(tiny_model, tmp_path, synth):
    _own_films(synth, tmp_path / "mine", 2)
    with pytest.raises(ValueError, match=r"no test films under .*fewer than 3 films.*--split all"):
        evaluate(str(tiny_model), str(tmp_path / "mine"), "test", str(tmp_path / "e"))


def test_evaluate_reads_a_dicoms_header_as_predict_does(tiny_model, tmp_path, synth, monkeypatch):
    """Own films as DICOM: a lateral view is flagged in per_image.csv (`not_frontal_view`), and a
    film stored upside down (PatientOrientation L\\H) is scored upright against its mask."""
    from dicomfiles import write_dicom

    left, right = synth.lung_masks()
    film = np.round(synth.chest_image(seed=1).astype(np.float64) / 255 * 4095)
    (tmp_path / "mine" / "images").mkdir(parents=True)
    write_dicom(tmp_path / "mine" / "images" / "lat.dcm", film, ViewPosition="LL")
    write_dicom(
        tmp_path / "mine" / "images" / "turned.dcm", film[::-1], PatientOrientation=["L", "H"]
    )
    synth.save_mask(tmp_path / "mine" / "masks" / "lat.png", left | right)
    synth.save_mask(tmp_path / "mine" / "masks" / "turned.png", (left | right)[::-1])
    seen = []  # the films the model is given
    real = Segmenter.batch
    monkeypatch.setattr(Segmenter, "batch", lambda seg, rads: seen.extend(rads) or real(seg, rads))
    out = tmp_path / "eval"
    argv = ["evaluate", "--model", str(tiny_model), "--data", str(tmp_path / "mine")]
    assert main(argv + ["--split", "all", "--out", str(out), "--device", "cpu"]) == 0
    with open(out / "per_image.csv", newline="") as f:
        rows = {r["id"]: r for r in csv.DictReader(f)}
    assert rows["lat"]["flags"].startswith("not_frontal_view")
    assert "not_frontal_view" not in rows["turned"]["flags"]
    films = {Path(r.path).stem: r.image for r in seen}
    np.testing.assert_array_equal(films["turned"], films["lat"])  # the same film, upright


def test_split_all_warns_about_films_a_split_file_lists_for_training(
    root, tiny_model, tmp_path, caplog
):
    m = evaluate(str(tiny_model), str(root), "all", str(tmp_path / "eval"), device="cpu", limit=2)
    assert m["protocol"]["split_file"] is None and m["protocol"]["split"] == "all"
    assert (
        f"--split all: 2 of the 2 films are train or val films in {root / 'splits.csv'}"
        in caplog.text
    )


def test_films_the_run_trained_on_are_named_when_the_datas_split_is_scored(
    root, tiny_model, tmp_path, caplog
):
    """The run's splits.csv does not list every film (trained on a subset folder), so the
    data's split is scored: its val films that the run trained on are named."""
    import shutil

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("epoch\n")  # marks the run folder
    shutil.copy(tiny_model, run / "model.safetensors")
    samples, _ = datasets.discover(root)
    val = [s for s in samples if s.id[-6:-2] in ("0001", "0101")]  # the data's val films
    trained = {(s.dataset, s.id): "train" for s in samples if s not in val}  # all but val...
    trained.update({(val[0].dataset, val[0].id): "train", (val[1].dataset, val[1].id): "val"})
    write_splits(run / "splits.csv", trained)  # ...and 2 of its 4 (the run's split not whole)
    evaluate(str(run / "model.safetensors"), str(root), "val", str(tmp_path / "e"), device="cpu")
    assert f"does not list every film under {root}; using {root / 'splits.csv'}" in caplog.text
    assert (
        f"--split val: 1 of the {len(val)} films are train films in {run / 'splits.csv'} (not "
        f"held out), e.g. {val[0].id}" in caplog.text
    )
    caplog.clear()  # scoring train films, as asked: nothing to say
    evaluate(str(run / "model.safetensors"), str(root), "train", str(tmp_path / "t"),
             device="cpu", limit=2)  # fmt: skip
    assert "not held out" not in caplog.text


def test_your_own_films_hints_and_masks_that_are_predictions(tiny_model, tmp_path, synth, caplog):
    """Without --split all, own films get a hint to use it; masks that are the model's own
    predictions (every film at IoU 1.0) get a warning."""
    import shutil

    from lungseg.predict import predict_paths

    for k in range(4):
        synth.save_png(tmp_path / "mine" / "images" / f"p{k}.png", synth.chest_image(seed=k))
    predict_paths(
        [str(tmp_path / "mine" / "images")], str(tmp_path / "pred"), model=str(tiny_model)
    )
    (tmp_path / "mine" / "masks").mkdir()
    for f in (tmp_path / "pred").glob("*_mask.png"):
        shutil.copy(f, tmp_path / "mine" / "masks" / f.name)
    evaluate(str(tiny_model), str(tmp_path / "mine"), "all", str(tmp_path / "e1"), device="cpu")
    assert "every film scores IoU 1.0: are the masks this model's own predictions?" in caplog.text
    caplog.clear()
    evaluate(str(tiny_model), str(tmp_path / "mine"), "test", str(tmp_path / "e2"), device="cpu")
    assert "for every film of your own, use --split all" in caplog.text


def test_own_films_with_jpeg_masks_score_as_with_png_masks(tiny_model, tmp_path, synth, caplog):
    """JPEG masks (quality 75) are thresholded, not refused: the same films score the same with
    their masks saved as JPEG as with PNG, and the JPEG folder is warned about once."""
    import cv2

    (tmp_path / "jpeg" / "masks").mkdir(parents=True)
    for k in range(3):
        lungs = np.bitwise_or(*synth.lung_masks(shift=2 * k))
        film = synth.chest_image(seed=k, mask=lungs)
        for kind in ("png", "jpeg"):
            synth.save_png(tmp_path / kind / "images" / f"p{k}.png", film)
        synth.save_mask(tmp_path / "png" / "masks" / f"p{k}.png", lungs)
        jpeg = str(tmp_path / "jpeg" / "masks" / f"p{k}.jpg")
        cv2.imwrite(jpeg, lungs * np.uint8(255), [cv2.IMWRITE_JPEG_QUALITY, 75])
        assert len(np.unique(cv2.imread(jpeg, cv2.IMREAD_GRAYSCALE))) > 2  # not 0/255 any more
    rows = {}
    for kind in ("png", "jpeg"):
        caplog.clear()
        out = tmp_path / f"eval_{kind}"
        with caplog.at_level("WARNING", logger="lungseg"):
            evaluate(str(tiny_model), str(tmp_path / kind), "all", str(out), device="cpu")
        assert caplog.text.count("were thresholded at 128") == (kind == "jpeg")
        with open(out / "per_image.csv", newline="") as f:
            rows[kind] = list(csv.DictReader(f))
    assert [r["id"] for r in rows["jpeg"]] == ["p0", "p1", "p2"]
    for png, jpeg in zip(rows["png"], rows["jpeg"], strict=True):
        for metric in ("iou", "dice", "pixel_accuracy"):
            assert abs(float(png[metric]) - float(jpeg[metric])) < 0.005, (metric, png, jpeg)


def test_the_printed_table_has_a_line_per_dataset_and_skips_the_protocol():
    m = {"iou": 0.9, "dice": 0.95, "pixel_accuracy": 0.98}
    metrics = {"jsrt": {**m, "n": 3}, "mean_of_datasets": m, "protocol": {"split": "val"}}
    lines = table(metrics).splitlines()
    assert len(lines) == 2
    scores = ["IoU", "0.9000", "Dice", "0.9500", "acc", "0.9800"]
    assert lines[0].split() == ["jsrt", "n=", "3", *scores]
    assert lines[1].split() == ["mean_of_datasets", *scores]


def test_an_earlier_evaluation_in_the_same_out_leaves_nothing_behind(tiny_model, tmp_path, synth):
    """Evaluating into a folder an earlier evaluation wrote: none of the earlier one's files
    stays to pass for this one's (its new split, its worst films, its figures); a splits.csv
    that was not its own is kept."""
    _own_films(synth, tmp_path / "mine", 8)
    out = tmp_path / "eval"
    argv = ["evaluate", "--model", str(tiny_model), "--data", str(tmp_path / "mine")]
    argv += ["--out", str(out), "--device", "cpu"]
    assert main(argv + ["--split", "test"]) == 0  # a new split, saved in --out
    assert (out / "splits.csv").exists()
    (out / "worst" / "gone_iou0.100.png").write_bytes(b"x")  # (as an earlier model's worst)
    (out / "training_curves.png").write_bytes(b"x")
    assert main(argv + ["--split", "all"]) == 0
    assert not (out / "splits.csv").exists() and not (out / "training_curves.png").exists()
    assert not (out / "worst" / "gone_iou0.100.png").exists()
    assert len(list((out / "worst").glob("*.png"))) == 6 and _ids(out) == [
        f"p{k}" for k in range(8)
    ]
    (out / "splits.csv").write_text("dataset,id,split\n")  # the user's own
    assert main(argv + ["--split", "all"]) == 0
    assert (out / "splits.csv").read_text() == "dataset,id,split\n"


def test_a_model_out_of_its_run_folder_still_says_what_it_was_trained_on(
    root, tiny_model, tmp_path, caplog
):
    """A model file copied or exported out of its run folder carries the films it was trained
    and selected on: scoring some of them is warned about and recorded in the protocol."""
    from lungseg.model import films_json, load_model, save_safetensors, trained_on

    net, config = load_model(tiny_model)
    films = {("shenzhen", "CHNCXR_0001_0"): "train", ("montgomery", "MCUCXR_0001_0"): "train"}
    films[("montgomery", "MCUCXR_0002_0")] = "val"  # (scoring val, only train films count)
    lone = tmp_path / "lone.safetensors"
    save_safetensors(net, config, lone, films=films)
    assert trained_on(lone) == films and json.loads(films_json(films))["val"] == [
        "montgomery/MCUCXR_0002_0"
    ]
    metrics = evaluate(lone, root, "val", tmp_path / "ev", device="cpu")
    assert sorted(metrics["protocol"]["not_held_out"]) == ["CHNCXR_0001_0", "MCUCXR_0001_0"]
    assert "2 of the 4 films are train films in the training record inside" in caplog.text
    plain = evaluate(tiny_model, root, "val", tmp_path / "ev2", device="cpu")
    assert plain["protocol"]["not_held_out"] == []


def test_figures_keep_a_films_shape():
    """The results grid and worst/ overlays show a 1400 x 1100 film as it is, not squashed."""
    from lungseg.evaluate import THUMB, _thumb

    assert _thumb(np.zeros((1100, 1400), np.float32)).shape == (round(1100 * THUMB / 1400), THUMB)
    assert _thumb(np.zeros((300, 200), np.uint8)).shape == (THUMB, round(200 * THUMB / 300))
