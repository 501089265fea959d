"""A `predict` run over a large folder that is stopped keeps the rows of the films it finished,
`--resume` segments only the rest, and a film that raises an unexpected error stops only
itself."""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import lungseg.outdir as outdir
import lungseg.predict as predict
from lungseg.cli import main
from lungseg.segmenter import Segmenter


def _films(folder: Path, n: int) -> list[Path]:
    folder.mkdir()
    rng = np.random.default_rng(3)
    paths = []
    for k in range(n):
        paths.append(folder / f"f{k}.png")
        Image.fromarray(rng.integers(0, 255, (40 + k, 48), dtype=np.uint8)).save(paths[-1])
    return paths


def _rows(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="", encoding="utf-8", errors="surrogateescape") as f:
        return list(csv.DictReader(f))


class _Counting:
    """The segmenter's runner, counting films; raises `stop` before the film numbered `at`."""

    def __init__(self, runner, at: int | None = None, stop=KeyboardInterrupt):
        self.runner, self.at, self.stop, self.films = runner, at, stop, 0

    def __call__(self, x):
        if self.at is not None and self.films + len(x) > self.at:
            raise self.stop()
        self.films += len(x)
        return self.runner(x)


def test_a_stopped_run_keeps_its_rows_and_resume_does_the_rest(tiny_model, tmp_path, caplog):
    films = _films(tmp_path / "in", 7)
    seg = Segmenter(tiny_model, device="cpu")
    ref = tmp_path / "ref"
    assert predict.predict_paths([str(tmp_path / "in")], str(ref), segmenter=seg) == []
    record = json.loads((ref / "run.json").read_text())  # a Segmenter given names its model too
    assert record["model"] == str(tiny_model) and len(record["model_sha256"]) == 64

    out, runner = tmp_path / "out", seg.runner
    seg.runner = _Counting(runner, at=4)  # Ctrl-C while the model runs on the fifth film
    with pytest.raises(KeyboardInterrupt):
        predict.predict_paths([str(tmp_path / "in")], str(out), segmenter=seg, batch_size=1)
    done = _rows(out)
    assert [r["file"] for r in done] == [str(f) for f in films[:4]]  # in order, after the stop
    assert json.loads((out / "results.json").read_text())[0]["file"] == str(films[0])

    (out / "f1_overlay.png").unlink()  # a film whose outputs are not all there is done again
    seg.runner = _Counting(runner)
    kw = {"segmenter": seg, "resume": True}
    with caplog.at_level(logging.INFO, logger="lungseg"):
        assert predict.predict_paths([str(tmp_path / "in")], str(out), **kw) == []
    assert seg.runner.films == 7 - 4 + 1
    assert "7 images segmented, 3 of them by the earlier run (" in caplog.text
    assert _rows(out) == _rows(ref)
    assert json.loads((out / "results.json").read_text()) == json.loads(
        (ref / "results.json").read_text()
    )  # numbers read back from results.csv are numbers again
    for f in films:
        assert (out / f"{f.stem}_mask.png").read_bytes() == (
            ref / f"{f.stem}_mask.png"
        ).read_bytes()

    seg.runner = _Counting(runner)
    assert predict.predict_paths([str(tmp_path / "in")], str(out), **kw) == []
    assert seg.runner.films == 0 and _rows(out) == _rows(ref)  # nothing left to do
    seg.runner = _Counting(runner)
    predict.predict_paths([str(tmp_path / "in")], str(out), segmenter=seg)  # no --resume: all
    assert seg.runner.films == 7


def test_resume_tries_failed_films_again_and_asks_for_the_outputs_requested(
    tiny_model, tmp_path, caplog
):
    caplog.set_level(logging.INFO, "lungseg")
    films = _films(tmp_path / "in", 3)
    good = films[1].read_bytes()
    films[1].write_bytes(good[:50])  # truncated
    seg = Segmenter(tiny_model, device="cpu")
    out = tmp_path / "out"
    assert predict.predict_paths([str(tmp_path / "in")], str(out), segmenter=seg) == [str(films[1])]
    films[1].write_bytes(good)  # repaired
    seg.runner = _Counting(seg.runner)
    kw = {"segmenter": seg, "resume": True, "labels": True}
    assert predict.predict_paths([str(tmp_path / "in")], str(out), **kw) == []
    assert seg.runner.films == 3  # --labels: no film had its labels PNG yet
    assert [r["quality"] != "error" for r in _rows(out)] == [True] * 3
    check = sum(r["quality"] == "check" for r in _rows(out))  # the summary counts them
    assert f"3 images segmented ({check} flagged 'check'" in caplog.text


