"""What `lungseg predict` reads and where it writes: files, folders and globs -> the films, one
output name per film, and what an earlier run left in --out (refused when not ours; its table
kept, and reused by `--resume`, when the run record says the same model and options made it)."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from pathlib import Path

from . import __version__
from .files import MASK, OVERLAY, film_stem, is_byproduct, is_supported
from .png import predicted
from .walk import files_under, glob_files, glob_root

log = logging.getLogger(__name__)
TABLE = "results.csv"
RECORD = "run.json"  # what made the outputs in --out: lungseg version, model, options
# what --resume requires unchanged
SAME_RUN = ("model_sha256", "postprocess", "rebuild", "full_grid")
CSV_TEXT = {"encoding": "utf-8", "errors": "surrogateescape", "newline": ""}  # any file name
TEXT_FIELDS = {
    "file",
    "quality",
    "flags",
    "error",
    "mask",
    "view",
}  # the other columns hold numbers


def collect_inputs(paths: list[str], out: str | Path | None = None) -> tuple[list[Path], list[str]]:
    """Expand files, folders (recursive, linked folders followed) and globs -> (image files,
    inputs that matched nothing). A folder entry reached by several paths (a link loop, a
    folder given twice) is taken once. Folders and globs skip what is not a film
    (`files.is_byproduct`: masks and lungseg's own outputs by name, DICOMDIR, OS leftovers
    such as `._*`, .DS_Store, Thumbs.db, `__MACOSX/`, and, below the searched folder or a glob's
    fixed prefix, anything in mask/, masks/, ManualMask/, leftMask/ or rightMask/) and an `out`
    folder inside a searched folder; a file named explicitly is always taken."""
    out_dir = Path(out).resolve() if out is not None else None
    files, missing, skipped = [], [], 0
    for p in paths:
        path = Path(p)
        if path.is_file():
            files.append(path)
            continue
        if path.is_dir():
            root, found = path, files_under(path)
        else:  # a glob; the folders it matches are searched too
            root, found = glob_root(p), glob_files(p)
        found = [f for f in found if f.is_file() and is_supported(f)]
        inner = out_dir if out_dir and root.resolve() in out_dir.parents else None
        if not found:
            missing.append(p)
        kept = [
            f
            for f in sorted(found)
            if not is_byproduct(f, root) and not (inner and inner in f.resolve().parents)
        ]
        skipped += len(found) - len(kept)
        files += kept
    if skipped:
        log.info("skipped %d masks, earlier outputs and other files that are not films", skipped)
    entries = {}  # one film per folder entry, however many paths (links, globs) reach it
    for f in files:
        entries.setdefault((os.path.realpath(f.parent), f.name), f)
    return list(entries.values()), missing


def output_stems(files: list[Path], reserved: set[str] = frozenset()) -> list[str]:
    """Output name per input: its stem (a DICOM named by UID: its whole name, `film_stem`), or
    <stem>_2, _3, ... when that name is already taken (two films called film.png in different
    folders, film.png beside film_2.png, or a name in `reserved`: an earlier call's film in the
    same --out, `other_films`). Names are compared ignoring case, as macOS and Windows file
    systems do."""
    reserved = {r.casefold() for r in reserved}
    taken = {film_stem(f).casefold() for f in files} | reserved
    seen: set[str] = set(reserved)
    out = []
    for f in files:
        stem, n = film_stem(f), 1
        while stem.casefold() in seen or (n > 1 and stem.casefold() in taken):
            n += 1
            stem = f"{film_stem(f)}_{n}"
        seen.add(stem.casefold())
        out.append(stem)
    return out


def check_overwrites(out_dir: Path, stems: list[str], rows: dict[str, dict]) -> None:
    """Refuse to replace a <stem>_mask.png that lungseg did not write: with --out on the films'
    own folder it may be a ground-truth mask. One that `predict` wrote (marked inside,
    `png.predicted`; earlier versions: listed in `rows`, the folder's results.csv as
    `earlier_rows` reads it, or with its <stem>_overlay.png beside it) is replaced as usual."""
    if not out_dir.is_dir():
        return
    present = set(os.listdir(out_dir))
    ours = {r["mask"].removesuffix(f"{MASK}.png") if r.get("mask") else Path(f).stem
            for f, r in rows.items()}  # fmt: skip
    foreign = [
        f"{s}{MASK}.png"
        for s in stems
        if f"{s}{MASK}.png" in present
        and f"{s}{OVERLAY}.png" not in present
        and s not in ours
        and not predicted(out_dir / f"{s}{MASK}.png")
    ]
    if foreign:
        raise ValueError(
            f"{out_dir / foreign[0]} exists and is not an earlier lungseg output (it may be a "
            f"ground-truth mask; {len(foreign)} such files): choose another --out"
        )


def earlier_rows(out_dir: Path) -> dict[str, dict]:
    """The rows of an earlier run's results.csv in `out_dir`, by input file as written, empty
    numeric cells as None and numbers as numbers (as results.json has them); empty when there
    is none or it cannot be read. A run that was stopped leaves the rows of the films it
    finished; a line cut short by a kill is left out."""
    table = out_dir / TABLE
    if not table.is_file():
        return {}
    try:
        with open(table, **CSV_TEXT) as f:
            rows = [r for r in csv.DictReader(f) if r.get("file") and None not in r.values()]
    except (csv.Error, UnicodeError, ValueError) as e:  # e.g. a tail of NULs after a crash
        log.warning("%s cannot be read (%s): its films count as not done", table, e)
        return {}
    return {r["file"]: {k: v if k in TEXT_FIELDS else _number(v) for k, v in r.items() if k}
            for r in rows}  # fmt: skip


def _number(cell: str | None) -> int | float | str | None:
    if not cell:
        return None
    for kind in (int, float):
        try:
            return kind(cell)
        except ValueError:
            pass
    return cell


def run_record(
    model: Path | None,
    postprocess: bool,
    full_grid: bool,
    bf16: bool = False,
    rebuild: bool = False,
) -> dict:
    """What makes a run's outputs (the model file by its SHA-256; None when it is not known:
    `Segmenter.model_file`; `rebuild`: lost lungs rebuilt), written to OUT/run.json and
    compared by `--resume` (`bf16`: the PyTorch model ran in bf16 autocast; masks within a few
    boundary pixels of fp32, so a resume that changes it is warned about, not refused)."""
    sha = hashlib.sha256()
    if model is not None:
        with open(model, "rb") as f:
            while block := f.read(1 << 20):
                sha.update(block)
    return {
        "lungseg": __version__,
        "model": str(model) if model else None,
        "model_sha256": sha.hexdigest() if model is not None else None,
        "postprocess": postprocess,
        "rebuild": rebuild,
        "full_grid": full_grid,
        "bf16": bf16,
        "cwd": os.getcwd(),  # relative input paths in results.csv are relative to it
    }


def replace_text(path: Path, text: str) -> None:
    """Write `text` to `path` in one step: a temporary file beside it, then renamed over it (a
    kill leaves the old file or the new one, never half of it)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", **CSV_TEXT) as f:
        f.write(text)
    os.replace(tmp, path)


