"""What `lungseg predict` takes as input and how it names outputs; user mistakes on the command
line end in a message and exit code 2, not a traceback."""

from __future__ import annotations

import csv
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lungseg.cli import main
from lungseg.imageio import Radiograph
from lungseg.inputs import collect_inputs, output_stems
from lungseg.metrics import confusion
from lungseg.model import DEFAULT_WEIGHTS
from lungseg.phantom import make_phantom
from lungseg.predict import predict_paths
from lungseg.segmenter import Segmenter


def _film(path: Path, h: int = 40, w: int = 32) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w), 128, np.uint8)).save(path)
    return path


def test_folders_skip_masks_outputs_and_dicomdir_but_named_files_are_taken(tmp_path):
    d = tmp_path / "in"
    film = _film(d / "film.png")
    _film(d / "film_mask.png")  # a data set's ground truth beside its film
    _film(d / "old" / "x_overlay.png")
    _film(d / "res" / "anything.png")  # inside --out
    (d / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM")
    files, missing = collect_inputs([str(d)], out=d / "res")
    assert files == [film] and missing == []
    files, _ = collect_inputs([str(d / "film_mask.png")], out=d / "res")
    assert files == [d / "film_mask.png"]  # asked for by name
    (d / "notes.txt").write_text("not a film")
    files, _ = collect_inputs([str(d / "*.png")])
    assert files == [film]
    files, _ = collect_inputs([str(d / "*")], out=d / "res")  # folders it matches are searched
    assert files == [film]


def test_data_layouts_mask_folders_and_macos_leftovers_are_not_films(tmp_path):
    """A data root as downloaded: only the films are segmented or used for int8 calibration."""
    from lungseg.export import find_images

    d = tmp_path / "chest-xray-masks"  # the folder's own name is not a mask folder
    films = [_film(d / "CXR_png" / "MCUCXR_0001_0.png"), _film(d / "jsrt" / "JPCLN001.png")]
    _film(d / "masks" / "MCUCXR_0001_0.png")
    _film(d / "ManualMask" / "leftMask" / "MCUCXR_0001_0.png")
    _film(d / "jsrt" / "masks" / "left lung" / "JPCLN001.png")
    _film(d / "__MACOSX" / "CXR_png" / "MCUCXR_0001_0.png")
    _film(d / "CXR_png" / "._MCUCXR_0001_0.png")
    assert collect_inputs([str(d)])[0] == sorted(films)
    assert find_images(d) == sorted(films)
    assert collect_inputs([str(d / "**" / "*.png")])[0] == sorted(films)  # a glob, the same


def test_predicting_twice_into_the_input_folder_does_not_segment_its_own_outputs(
    tiny_model, tmp_path
):
    d = tmp_path / "in"
    _film(d / "a.png")
    _film(d / "b.png")
    for _ in range(2):
        assert main(["predict", str(d), "--out", str(d), "--model", str(tiny_model)]) == 0
    rows = list(csv.DictReader(open(d / "results.csv")))
    assert [Path(r["file"]).name for r in rows] == ["a.png", "b.png"]
    assert sorted(p.name for p in d.glob("*mask*")) == ["a_mask.png", "b_mask.png"]


def test_ground_truth_masks_beside_the_films_are_never_overwritten(tiny_model, tmp_path, caplog):
    """--out on the films' own folder: a.png's ground truth a_mask.png must survive; an earlier
    lungseg run's outputs there are replaced as usual."""
    d = tmp_path / "in"
    _film(d / "a.png")
    truth = _film(d / "a_mask.png").read_bytes()
    assert main(["predict", str(d), "--out", str(d), "--model", str(tiny_model)]) == 2
    assert "a_mask.png exists and is not an earlier lungseg output" in caplog.text
    assert (d / "a_mask.png").read_bytes() == truth and not (d / "results.csv").exists()
    out = tmp_path / "out"
    for _ in range(2):  # the second run replaces the first's outputs
        assert (
            main(["predict", str(d / "a.png"), "--out", str(out), "--model", str(tiny_model)]) == 0
        )
    (out / "results.csv").unlink()  # an overlay beside the mask also marks lungseg's own output
    assert main(["predict", str(d / "a.png"), "--out", str(out), "--model", str(tiny_model)]) == 0


def test_a_quoted_glob_matching_folders_searches_them(tmp_path):
    films = [_film(tmp_path / "dup" / sub / "film.png") for sub in ("a", "b")]
    assert collect_inputs([str(tmp_path / "dup" / "[ab]")]) == (films, [])


def test_linked_folders_are_searched_once_and_links_to_one_film_are_each_a_film(tmp_path):
    """A ward's folder linked into the scans is searched; a link loop adds nothing; two links
    with their own names to one file are two inputs (the benchmarks link films so)."""
    d = tmp_path / "scans"
    film = _film(d / "a.png")
    ward = [_film(tmp_path / "elsewhere" / n) for n in ("b.png", "c.png")]
    (d / "ward_b").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (d / "ward_b_again").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere" / "loop").symlink_to(d, target_is_directory=True)
    (d / "a_copy.png").symlink_to(film)
    found = collect_inputs([str(d)])[0]
    assert len(found) == 4 and {f.name for f in found} == {"a.png", "a_copy.png", "b.png", "c.png"}
    assert {f.resolve() for f in found} == {film.resolve(), *(w.resolve() for w in ward)}
    globbed = collect_inputs([str(d / "**" / "*.png")])[0]  # a glob through the loop, the same
    assert sorted(f.name for f in globbed) == ["a.png", "a_copy.png", "b.png", "c.png"]
    again = str(d / "ward_b" / "loop" / "a.png")  # the same folder entry by another path
    assert collect_inputs([str(film), again])[0] == [film]


def test_a_double_star_glob_matches_as_pythons_glob_and_searches_only_where_it_can_match(
    tmp_path, monkeypatch
):
    """`**` is matched on a walk of its fixed prefix: the same films as glob.glob (a trailing
    `**` after a name takes no file of that name; no hidden folder), and a linked folder where
    no match can lie (a hidden snapshot of the whole disk) is not searched."""
    import lungseg.walk

    d = tmp_path / "scans"
    films = [_film(d / "ward_1" / "a.png"), _film(d / "ward_1" / "old" / "b.png")]
    _film(d / "ward_notes.png")  # no folder: `ward*/**` takes nothing of it
    _film(d / ".snap" / "c.png")  # hidden: not for `**`
    (d / "other").mkdir()
    _film(tmp_path / "elsewhere" / "x.png")
    (d / "other" / "disk").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    entered, walk = [], lungseg.walk.files_under

    def recorded(folder, enter=None):  # the folders the walk is asked to enter
        return walk(folder, enter and (lambda parts: entered.append(parts) or enter(parts)))

    monkeypatch.setattr(lungseg.walk, "files_under", recorded)
    assert collect_inputs([str(d / "ward*" / "**")])[0] == films
    assert ("other",) in entered and ("other", "disk") not in entered  # pruned: cannot match
    everywhere = [d / "other" / "disk" / "x.png", *films, d / "ward_notes.png"]  # (no .snap)
    assert collect_inputs([str(d / "**" / "*.png")])[0] == everywhere


def test_a_folder_linked_inside_the_tree_is_searched_under_its_own_name(tmp_path, monkeypatch):
    """A link that lists before its target (zzz -> masks/, aaa -> ward_b/) is not where the
    folder is searched: the masks stay masks, and a glob naming ward_b finds its films. A bare
    '**' does not take the hidden folders of the current one."""
    d = tmp_path / "scans"
    film, ward = _film(d / "a.png"), _film(d / "ward_b" / "b.png")
    _film(d / "masks" / "a.png")  # ground truth
    (d / "zzz").symlink_to(d / "masks", target_is_directory=True)
    (d / "aaa").symlink_to(d / "ward_b", target_is_directory=True)
    assert collect_inputs([str(d)])[0] == [film, ward]
    assert collect_inputs([str(d / "**" / "ward_b" / "*.png")])[0] == [ward]
    _film(d / ".snap" / "c.png")
    monkeypatch.chdir(d)
    assert collect_inputs(["**"])[0] == [Path("a.png"), Path("ward_b/b.png")]


def test_output_names_never_collide():
    files = [Path("d/a/film.png"), Path("d/b/film.png"), Path("d/film_2.png"), Path("e/film.png")]
    stems = output_stems(files)
    assert len(set(stems)) == len(files)
    assert stems[0] == "film" and stems[2] == "film_2"  # an input's own name is kept when free
    # Film.png and film.png would be one file on macOS and Windows
    assert len({s.casefold() for s in output_stems([Path("a/Film.png"), Path("b/film.png")])}) == 2


def test_table_names_each_rows_mask_and_lists_missing_inputs(tiny_model, tmp_path):
    _film(tmp_path / "x" / "film.png")
    _film(tmp_path / "y" / "film.png")
    out = tmp_path / "out"
    argv = [str(tmp_path / "x"), str(tmp_path / "y"), str(tmp_path / "gone.png")]
    failed = predict_paths(argv, str(out), model=str(tiny_model))
    assert failed == [str(tmp_path / "gone.png")]
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [r["mask"] for r in rows[:2]] == ["film_mask.png", "film_2_mask.png"]
    assert list(rows[0])[-6:-4] == ["mask", "view"]  # appended: earlier columns keep their places
    assert list(rows[0])[-4:] == ["right_height_px", "left_height_px", "right_height_mm",
                                  "left_height_mm"]  # fmt: skip
    assert all((out / r["mask"]).is_file() for r in rows[:2])
    assert rows[2]["file"].endswith("gone.png") and rows[2]["quality"] == "error"


@pytest.mark.parametrize("flag", ["--batch-size", "--workers"])
@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_counts_below_one_are_refused(tmp_path, flag, value, capsys):
    with pytest.raises(SystemExit) as e:
        main(["predict", str(tmp_path), "--out", str(tmp_path / "o"), flag, value])
    assert e.value.code == 2 and flag in capsys.readouterr().err
    with pytest.raises(ValueError, match="batch-size"):
        predict_paths([str(tmp_path)], str(tmp_path / "o"), batch_size=0)


def test_user_mistakes_end_in_a_message(tiny_model, tmp_path, caplog):
    film = _film(tmp_path / "in" / "film.png")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "bad.safetensors").write_bytes(b"junk")
    (tmp_path / "bad.onnx").write_bytes(b"junk")
    base = ["predict", str(film), "--out"]
    assert main([*base, str(tmp_path / "afile"), "--model", str(tiny_model)]) == 2
    assert "afile: File exists; check the path (--out must be a folder" in caplog.text
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")  # a link to a folder not (yet) made
    assert main([*base, str(tmp_path / "gone"), "--model", str(tiny_model)]) == 2
    assert (
        f"gone: a link to {tmp_path / 'nowhere'}, which does not exist (create it)" in caplog.text
    )
    for bad in ("bad.safetensors", "bad.onnx"):
        assert main([*base, str(tmp_path / "o"), "--model", str(tmp_path / bad)]) == 2
        assert f"{bad}: not a readable" in caplog.text
    if not torch.cuda.is_available():
        assert main([*base, str(tmp_path / "o"), "--model", str(tiny_model), "--device", "cuda"])
        assert "no CUDA GPU" in caplog.text


