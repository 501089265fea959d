"""What `lungseg predict` reads: files, folders and globs -> the films, each known by its folder
entry (`film_key`), and one output name per film (what an earlier run left in --out: outdir.py)."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Set as AbstractSet
from pathlib import Path

from .files import film_stem, is_byproduct, is_supported
from .walk import files_under, glob_files, glob_root

log = logging.getLogger(__name__)


def collect_inputs(paths: list[str], out: str | Path | None = None) -> tuple[list[Path], list[str]]:
    """Expand files, folders (recursive, linked folders followed) and globs -> (image files,
    inputs that matched nothing). A folder entry reached by several paths (a link loop, a
    folder given twice) is taken once. Folders and globs skip what is not a film
    (`files.is_byproduct`: masks and lungseg's own outputs by name, DICOMDIR, OS leftovers
    such as `._*`, .DS_Store, Thumbs.db, `__MACOSX/`, and, below the searched folder or a glob's
    fixed prefix, anything in mask/, masks/, ManualMask/, leftMask/ or rightMask/) and an `out`
    folder inside a searched folder; a file named explicitly is always taken."""
    out_dir = Path(os.path.realpath(out)) if out is not None else None  # (a link loop: as is)
    files, missing, skipped = [], [], 0
    for p in paths:
        try:
            kept, found = _expand(p, out_dir) if p else ([], [])  # ('': not the current folder)
        except OSError as e:  # a name too long, a folder that cannot be read
            log.warning("%s: %s", p, e.strerror or e)
            kept, found = [], []
        if not found:
            missing.append(p)
        skipped += len(found) - len(kept)
        files += kept
    if skipped:
        log.info("skipped %d masks, earlier outputs and other files that are not films", skipped)
    entries = {}  # one film per folder entry, however many paths (links, globs) reach it
    for f in files:
        entries.setdefault(film_key(f), f)
    return list(entries.values()), missing


def _expand(p: str, out_dir: Path | None) -> tuple[list[Path], list[Path]]:
    """One input of `collect_inputs` -> (its films, every supported file it matched)."""
    path = Path(p)
    if path.is_file():
        return [path], [path]
    if path.is_dir():
        root, found = path, files_under(path)
    else:  # a glob; the folders it matches are searched too
        root, found = glob_root(p), glob_files(p)
    found = [f for f in found if _is_file(f) and is_supported(f)]
    inner = out_dir if out_dir and Path(os.path.realpath(root)) in out_dir.parents else None
    kept = [
        f
        for f in sorted(found)
        if not is_byproduct(f, root) and not (inner and inner in Path(os.path.realpath(f)).parents)
    ]
    return kept, found


def _is_file(path: Path) -> bool:
    """`Path.is_file`, False where the system refuses to say (a folder that cannot be entered)."""
    try:
        return path.is_file()
    except OSError:
        return False


def film_key(path: str | Path) -> str:
    """A film's identity across paths and calls: its folder's real path and its own name (a
    linked folder, `./`, `..` or an absolute path reach the same film; two links with their own
    names to one file stay two films)."""
    path = Path(path)
    return os.path.join(os.path.realpath(path.parent), path.name)


def output_stems(
    files: list[Path],
    reserved: AbstractSet[str] = frozenset(),
    earlier: list[str | None] | None = None,
) -> list[str]:
    """Output name per input: the name an earlier call into the same --out gave the film
    (`earlier`, per file; None: none), else its stem (a DICOM named by UID: its whole name,
    `film_stem`), or <stem>_2, _3, ... when that name is taken (two films called film.png in
    different folders, film.png beside film_2.png, or a name in `reserved`: an earlier call's
    film, not given now). Names are compared ignoring case, as macOS and Windows do; a name too
    long for its outputs' file names is shortened (`_fitting`)."""
    stems = [_fitting(film_stem(f)) for f in files]
    taken = {s.casefold() for s in stems}  # (this call's own names)
    seen = {r.casefold() for r in reserved}
    out: list[str | None] = [None] * len(files)
    for i, name in enumerate(earlier or []):  # first: films keep the names they have
        if name and name.casefold() not in seen:
            seen.add(name.casefold())
            out[i] = name
    for i in range(len(files)):
        if out[i] is not None:
            continue
        stem, n = stems[i], 1
        while stem.casefold() in seen or (n > 1 and stem.casefold() in taken):
            n += 1
            stem = f"{stems[i]}_{n}"
        seen.add(stem.casefold())
        out[i] = stem
    return out


MAX_STEM = 200  # bytes: <stem>_overlay.png and a _N suffix stay within 255-byte file names


def _fitting(stem: str) -> str:
    """A film's stem, or for one over MAX_STEM bytes its start and a digest of the whole (so
    that two long names with one start stay two names)."""
    raw = os.fsencode(stem)
    if len(raw) <= MAX_STEM:
        return stem
    start = stem
    while len(os.fsencode(start)) > MAX_STEM - 9:  # (cut on a character, in any encoding)
        start = start[:-1]
    return f"{start}~{hashlib.sha256(raw).hexdigest()[:8]}"