def test_an_unexpected_error_in_one_film_stops_only_that_film(tiny_model, tmp_path, caplog):
    films = _films(tmp_path / "in", 4)
    seg = Segmenter(tiny_model, device="cpu")
    finish = seg.finish

    def flaky(prob, g, rad):
        if Path(rad.path).stem == "f2":
            raise RuntimeError("a bug")
        return finish(prob, g, rad)

    seg.finish = flaky
    out = tmp_path / "out"
    failed = predict.predict_paths([str(tmp_path / "in")], str(out), segmenter=seg)
    assert failed == [str(films[2])]
    rows = _rows(out)
    assert [r["quality"] == "error" for r in rows] == [False, False, True, False]
    assert "unexpected RuntimeError: a bug" in rows[2]["error"]
    assert "please report" in caplog.text and "Traceback" in caplog.text
    assert not (out / "f2_mask.png").exists() and (out / "f3_mask.png").exists()


def test_cli_resume_and_a_model_that_cannot_load_keeps_the_table(tiny_model, tmp_path):
    _films(tmp_path / "in", 2)
    out = tmp_path / "out"
    argv = ["predict", str(tmp_path / "in"), "--out", str(out), "--model", str(tiny_model)]
    assert main(argv) == 0
    before = (out / "results.csv").read_text()
    assert main([*argv, "--resume"]) == 0
    assert (out / "results.csv").read_text() == before
    (out / "f0_mask.png").unlink()
    bad = ["predict", str(tmp_path / "in"), "--out", str(out), "--model", str(tmp_path / "no")]
    assert main([*bad, "--resume"]) == 2  # the model is missing: the table is left as it was
    assert (out / "results.csv").read_text() == before


def test_a_rerun_stopped_before_its_first_film_leaves_a_folder_that_runs_again(
    tiny_model, tmp_path
):
    """Its table keeps the earlier rows (the films were not redone), and the masks are marked
    as predict's own: no 'not an earlier lungseg output' refusal afterwards, with or without
    --resume, even with the table gone (here with --no-overlay, where no overlay vouches
    for them either)."""
    _films(tmp_path / "in", 3)
    seg = Segmenter(tiny_model, device="cpu")
    out, runner = tmp_path / "out", seg.runner
    kw = {"segmenter": seg, "overlays": False}
    assert predict.predict_paths([str(tmp_path / "in")], str(out), **kw) == []
    seg.runner = _Counting(runner, at=0)
    with pytest.raises(KeyboardInterrupt):
        predict.predict_paths([str(tmp_path / "in")], str(out), **kw)
    assert len(_rows(out)) == 3
    (out / "run.json").unlink()  # and as if killed before anything was written: nothing vouches
    (out / "results.csv").unlink()
    seg.runner = _Counting(runner)
    assert predict.predict_paths([str(tmp_path / "in")], str(out), resume=True, **kw) == []
    assert seg.runner.films == 3 and len(_rows(out)) == 3
    assert predict.predict_paths([str(tmp_path / "in")], str(out), **kw) == []


def test_resume_matches_inputs_however_their_path_is_written(tiny_model, tmp_path, monkeypatch):
    _films(tmp_path / "in", 3)
    seg = Segmenter(tiny_model, device="cpu")
    monkeypatch.chdir(tmp_path)
    assert predict.predict_paths(["in"], "out", segmenter=seg) == []  # relative
    seg.runner = _Counting(seg.runner)
    monkeypatch.chdir(tmp_path / "in")  # another folder, absolute paths, trailing slash
    kw = {"segmenter": seg, "resume": True}
    assert predict.predict_paths([f"{tmp_path}/in/"], str(tmp_path / "out"), **kw) == []
    assert seg.runner.films == 0
    assert [r["file"] for r in _rows(tmp_path / "out")] == [
        str(tmp_path / "in" / f"f{k}.png") for k in range(3)
    ]  # as written this time


