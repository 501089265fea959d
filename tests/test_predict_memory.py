"""`predict` bounds the films it holds by their pixels, read from headers (`film_pixels`), so a
folder of very large scans does not fill the memory; results do not depend on the bound."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from dicomfiles import write_dicom
from PIL import Image

import lungseg.pipeline as pipeline
import lungseg.predict as predict
from lungseg.imageio import film_pixels
from lungseg.segmenter import Segmenter


def test_film_pixels_reads_headers_of_each_format(tmp_path):
    rng = np.random.default_rng(0)
    film = rng.integers(0, 255, (30, 50), dtype=np.uint8)
    for name in ("a.png", "a.jpg", "a.tif", "a.bmp"):
        Image.fromarray(film).save(tmp_path / name)
        assert film_pixels(tmp_path / name) == 30 * 50, name
    Image.fromarray(film.astype(np.uint16) * 200).save(tmp_path / "b16.png")
    assert film_pixels(tmp_path / "b16.png") == 1500
    write_dicom(tmp_path / "c.dcm", np.zeros((20, 70)))
    assert film_pixels(tmp_path / "c.dcm") == 20 * 70
    frames = np.zeros((3, 20, 70))  # all frames are read: all are counted
    write_dicom(tmp_path / "m.dcm", frames, Rows=20, Columns=70, NumberOfFrames=3)
    assert film_pixels(tmp_path / "m.dcm") == 3 * 20 * 70
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert film_pixels(tmp_path / "text.png") == film_pixels(tmp_path / "empty.jpg") == 0
    assert film_pixels(tmp_path / "missing.dcm") == 0


def _films(folder: Path, sizes: list[tuple[int, int]]) -> list[Path]:
    folder.mkdir()
    rng = np.random.default_rng(1)
    paths = []
    for k, (h, w) in enumerate(sizes):
        paths.append(folder / f"f{k:02d}.png")
        Image.fromarray(rng.integers(0, 255, (h, w), dtype=np.uint8)).save(paths[-1])
    return paths


def _in_flight(monkeypatch, seg: Segmenter) -> list[int]:
    """Pixels of the films whose decoding had started and whose post-processing had not ended,
    recorded as each decoding starts (a lower bound of what predict holds then)."""
    lock, held, seen = threading.Lock(), {}, []
    load = pipeline.load

    def counting_load(s, path):
        with lock:
            held[path] = film_pixels(path)
            seen.append(sum(held.values()))
        loaded = load(s, path)
        if loaded[-1]:  # not readable: no post-processing will follow
            with lock:
                held.pop(path)
        return loaded

    def counting_finish(prob, g, rad):
        res = Segmenter.finish(seg, prob, g, rad)
        with lock:
            held.pop(Path(rad.path))
        return res

    monkeypatch.setattr(pipeline, "load", counting_load)
    seg.finish = counting_finish
    return seen


@pytest.mark.parametrize("budget", [3 * 48 * 40, 1000])
def test_predict_holds_films_within_the_pixel_budget(tiny_model, tmp_path, monkeypatch, budget):
    """12 films of 48x40 px (one 60x40) with room for 3 (or, at 1000, for less than one: then
    one at a time); a broken file among them releases its share. Same outputs as unbounded."""
    films = _films(tmp_path / "in", [(48, 40)] * 5 + [(60, 40)] + [(48, 40)] * 6)
    broken = tmp_path / "in" / "f05b.png"  # truncated: its header counts 48x40 px
    broken.write_bytes(films[0].read_bytes()[:60])
    seg = Segmenter(tiny_model, device="cpu")
    ref = tmp_path / "ref"
    failed = predict.predict_paths([str(tmp_path / "in")], str(ref), segmenter=seg)
    assert failed == [str(broken)] and film_pixels(broken) == 48 * 40
    seen = _in_flight(monkeypatch, seg)
    out = tmp_path / "out"
    kw = {"batch_size": 2, "workers": 2, "segmenter": seg, "read_ahead_pixels": budget}
    assert predict.predict_paths([str(tmp_path / "in")], str(out), **kw) == failed
    assert len(seen) == len(films) + 1
    if budget > 60 * 40:
        assert max(seen) <= budget and max(seen) >= 2 * 48 * 40  # bounded, still overlapping
    else:
        assert max(seen) == 60 * 40  # one film at a time (the largest alone)
    for f in films:
        for kind in ("mask", "overlay"):
            name = f"{f.stem}_{kind}.png"
            assert (out / name).read_bytes() == (ref / name).read_bytes(), name
    assert (out / "results.csv").read_text() == (ref / "results.csv").read_text().replace(
        str(ref), str(out)
    )


def test_predict_without_a_pixel_budget_reads_ahead_by_count(tiny_model, tmp_path, monkeypatch):
    """The default budget does not bind on ordinary films: the count limit does (2 x batch +
    workers films ahead of the model), as before."""
    _films(tmp_path / "in", [(48, 40)] * 12)
    seg = Segmenter(tiny_model, device="cpu")
    seen = _in_flight(monkeypatch, seg)
    kw = {"batch_size": 2, "workers": 2, "segmenter": seg}
    assert predict.predict_paths([str(tmp_path / "in")], str(tmp_path / "out"), **kw) == []
    assert max(seen) > 3 * 48 * 40
