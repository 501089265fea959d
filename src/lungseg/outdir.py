"""What an earlier `lungseg predict` left in --out, and what this call does with it: the table
(results.csv) and run record (run.json) read back; the films of earlier calls kept in the table
and their output names reserved; `--resume`'s finished films; ground-truth masks never
replaced; one call at a time per folder."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .files import MASK, OVERLAY, file_sha256, file_stamp, output_name, same_file
from .inputs import film_key, output_stems
from .png import predicted_marks
from .table import TABLE, read_table

log = logging.getLogger(__name__)
RECORD = "run.json"  # what made the outputs in --out: lungseg version, model, options
SAME_RUN = ("model_sha256", "postprocess", "rebuild", "full_grid")  # a table's rows share them
MISSING = "no such file, or no supported image in it"  # an input's error row: no film
MASK_PNG = f"{MASK}.png"


@dataclass
class Earlier:
    """What earlier calls left in --out: their table's rows by film (`film_key`; relative paths
    from `base`, the folder run.json records), that run record (None: none readable), and by
    output name the film each lungseg mask there is of and that film's stamp when it was read
    (`png.predicted_marks`: the masks are read once)."""

    rows: dict[str, dict]
    record: dict | None
    base: Path
    present: set[str]  # the names in --out (listed once)
    masks: dict[str, str | None]  # None: not lungseg's mask
    stamps: dict[str, str]  # "": not said

    def names(self) -> dict[str, str]:
        """Film -> its output name (`<name>_mask.png`) in the table."""
        return {k: output_name(r["mask"]) for k, r in self.rows.items() if r["mask"]}


def read_earlier(out_dir: Path) -> Earlier:
    record = _read_record(out_dir)
    base = Path(record.get("cwd") or ".") if record else Path()
    rows = {film_key(base / r["file"]): r for r in read_table(out_dir, base)}
    present = set(os.listdir(out_dir))
    marks = {output_name(n): predicted_marks(out_dir / n) for n in present if n.endswith(MASK_PNG)}
    masks = {name: None if m is None else m[0] for name, m in marks.items()}
    stamps = {name: m[1] for name, m in marks.items() if m is not None}
    return Earlier(rows, record, base, present, masks, stamps)


def film_mark(key: str) -> str:
    """What predict writes into a film's outputs to say whose they are (`png.predicted_marks`):
    a digest of its `film_key`, so that no name from the film's path lands in the file."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _read_record(out_dir: Path) -> dict | None:
    try:
        record = json.loads((out_dir / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return {"rebuild": False, **record} if isinstance(record, dict) else None  # (before 12-06)


def run_record(model: Path | None, postprocess: bool, full_grid: bool, bf16: bool = False,
               rebuild: bool = False) -> dict:  # fmt: skip
    """What makes a run's outputs (the model file by its SHA-256; None when it is not known:
    `Segmenter.model_file`; `rebuild`: lost lungs rebuilt), written to OUT/run.json and
    compared by `--resume` (`bf16`: the PyTorch model ran in bf16 autocast; masks within a few
    boundary pixels of fp32, so a resume that changes it is warned about, not refused)."""
    return {
        "lungseg": __version__,
        "model": str(model) if model else None,
        "model_sha256": file_sha256(model) if model is not None else None,
        "postprocess": postprocess,
        "rebuild": rebuild,
        "full_grid": full_grid,
        "bf16": bf16,
        "cwd": os.getcwd(),  # relative input paths in results.csv are relative to it
    }


def _differ(earlier: dict, record: dict) -> str:
    """The settings in SAME_RUN that two run records do not share, said ("" when none)."""
    differ = [k for k in SAME_RUN if earlier.get(k) != record[k]]
    return ", ".join(f"{k} {earlier.get(k)!r} (now {record[k]!r})" for k in differ)


def plan(earlier: Earlier, record: dict, files: list[Path], missing: list[str], out_dir: Path):
    """-> (output name per film; rows of the films that earlier calls segmented and this one
    is not given; {index: earlier row} of the films given again, kept until each is redone).
    A film keeps the name its outputs have (marked inside them, or, for older outputs, in the
    table); every other lungseg mask in --out keeps its own (its files are never replaced by
    another film's). Earlier rows are kept only while run.json names the same model and
    options (paths made absolute when the earlier call ran in another folder); else the table
    lists this call's films only, said. Rows of inputs that were missing are not carried."""
    keys = [film_key(f) for f in files]
    given = {*keys, *map(film_key, missing)}
    table, on_disk = earlier.names(), earlier.masks
    owner = {mark: name for name, mark in on_disk.items() if mark}

    def name_of(key: str) -> str | None:
        name = owner.get(mark := film_mark(key)) or table.get(key)
        return name if name and on_disk.get(name, "") in ("", mark) else None

    own = list(map(name_of, keys))
    others = {k: r for k, r in earlier.rows.items() if k not in given and r["error"] != MISSING}
    reserved = {table[k] for k in others if k in table}  # (a mark inside outranks the table)
    reserved = (reserved | {n for n, mark in on_disk.items() if mark is not None}) - set(own)
    stems = output_stems(files, reserved, own)
    again = {i: {**earlier.rows[k], "file": str(files[i])}  # until the film is done again
             for i, k in enumerate(keys) if k in earlier.rows}  # fmt: skip
    check_overwrites(out_dir, stems, earlier)
    said = "no readable run.json" if earlier.record is None else _differ(earlier.record, record)
    if said or record["model_sha256"] is None:  # (no earlier row passes for this run's)
        if others:
            log.warning("%s lists %d films that earlier calls segmented with another model or "
                        "options (%s): the new table lists this call's films only (their files "
                        "stay, under their names)", out_dir / TABLE, len(others),
                        said or "model not known")  # fmt: skip
        return stems, [], {}
    same = os.path.abspath(earlier.base) == os.getcwd()
    return stems, [r if same else {**r, "file": os.path.abspath(earlier.base / r["file"])}
                   for r in others.values()], again  # fmt: skip


def check_overwrites(out_dir: Path, stems: list[str], earlier: Earlier) -> None:
    """Refuse to replace a <stem>_mask.png that lungseg did not write: with --out on the films'
    own folder it may be a ground-truth mask. One that `predict` wrote (marked inside,
    `png.predicted`; earlier versions: listed in the folder's results.csv, or with its
    <stem>_overlay.png beside it) is replaced as usual."""
    present = earlier.present
    ours = {output_name(r["mask"]) or Path(k).stem for k, r in earlier.rows.items()}
    foreign = [
        f"{s}{MASK_PNG}"
        for s in stems
        if f"{s}{MASK_PNG}" in present
        and f"{s}{OVERLAY}.png" not in present
        and s not in ours
        and earlier.masks.get(s) is None
    ]
    if foreign:
        raise ValueError(
            f"{out_dir / foreign[0]} exists and is not an earlier lungseg output (it may be a "
            f"ground-truth mask; {len(foreign)} such files): choose another --out"
        )


def resumable(earlier: Earlier, record: dict, out_dir: Path) -> dict[str, dict]:
    """`--resume`: the earlier rows by film, when the run record in `out_dir` names the same
    model and options (else ValueError, saying which differ); empty, with a warning, when
    there is no record (nothing to trust)."""
    was = earlier.record
    if was is None:
        if earlier.rows:
            log.warning("--resume: %s has no readable %s: every film is segmented again",
                        out_dir, RECORD)  # fmt: skip
        return {}
    if said := _differ(was, record):
        raise ValueError(
            f"--resume: the outputs in {out_dir} were made with {said} (model "
            f"{was.get('model')}); resume with the same --model and options"
            f"{' (--no-rebuild: lost lungs left as they were)' * (' rebuild ' in f' {said}')}, "
            "or leave out --resume to segment every film again"
        )
    if was.get("bf16", False) != record["bf16"]:
        how = "in bf16" if was.get("bf16") else "in fp32"
        log.warning("--resume: the films in %s were segmented %s, the rest will not be: their "
                    "masks may differ in a few boundary pixels", out_dir, how)  # fmt: skip
    if was.get("lungseg") != record["lungseg"]:
        log.warning("--resume: %s was written by lungseg %s, this is %s",
                    out_dir, was.get("lungseg"), record["lungseg"])  # fmt: skip
    return earlier.rows


def finished(rows: dict[str, dict], files: list[Path], stems: list[str], out_dir: Path,
             outputs: tuple[str, ...], earlier: Earlier) -> dict[int, dict]:  # fmt: skip
    """`--resume`: index -> earlier row (`resumable`) of each film that an earlier run into
    `out_dir` segmented under the same output name, with every output asked for (`outputs`:
    suffixes such as "_mask.png") still there (`earlier.present`), made from the film as it is
    (`_unchanged`). Films that failed then, or changed since, are segmented again."""
    present = earlier.present
    done = {}
    for i, (f, stem) in enumerate(zip(files, stems, strict=True)):
        row = rows.get(film_key(f))
        if (
            row
            and row.get("quality") not in (None, "error")
            and row.get("mask") == f"{stem}{MASK_PNG}"
            and all(stem + s in present for s in outputs)
            and _unchanged(out_dir / row["mask"], earlier.stamps.get(stem, ""), f)
        ):
            done[i] = {**row, "file": str(f), "error": ""}
    if rows and not done:
        log.warning(
            "--resume: none of these inputs is finished in %s (a row of its results.csv, of %d, "
            "with every output asked for, made from the film as it is): all are segmented",
            out_dir, len(rows),
        )  # fmt: skip
    return done


def _unchanged(mask: Path, stamp: str, film: Path) -> bool:
    """True when `film` is the file that `mask` was made from: its size and modification time
    as the mask records them (`stamp`: a film replaced since, even by an older file, differs);
    masks written before 2026-12-07 do not record them: the mask newer than the film."""
    if stamp:
        return same_file(stamp, file_stamp(film))
    return mask.stat().st_mtime >= film.stat().st_mtime


LOCK = ".lungseg-predict.lock"


@contextlib.contextmanager
def exclusive(out_dir: Path):
    """Hold `out_dir` for one `predict` call (a lock on OUT/.lungseg-predict.lock, released
    when the call ends or dies; NFS carries it to the server): a second call is refused
    (ValueError). Without file locks (Windows, some mounts) a warning says so."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        log.warning("%s: no file locks here: run one predict at a time into it", out_dir)
        yield
        return
    try:
        fd = os.open(out_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:  # another user's lock file in a shared folder: read is enough here
        fd = os.open(out_dir / LOCK, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(
                f"another lungseg predict is writing into {out_dir}: wait for it to end, or "
                "choose another --out"
            ) from None
        except OSError as e:  # no lock support on this file system
            log.warning("%s: cannot lock it (%s): run one predict at a time into it", out_dir, e)
        yield
    finally:
        os.close(fd)