def test_resume_redoes_a_film_changed_since_and_a_row_cut_short(tiny_model, tmp_path):
    films = _films(tmp_path / "in", 4)
    seg = Segmenter(tiny_model, device="cpu")
    out = tmp_path / "out"
    assert predict.predict_paths([str(tmp_path / "in")], str(out), segmenter=seg) == []
    text = (out / "results.csv").read_text()
    (out / "results.csv").write_text(text[: text.rindex(",f3_mask.png") + 5])  # killed mid-row
    mask = out / "f1_mask.png"
    os.utime(films[1], (mask.stat().st_mtime + 10,) * 2)  # the film was replaced afterwards
    seg.runner = _Counting(seg.runner)
    kw = {"segmenter": seg, "resume": True}
    assert predict.predict_paths([str(tmp_path / "in")], str(out), **kw) == []
    assert seg.runner.films == 2 and len(_rows(out)) == 4


def test_resume_redoes_a_film_replaced_by_an_older_file(tiny_model, tmp_path):
    """A film replaced by a copy that keeps its (older) times, as `cp -p`, `rsync -a` or unzip
    leave it, or by a link re-pointed at another film, is segmented again: its mask records
    the size and modification time of the film it was made from."""
    films = _films(tmp_path / "in", 3)
    old = tmp_path / "old.png"
    Image.fromarray(np.full((44, 48), 200, np.uint8)).save(old)
    os.utime(old, (1e9, 1e9))  # 2001
    seg = Segmenter(tiny_model, device="cpu")
    out = tmp_path / "out"
    assert predict.predict_paths([str(tmp_path / "in")], str(out), segmenter=seg) == []
    os.replace(old, films[0])  # (the contents keep their 2001 time)
    films[2].unlink()
    films[2].symlink_to(films[1])  # another film now
    seg.runner = _Counting(seg.runner)
    kw = {"segmenter": seg, "resume": True}
    assert predict.predict_paths([str(tmp_path / "in")], str(out), **kw) == []
    assert seg.runner.films == 2
    rows = {Path(r["file"]).name: r for r in _rows(out)}
    assert rows["f0.png"]["height"] == "44"  # the new film's row (the old film had 40 rows)
    assert np.asarray(Image.open(out / "f0_mask.png")).shape == (44, 48)


def test_resume_keeps_films_restored_or_made_read_only(tiny_model, tmp_path):
    """Films restored in place from a copy that kept their times (`cp -a`, `rsync -a`, a
    backup), then made read-only: the same files, nothing is segmented again (their change
    times are new; the size and modification time each mask records are not)."""
    films = tmp_path / "in"
    _films(films, 3)
    seg = Segmenter(tiny_model, device="cpu")
    out = tmp_path / "out"
    assert predict.predict_paths([str(films)], str(out), segmenter=seg) == []
    shutil.copytree(films, tmp_path / "backup")  # (copy2: times kept)
    shutil.rmtree(films)
    shutil.copytree(tmp_path / "backup", films)
    for f in films.iterdir():
        f.chmod(0o444)
    seg.runner = _Counting(seg.runner)
    kw = {"segmenter": seg, "resume": True}
    assert predict.predict_paths([str(films)], str(out), **kw) == []
    assert seg.runner.films == 0 and len(_rows(out)) == 3