def test_an_oversized_film_is_refused_without_pillows_warning(tiny_model, tmp_path, recwarn):
    """A header claiming 144 MP: lungseg's refusal, and not Pillow's decompression-bomb warning
    beside it."""
    screen = struct.pack("<HHBBB", 12000, 12000, 0, 0, 0)
    image = b"," + struct.pack("<HHHHB", 0, 0, 12000, 12000, 0)
    (tmp_path / "big.gif").write_bytes(b"GIF89a" + screen + image + b"\x08\x00;")
    argv = ["predict", str(tmp_path / "big.gif"), "--out", str(tmp_path / "o")]
    assert main([*argv, "--model", str(tiny_model)]) == 1
    assert not [w for w in recwarn if "decompression bomb" in str(w.message)]


def test_verbose_flag_after_the_subcommand(tiny_model, tmp_path):
    film = _film(tmp_path / "film.png")
    argv = ["predict", str(film), "--out", str(tmp_path / "o"), "--model", str(tiny_model)]
    assert main([*argv, "-v"]) == 0 and main(["-v", *argv]) == 0


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="shipped model not present")
@pytest.mark.parametrize("flipped,upside_down", [(True, False), (False, True), (True, True)])
def test_a_film_displayed_mirrored_or_upside_down_is_segmented_as_the_upright_film(
    flipped, upside_down
):
    """PatientOrientation 'R' and/or 'H': the model sees the film upright, and the lungs come back
    on the film's own grid with the patient's right lung labelled right."""
    ph = make_phantom(size=512, seed=1)
    seg = Segmenter.default(device="cpu")
    plain = seg(Radiograph(ph.image))
    turn = (slice(None, None, -1 if upside_down else 1), slice(None, None, -1 if flipped else 1))
    shown = np.ascontiguousarray(ph.image[turn])
    res = seg(Radiograph(shown, flipped=flipped, upside_down=upside_down))
    assert confusion(res.mask, plain.mask[turn]).dice > 0.999
    assert confusion(res.labels == 1, ph.right[turn]).dice > 0.85
    assert res.stats["right_area_px"] == pytest.approx(plain.stats["right_area_px"], rel=0.01)


def test_dicoms_named_by_uid_get_their_whole_name_as_output_name():
    uids = [Path("a/1.2.840.113619.7"), Path("a/1.2.840.113619.8"), Path("a/IM0001")]
    assert output_stems(uids) == ["1.2.840.113619.7", "1.2.840.113619.8", "IM0001"]
    assert output_stems([Path("b/film.PNG"), Path("b/x.dcm")]) == ["film", "x"]


def test_films_may_follow_options_on_the_command_line(tiny_model, tmp_path, capsys):
    """`predict a.png --labels b.png`: b.png is a film too, as shells users write it; an
    unknown option is still refused."""
    a, b = _film(tmp_path / "a.png"), _film(tmp_path / "b.png")
    out = tmp_path / "out"
    argv = ["predict", str(a), "--out", str(out), "--labels", str(b), "--model", str(tiny_model)]
    assert main(argv) == 0
    assert [Path(r["file"]).name for r in csv.DictReader(open(out / "results.csv"))] == [
        "a.png",
        "b.png",
    ]
    with pytest.raises(SystemExit) as e:
        main([*argv, "--lables"])
    assert e.value.code == 2 and "unrecognized arguments: --lables" in capsys.readouterr().err