def earlier_record(out_dir: Path) -> dict | None:
    """The run record (run.json) an earlier `predict` left in `out_dir`, or None."""
    try:
        earlier = json.loads((out_dir / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return {"rebuild": False, **earlier} if isinstance(earlier, dict) else None  # (before 12-06)


def _differ(earlier: dict, record: dict) -> str:
    """The settings in SAME_RUN that two run records do not share, said ("" when none)."""
    differ = [k for k in SAME_RUN if earlier.get(k) != record[k]]
    return ", ".join(f"{k} {earlier.get(k)!r} (now {record[k]!r})" for k in differ)


def other_films(out_dir: Path, record: dict, rows: dict[str, dict], given: list) -> list[dict]:
    """The rows (`earlier_rows`) of films that earlier `predict` calls into `out_dir` segmented
    and this call is not given (`given`: its inputs), so that an archive segmented in several
    calls into one --out keeps one table of all its films. Kept only when run.json names the
    same model and options (their paths made absolute when the earlier call ran in another
    folder); else none, with a warning: the table then lists this call's films only."""
    earlier = earlier_record(out_dir)
    given_abs = {_absolute(Path(f)) for f in given}
    base = Path(earlier.get("cwd") or ".") if earlier else Path()
    others = {_absolute(base / f): row for f, row in rows.items()}
    others = {f: row for f, row in others.items() if f not in given_abs}
    if not others:
        return []
    said = "no readable run.json" if earlier is None else _differ(earlier, record)
    if said or record["model_sha256"] is None:
        log.warning("%s lists %d films that an earlier call segmented with another model or "
                    "options (%s): the new table lists this call's films only (their files stay)",
                    out_dir / TABLE, len(others), said or "model not known")  # fmt: skip
        return []
    same_cwd = _absolute(base) == _absolute(Path.cwd())
    return [row if same_cwd else {**row, "file": str(f)} for f, row in others.items()]


def resumable(out_dir: Path, record: dict, rows: dict[str, dict]) -> dict[Path, dict]:
    """`--resume`: the earlier `rows` (`earlier_rows`) by the input's absolute path, when the
    run record in `out_dir` names the same model and options (else ValueError, saying which
    differ); empty, with a warning, when there is no record (nothing to trust)."""
    earlier = earlier_record(out_dir)
    if earlier is None:
        if rows:
            log.warning("--resume: %s has no readable %s: every film is segmented again",
                        out_dir, RECORD)  # fmt: skip
        return {}
    if said := _differ(earlier, record):
        raise ValueError(
            f"--resume: the outputs in {out_dir} were made with {said} (model "
            f"{earlier.get('model')}); resume with the same --model and options"
            f"{' (--no-rebuild: lost lungs left as they were)' * record['rebuild']}, "
            "or leave out --resume to segment every film again"
        )
    if earlier.get("bf16", False) != record["bf16"]:
        was = "in bf16" if earlier.get("bf16") else "in fp32"
        log.warning("--resume: the films in %s were segmented %s, the rest will not be: their "
                    "masks may differ in a few boundary pixels", out_dir, was)  # fmt: skip
    if earlier.get("lungseg") != record["lungseg"]:
        log.warning("--resume: %s was written by lungseg %s, this is %s",
                    out_dir, earlier.get("lungseg"), record["lungseg"])  # fmt: skip
    base = Path(earlier.get("cwd") or ".")
    return {_absolute(base / f): row for f, row in rows.items()}


def _absolute(path: Path) -> Path:
    """Absolute and normalised, links not followed: two links to one film stay two films."""
    return Path(os.path.abspath(path))


def finished(rows: dict[Path, dict], files: list[Path], stems: list[str], out_dir: Path,
             outputs: tuple[str, ...]) -> dict[int, dict]:  # fmt: skip
    """`--resume`: index -> earlier row (`resumable`) of each film that an earlier run into
    `out_dir` segmented under the same output name, with every output asked for (`outputs`:
    suffixes such as "_mask.png") still there and newer than the film. Films that failed then,
    or changed since, are segmented again."""
    present = set(os.listdir(out_dir)) if out_dir.is_dir() else set()
    done = {}
    for i, (f, stem) in enumerate(zip(files, stems, strict=True)):
        row = rows.get(_absolute(f))
        if (
            row
            and row.get("quality") not in (None, "error")
            and row.get("mask") == f"{stem}{MASK}.png"
            and all(stem + s in present for s in outputs)
            and (out_dir / row["mask"]).stat().st_mtime >= f.stat().st_mtime
        ):
            done[i] = {**row, "file": str(f), "error": ""}
    if rows and not done:
        log.warning(
            "--resume: none of these inputs is finished in %s (a row of its results.csv, of %d, "
            "with every output asked for, newer than the film): all are segmented",
            out_dir, len(rows),
        )  # fmt: skip
    return done