def test_resume_keeps_films_restored_from_a_tar_or_zip(tiny_model, tmp_path):
    """tar and zip keep whole seconds (zip and FAT: even ones): films restored from them have
    lost the fraction of their modification time, not become other films."""
    films = _films(tmp_path / "in", 2)
    seg = Segmenter(tiny_model, device="cpu")
    out = tmp_path / "out"
    assert predict.predict_paths([str(tmp_path / "in")], str(out), segmenter=seg) == []
    for f in films:
        ns = f.stat().st_mtime_ns
        os.utime(f, ns=(ns, ns // 2_000_000_000 * 2_000_000_000))  # (zip: even seconds)
    seg.runner = _Counting(seg.runner)
    assert predict.predict_paths([str(tmp_path / "in")], str(out), segmenter=seg, resume=True) == []
    assert seg.runner.films == 0


def test_a_call_removes_the_files_a_killed_call_was_writing(tiny_model, tmp_path):
    """A call killed while writing leaves a hidden temporary file (`files.replace_file`); the next
    call into the folder removes it, and nothing else of the folder's hidden files."""
    _films(tmp_path / "in", 1)
    out = tmp_path / "out"
    out.mkdir()
    left = [".f0_mask.png.tmp", ".results.csv.tmp", ".run.json.tmp"]
    for name in [*left, ".notes.tmp", ".f0.png.bak", ".film_mask.png.dat"]:
        (out / name).write_bytes(b"x")
    (out / ".x_mask.png.tmp").mkdir()  # not a file: left alone, no failure
    seg = Segmenter(tiny_model, device="cpu")
    assert predict.predict_paths([str(tmp_path / "in")], str(out), segmenter=seg) == []
    assert not {p.name for p in out.iterdir()} & set(left)
    for name in (".notes.tmp", ".f0.png.bak", ".film_mask.png.dat", ".x_mask.png.tmp"):
        assert (out / name).exists()


def test_cli_resume_refuses_another_model_or_options(tiny_model, tmp_path, caplog):
    _films(tmp_path / "in", 2)
    out = tmp_path / "out"
    argv = ["predict", str(tmp_path / "in"), "--out", str(out), "--model", str(tiny_model)]
    assert main(argv) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["model"] == str(tiny_model) and len(record["model_sha256"]) == 64
    assert main([*argv, "--resume", "--no-postprocess"]) == 2
    assert "postprocess True (now False)" in caplog.text
    assert main([*argv, "--resume", "--no-rebuild"]) == 2
    assert "rebuild True (now False)" in caplog.text
    other = tmp_path / "other.safetensors"
    other.write_bytes(tiny_model.read_bytes())  # the same weights under another name: fine
    assert main([*argv[:-1], str(other), "--resume"]) == 0
    record.pop("rebuild")  # a run.json from before lost lungs were rebuilt: none was
    (out / "run.json").write_text(json.dumps(record))
    assert main([*argv, "--resume"]) == 2 and "rebuild False (now True)" in caplog.text
    assert "--no-rebuild" in caplog.text
    assert main([*argv, "--resume", "--no-rebuild"]) == 0


def test_sigterm_stops_predict_with_its_table_written(tiny_model, tmp_path):
    """A batch system's time limit sends SIGTERM: the finished films are in results.csv and
    results.json, and the exit status says so (143)."""
    _films(tmp_path / "in", 6)
    out = tmp_path / "out"
    runner = Segmenter(tiny_model, device="cpu").runner
    calls = []

    def term_on_third(x):
        calls.append(len(x))
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return runner(x)

    real = predict.Segmenter

    def segmenter(*a, **kw):
        seg = real(*a, **kw)
        seg.runner = term_on_third
        return seg

    argv = ["predict", str(tmp_path / "in"), "--out", str(out), "--model", str(tiny_model)]
    with pytest.MonkeyPatch.context() as m:
        m.setattr(predict, "Segmenter", segmenter)
        with pytest.raises(SystemExit) as stop:
            main([*argv, "--batch-size", "1"])
    assert stop.value.code == 143
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back
    done = json.loads((out / "results.json").read_text())
    assert 2 <= len(done) < 6 and len(_rows(out)) == len(done)


def test_a_segmenter_whose_model_file_changed_records_no_model(tiny_model, tmp_path):
    """run.json names the model only while its file is the one loaded: gone or rewritten since,
    its hash would not describe the weights in use (and --resume then trusts nothing)."""
    _films(tmp_path / "in", 1)
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(tiny_model.read_bytes())
    seg = Segmenter(weights, device="cpu")
    assert seg.model_file() == weights.resolve()
    weights.unlink()
    assert predict.predict_paths([str(tmp_path / "in")], str(tmp_path / "out"), segmenter=seg) == []
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["model"] is None and record["model_sha256"] is None


def test_calls_into_one_out_keep_one_table_of_every_film(tiny_model, tmp_path, monkeypatch, caplog):
    """An archive segmented in chunks into one --out: the table lists the films of every call
    (paths still right from another folder); a film keeps its output name when given again,
    and a film named as one of an earlier call gets a name of its own instead of replacing
    that film's files, whatever model made them."""
    first, second = tmp_path / "a", tmp_path / "b"
    _films(first, 2), _films(second, 3)  # f0, f1 in both folders
    seg = Segmenter(tiny_model, device="cpu")
    monkeypatch.chdir(tmp_path)
    assert predict.predict_paths(["a"], "out", segmenter=seg) == []
    mask_a0 = (tmp_path / "out" / "f0_mask.png").read_bytes()
    monkeypatch.chdir(second)  # another folder: relative paths of the first call made absolute
    out = tmp_path / "out"
    assert predict.predict_paths([".", str(first / "f1.png")], str(out), segmenter=seg) == []
    rows = {r["file"]: r["mask"] for r in _rows(out)}
    assert rows == {
        str(first / "f0.png"): "f0_mask.png",  # the first call's, kept
        "f0.png": "f0_2_mask.png",
        "f1.png": "f1_2_mask.png",
        "f2.png": "f2_mask.png",
        str(first / "f1.png"): "f1_mask.png",  # given again: one row, and its name
    }
    assert (out / "f0_mask.png").read_bytes() == mask_a0
    assert [r["file"] for r in json.loads((out / "results.json").read_text())] == list(rows)
    seg.runner = _Counting(seg.runner)  # resume in another order, through a linked folder
    (tmp_path / "link").symlink_to(tmp_path, target_is_directory=True)
    again = [str(tmp_path / "link" / "a"), "."]
    assert predict.predict_paths(again, str(out), segmenter=seg, resume=True) == []
    assert seg.runner.films == 0 and {r["file"]: r["mask"] for r in _rows(out)}.keys() == {
        *(str(tmp_path / "link" / "a" / f"f{k}.png") for k in range(2)),
        *(f"f{k}.png" for k in range(3)),
    }
    caplog.clear()  # another model or options: its table lists its own films, their files stay
    other = Segmenter(tiny_model, device="cpu", postprocess=False)
    _films(tmp_path / "c", 1)
    assert predict.predict_paths([str(tmp_path / "c")], str(out), segmenter=other) == []
    assert [r["mask"] for r in _rows(out)] == ["f0_3_mask.png"]
    assert (out / "f0_mask.png").read_bytes() == mask_a0
    assert "lists 5 films that earlier calls segmented with another model" in caplog.text
    assert "postprocess True (now False)" in caplog.text


def test_a_film_segmented_again_without_overlay_or_labels_loses_the_old_ones(tiny_model, tmp_path):
    """An overlay or labels file left from an earlier run of the same film would show the old
    result beside the new mask (and on the check sheets): it is removed."""
    _films(tmp_path / "in", 1)
    out = tmp_path / "out"
    seg = Segmenter(tiny_model, device="cpu")
    assert predict.predict_paths([str(tmp_path / "in")], str(out), segmenter=seg, labels=True) == []
    assert {p.name for p in out.glob("f0_*")} == {"f0_mask.png", "f0_overlay.png", "f0_labels.png"}
    assert (
        predict.predict_paths([str(tmp_path / "in")], str(out), segmenter=seg, overlays=False) == []
    )
    assert {p.name for p in out.glob("f0_*")} == {"f0_mask.png"}


def test_a_table_saved_by_a_spreadsheet_is_read_and_rows_cut_short_are_said(
    tiny_model, tmp_path, caplog
):
    """results.csv saved again by a spreadsheet (a BOM; ';' between cells) still lists the
    earlier films, so their names stay theirs; a row cut short is left out with a warning."""
    films = _films(tmp_path / "in", 2)
    out = tmp_path / "out"
    seg = Segmenter(tiny_model, device="cpu")
    assert predict.predict_paths([str(films[0])], str(out), segmenter=seg) == []
    table = out / "results.csv"
    for k in range(2):  # saved again with a BOM, then with ';' between cells
        rows = list(csv.reader(table.open(newline="")))
        with open(table, "w", newline="", encoding="utf-8-sig" if k == 0 else "utf-8") as f:
            csv.writer(f, delimiter="," if k == 0 else ";").writerows(rows)
        new = tmp_path / "new" / f"{k}" / "f0.png"
        new.parent.mkdir(parents=True)
        new.write_bytes(films[1].read_bytes())
        assert predict.predict_paths([str(new)], str(out), segmenter=seg) == []
        assert [r["mask"] for r in _rows(out)] == ["f0_mask.png", "f0_2_mask.png", "f0_3_mask.png"][
            : k + 2
        ]
    table.write_text(table.read_text()[:-20])
    assert predict.predict_paths([str(films[1])], str(out), segmenter=seg) == []
    assert "rows cut short are left out" in caplog.text


def test_a_table_saved_in_a_windows_code_page_keeps_its_films(tiny_model, tmp_path):
    """results.csv saved again by a spreadsheet in Windows-1252 (Excel's plain 'CSV'): the films
    with accented names are still known (one row each, their names kept), while a table that
    lungseg wrote with a file name that is not UTF-8 is still read as UTF-8."""
    folder = tmp_path / "in"
    folder.mkdir()
    names = ["café.png", "Müller, Jörg.png", "plain.png"]
    for k, name in enumerate(names):
        Image.fromarray(np.full((40 + k, 48), 60 * k, np.uint8)).save(folder / name)
    out = tmp_path / "out"
    seg = Segmenter(tiny_model, device="cpu")
    assert predict.predict_paths([str(folder)], str(out), segmenter=seg) == []
    table = out / "results.csv"
    table.write_bytes(table.read_text(encoding="utf-8").encode("cp1252"))
    assert predict.predict_paths([str(folder)], str(out), segmenter=seg) == []
    assert not (out / "results.csv.unreadable").exists()
    rows = _rows(out)
    assert sorted(Path(r["file"]).name for r in rows) == sorted(names)
    assert sorted(r["mask"] for r in rows) == sorted(f"{Path(n).stem}_mask.png" for n in names)
    raw = os.fsencode(folder) + b"/caf\xe9-latin1.png"  # a name that is not UTF-8
    os.rename(folder / "café.png", raw)
    assert predict.predict_paths([str(folder)], str(out), segmenter=seg) == []
    for _ in range(2):  # (the earlier row of café.png, gone since, stays in the table)
        files = sorted(os.fsencode(r["file"]) for r in _rows(out))
        assert files.count(raw) == 1 and len(files) == 4
        assert predict.predict_paths([str(folder)], str(out), segmenter=seg) == []


def test_a_second_call_into_a_folder_in_use_is_refused(tiny_model, tmp_path):
    """Two calls writing one table at once would lose one call's rows: the second is refused
    while the first holds the folder (a lock the system releases when the call ends)."""
    _films(tmp_path / "in", 1)
    out = tmp_path / "out"
    out.mkdir()
    seg = Segmenter(tiny_model, device="cpu")
    with outdir.exclusive(out):
        with pytest.raises(ValueError, match="another lungseg predict is writing into"):
            predict.predict_paths([str(tmp_path / "in")], str(out), segmenter=seg)
    assert predict.predict_paths([str(tmp_path / "in")], str(out), segmenter=seg) == []


def test_names_of_earlier_films_stay_theirs_when_their_rows_are_gone(tiny_model, tmp_path):
    """A mask says whose it is (a mark inside it), so a film's outputs are never handed to
    another film, even when the table lost its row: a call with other options, a re-run
    stopped before the film was done again, an unreadable table (moved aside)."""
    for d in "abcde":
        _films(tmp_path / d, 1)
    out, seg = tmp_path / "out", Segmenter(tiny_model, device="cpu")

    def run(d, s=seg):
        return predict.predict_paths([str(tmp_path / d)], str(out), segmenter=s)

    assert run("a") == [] and run("b") == []  # f0, f0_2
    a0, b0 = ((out / f"{n}_mask.png").read_bytes() for n in ("f0", "f0_2"))
    seg.runner = _Counting(seg.runner, at=0)  # b again, stopped before its film: its row stays
    with pytest.raises(KeyboardInterrupt):
        run("b")
    assert [r["mask"] for r in _rows(out)] == ["f0_mask.png", "f0_2_mask.png"]
    lines = (out / "results.csv").read_text().splitlines(keepends=True)
    (out / "results.csv").write_text("".join(lines[:2]))  # b's row lost (by hand)
    seg.runner = seg.runner.runner
    assert run("c", Segmenter(tiny_model, device="cpu", postprocess=False)) == []  # other options
    assert [r["mask"] for r in _rows(out)] == ["f0_3_mask.png"]
    (out / "results.csv").write_bytes(b"\x00" * 10)  # unreadable: moved aside, names still kept
    assert run("d") == [] and (out / "results.csv.unreadable").is_file()
    assert [r["mask"] for r in _rows(out)] == ["f0_4_mask.png"]
    assert run("b") == [] and _rows(out)[-1]["mask"] == "f0_2_mask.png"  # b keeps its own name
    assert (out / "f0_mask.png").read_bytes() == a0 and (out / "f0_2_mask.png").read_bytes() == b0


def test_each_row_is_written_as_soon_as_its_film_is(tiny_model, tmp_path):
    """The thread that wrote a film's files writes its row: while the model runs on the next
    batch, the first film's row is already in results.csv (a kill then keeps it)."""
    _films(tmp_path / "in", 2)
    out, seg = tmp_path / "out", Segmenter(tiny_model, device="cpu")
    runner, seen = seg.runner, []

    def second_batch_waits_for_the_first_row(x):
        if seen:  # the second batch: the first film's row must appear without the main thread
            for _ in range(200):
                if len(_rows(out)) == 1:
                    break
                time.sleep(0.05)
            seen.append(len(_rows(out)))
        seen.append("batch")
        return runner(x)

    seg.runner = second_batch_waits_for_the_first_row
    assert (
        predict.predict_paths([str(tmp_path / "in")], str(out), segmenter=seg, batch_size=1) == []
    )
    assert seen == ["batch", 1, "batch"]


def test_spreadsheet_tables_and_missing_inputs_across_calls(tiny_model, tmp_path, caplog):
    """A table saved with quoted cells, ';' and decimal commas is read (numbers as numbers); an
    input that was missing in an earlier call is not carried as a film."""
    films = _films(tmp_path / "in", 2)
    out, seg = tmp_path / "out", Segmenter(tiny_model, device="cpu")
    assert predict.predict_paths([str(films[0]), str(tmp_path / "nope")], str(out), segmenter=seg)
    rows = list(csv.reader((out / "results.csv").open(newline="")))
    with open(out / "results.csv", "w", newline="", encoding="utf-8-sig") as f:
        w = csv.writer(f, delimiter=";", quoting=csv.QUOTE_ALL)
        w.writerows([[c.replace(".", ",") if c[:1].isdigit() else c for c in r] for r in rows])
    assert predict.predict_paths([str(films[1])], str(out), segmenter=seg) == []
    got = json.loads((out / "results.json").read_text())
    assert [Path(r["file"]).name for r in got] == ["f0.png", "f1.png"]  # no "nope" row
    assert isinstance(got[0]["lung_image_ratio"], float)


def test_a_stopped_call_keeps_the_earlier_rows_of_films_it_had_not_redone(tiny_model, tmp_path):
    """A film's earlier row stays in the table until its new one is written: a call over the
    whole folder stopped early leaves the earlier call's films listed (and --resume skips them)."""
    films = _films(tmp_path / "in", 4)
    out, seg = tmp_path / "out", Segmenter(tiny_model, device="cpu")
    assert predict.predict_paths([str(f) for f in films[2:]], str(out), segmenter=seg) == []
    runner = seg.runner
    seg.runner = _Counting(runner, at=1)  # the whole folder, stopped after its first film
    with pytest.raises(KeyboardInterrupt):
        predict.predict_paths([str(tmp_path / "in")], str(out), segmenter=seg, batch_size=1)
    assert sorted(Path(r["file"]).name for r in _rows(out)) == ["f0.png", "f2.png", "f3.png"]
    seg.runner = _Counting(runner)
    kw = {"segmenter": seg, "resume": True}
    assert predict.predict_paths([str(tmp_path / "in")], str(out), **kw) == []
    assert seg.runner.films == 1 and len(_rows(out)) == 4
