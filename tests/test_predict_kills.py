"""`predict` stopped at the worst moment (killed between a film's files, the disk full as the
table is written, an output that cannot be written) leaves --out as --resume can trust: no
earlier row lost, no old result taken for a new one, and messages that name what failed."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import lungseg.predict as predict
from lungseg.segmenter import Segmenter


def _films(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(5)
    paths = [folder / f"f{k:02d}.png" for k in range(n)]
    for k, p in enumerate(paths):
        Image.fromarray(rng.integers(0, 255, (40 + k % 3, 48), dtype=np.uint8)).save(p)
    return paths


def _rows(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


class _Counting:
    def __init__(self, runner, stop_after: int | None = None):
        self.runner, self.films, self.stop_after = runner, 0, stop_after

    def __call__(self, x):
        if self.stop_after is not None and self.films >= self.stop_after:
            raise KeyboardInterrupt
        self.films += len(x)
        return self.runner(x)


def _run(code: str, **env) -> subprocess.CompletedProcess:
    """`code` in a fresh Python (a process that may be killed or limited)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **env})  # fmt: skip


def test_a_kill_between_a_films_files_is_redone_by_resume(tiny_model, tmp_path):
    """Killed after a changed film's new overlay was written and before its mask: --resume
    segments it again (its mask, written last, still names the film it was made from), so the
    film's row, mask and overlay all come from the new film."""
    films = _films(tmp_path / "in", 2)
    out = tmp_path / "out"
    seg = Segmenter(tiny_model, device="cpu")
    assert predict.predict_paths([str(tmp_path / "in")], str(out), segmenter=seg) == []
    Image.fromarray(np.full((60, 48), 90, np.uint8)).save(films[0])  # the film replaced
    killed = _run(f"""
        import os
        import lungseg.predict as predict
        from lungseg.png import write_png
        def dying(path, *a, **k):
            if str(path).endswith("f00_overlay.png"):
                os._exit(9)  # as a kill -9 there
            write_png(path, *a, **k)
        predict.write_png = dying
        predict.predict_paths([{str(tmp_path / "in")!r}], {str(out)!r}, model={str(tiny_model)!r},
                              workers=1, batch_size=1, device="cpu")
    """)
    assert killed.returncode == 9
    seg.runner = _Counting(seg.runner)
    assert predict.predict_paths([str(tmp_path / "in")], str(out), segmenter=seg, resume=True) == []
    assert seg.runner.films >= 1
    row = next(r for r in _rows(out) if r["file"].endswith("f00.png"))
    assert row["height"] == "60"
    assert np.asarray(Image.open(out / "f00_mask.png")).shape == (60, 48)
    assert np.asarray(Image.open(out / "f00_overlay.png")).shape == (60, 48)


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE: a full disk, as Linux has it")
def test_a_full_disk_as_the_table_is_written_keeps_the_earlier_rows(tiny_model, tmp_path):
    """The disk fills up as a call writes results.csv with the earlier calls' rows: the table
    stays as it was (no row lost), and the call ends with one line naming the file."""
    _films(tmp_path / "in", 24)
    out = tmp_path / "out"
    seg = Segmenter(tiny_model, device="cpu")
    assert predict.predict_paths([str(tmp_path / "in")], str(out), segmenter=seg) == []
    before = (out / "results.csv").read_bytes()
    assert len(before) > 3000
    Image.fromarray(np.zeros((50, 50), np.uint8)).save(tmp_path / "new.png")
    full = _run(f"""
        import resource, signal, sys
        from lungseg.cli import main
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # (a write past the limit: EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))
        sys.exit(main(["predict", {str(tmp_path / "new.png")!r}, "--out", {str(out)!r},
                       "--model", {str(tiny_model)!r}, "--device", "cpu"]))
    """)
    assert full.returncode == 1, full.stderr
    assert (out / "results.csv").read_bytes() == before
    assert "results.csv: File too large" in full.stderr and "Traceback" not in full.stderr
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_an_output_that_cannot_be_written_is_named(tiny_model, tmp_path, monkeypatch):
    """A film whose overlay cannot be written (a full disk) is reported with that file's name
    and the system's reason, and its earlier mask is left as it was."""
    _films(tmp_path / "in", 1)
    out = tmp_path / "out"
    seg = Segmenter(tiny_model, device="cpu")
    assert predict.predict_paths([str(tmp_path / "in")], str(out), segmenter=seg) == []
    mask = (out / "f00_mask.png").read_bytes()
    real = Path.write_bytes

    def full(self, data):
        if self.name.endswith("_overlay.png.tmp"):
            raise OSError(28, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    failed = predict.predict_paths([str(tmp_path / "in")], str(out), segmenter=seg)
    assert len(failed) == 1
    (row,) = _rows(out)
    assert f"cannot write {out / 'f00_overlay.png'}: No space left on device" in row["error"]
    assert (out / "f00_mask.png").read_bytes() == mask


def test_resume_never_takes_rows_of_another_model_or_options(tiny_model, tmp_path):
    """A call with other options, stopped early, then --resume with those options: the films
    the stopped call had not reached are segmented again (their rows and masks came from the
    earlier options), not passed off as done."""
    _films(tmp_path / "in", 4)
    out = tmp_path / "out"
    seg = Segmenter(tiny_model, device="cpu")
    assert predict.predict_paths([str(tmp_path / "in")], str(out), segmenter=seg) == []
    raw = Segmenter(tiny_model, device="cpu", postprocess=False)
    raw.runner = _Counting(raw.runner, stop_after=1)
    kw = {"segmenter": raw, "batch_size": 1, "workers": 1}
    with pytest.raises(KeyboardInterrupt):
        predict.predict_paths([str(tmp_path / "in")], str(out), **kw)
    raw.runner = _Counting(raw.runner.runner)
    assert predict.predict_paths([str(tmp_path / "in")], str(out), **kw, resume=True) == []
    assert raw.runner.films == 3 and len(_rows(out)) == 4


@pytest.mark.parametrize("text", ["", "\n", "\r\n"])
def test_an_empty_table_does_not_stop_the_next_call(tiny_model, tmp_path, text):
    """results.csv left empty (a kill or a full disk as it was written, before this version):
    the next call goes on; the films there keep their names (their masks say whose they are)."""
    _films(tmp_path / "in", 2)
    out = tmp_path / "out"
    seg = Segmenter(tiny_model, device="cpu")
    assert predict.predict_paths([str(tmp_path / "in")], str(out), segmenter=seg) == []
    (out / "results.csv").write_text(text)
    assert predict.predict_paths([str(tmp_path / "in")], str(out), segmenter=seg) == []
    assert sorted(r["mask"] for r in _rows(out)) == ["f00_mask.png", "f01_mask.png"]
