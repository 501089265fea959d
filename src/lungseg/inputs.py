"""What `lungseg predict` reads and where it writes: files, folders and globs -> the films, one
output name per film, and what an earlier run left in --out (refused when not ours, reused by
`--resume`)."""

from __future__ import annotations

import csv
import glob
import logging
import os
from pathlib import Path

from .imageio import is_byproduct, is_supported

log = logging.getLogger(__name__)
TABLE = "results.csv"
TEXT_FIELDS = {
    "file",
    "quality",
    "flags",
    "error",
    "mask",
    "view",
}  # the other columns hold numbers


def collect_inputs(paths: list[str], out: str | Path | None = None) -> tuple[list[Path], list[str]]:
    """Expand files, folders (recursive) and globs -> (image files, inputs that matched nothing).
    Folders and globs skip what is not a film (`imageio.is_byproduct`: masks and lungseg's own
    outputs by name, DICOMDIR, OS leftovers such as `._*`, .DS_Store, Thumbs.db, `__MACOSX/`,
    and, below the searched folder or a glob's fixed prefix, anything in mask/, masks/,
    ManualMask/, leftMask/ or rightMask/) and an `out` folder inside a searched folder; a file
    named explicitly is always taken."""
    out_dir = Path(out).resolve() if out is not None else None
    files, missing, skipped = [], [], 0
    for p in paths:
        path = Path(p)
        if path.is_file():
            files.append(path)
            continue
        if path.is_dir():
            root, found = path, path.rglob("*")
        else:  # a glob; the folders it matches are searched too
            root, matches = _glob_root(p), [Path(f) for f in glob.glob(p, recursive=True)]
            found = [g for m in matches for g in ([m] if m.is_file() else m.rglob("*"))]
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
    return list(dict.fromkeys(files)), missing


def _glob_root(pattern: str) -> Path:
    """The folder a glob searches: its leading parts without wildcards ('data/**/*.png' ->
    'data'), so that mask folders below it are recognised as in a searched folder."""
    fixed = Path(pattern).parts
    fixed = fixed[: next((i for i, part in enumerate(fixed) if glob.has_magic(part)), len(fixed))]
    return Path(*fixed) if fixed else Path()


def output_stems(files: list[Path]) -> list[str]:
    """Output name per input: its stem, or <stem>_2, _3, ... when that name is already taken
    (two films called film.png in different folders, or film.png beside film_2.png). Names are
    compared ignoring case, as macOS and Windows file systems do."""
    taken = {f.stem.casefold() for f in files}
    seen: set[str] = set()
    out = []
    for f in files:
        stem, n = f.stem, 1
        while stem.casefold() in seen or (n > 1 and stem.casefold() in taken):
            n += 1
            stem = f"{f.stem}_{n}"
        seen.add(stem.casefold())
        out.append(stem)
    return out


def check_overwrites(out_dir: Path, stems: list[str]) -> None:
    """Refuse to replace a <stem>_mask.png that lungseg did not write: with --out on the films'
    own folder it may be a ground-truth mask. One of an earlier run (listed in the folder's
    results.csv, or with its <stem>_overlay.png beside it) is replaced as usual."""
    if not out_dir.is_dir():
        return
    present = set(os.listdir(out_dir))
    ours = {r["mask"].removesuffix("_mask.png") if r.get("mask") else Path(f).stem
            for f, r in earlier_rows(out_dir).items()}  # fmt: skip
    foreign = [
        f"{s}_mask.png"
        for s in stems
        if f"{s}_mask.png" in present and f"{s}_overlay.png" not in present and s not in ours
    ]
    if foreign:
        raise ValueError(
            f"{out_dir / foreign[0]} exists and is not an earlier lungseg output (it may be a "
            f"ground-truth mask; {len(foreign)} such files): choose another --out"
        )


def earlier_rows(out_dir: Path) -> dict[str, dict]:
    """The rows of an earlier run's results.csv in `out_dir`, by input file, numbers as numbers
    and empty cells as None (as results.json has them); empty when there is none. A run that
    was stopped leaves the rows of the films it finished."""
    table = out_dir / TABLE
    if not table.is_file():
        return {}
    with open(table, newline="") as f:
        return {r["file"]: {k: v if k in TEXT_FIELDS else _number(v) for k, v in r.items() if k}
                for r in csv.DictReader(f) if r.get("file")}  # fmt: skip


def _number(cell: str | None) -> int | float | str | None:
    if not cell:
        return None
    for kind in (int, float):
        try:
            return kind(cell)
        except ValueError:
            pass
    return cell


def finished(rows: dict[str, dict], files: list[Path], stems: list[str], out_dir: Path,
             outputs: tuple[str, ...]) -> dict[int, dict]:  # fmt: skip
    """`--resume`: index -> earlier row of each film that an earlier run into `out_dir` segmented
    under the same output name, with every output asked for (`outputs`: suffixes such as
    "_mask.png") still there. Films that failed then are tried again."""
    present = set(os.listdir(out_dir)) if out_dir.is_dir() else set()
    done = {}
    for i, (f, stem) in enumerate(zip(files, stems, strict=True)):
        row = rows.get(str(f))
        if (
            row
            and row.get("quality") not in (None, "error")
            and row.get("mask") == f"{stem}_mask.png"
            and all(stem + s in present for s in outputs)
        ):
            done[i] = {**row, "error": ""}
    return done
