"""Files below folders and globs for `predict`'s inputs: linked folders followed, each real
folder once (a link loop or a second link adds nothing), and a '**' glob matched on that walk,
searching only where a match can lie: Python's glob follows linked folders under '**' without
end (a link loop, two links to one folder: exponential time). Same matches as glob.glob."""

from __future__ import annotations

import fnmatch
import glob
import os
from pathlib import Path


def files_under(folder: Path, enter=None) -> list[Path]:
    """Every file below `folder`, linked folders followed after the folder's own tree (so a
    folder reached both ways is searched under its own name: a link to masks/ does not pass it
    off as films) and each real folder once (a link loop or a second link adds nothing);
    `enter(parts)`, given: whether to search the subfolder of those parts below `folder`."""
    return [top / n for top, names in _walk(folder, enter) for n in names]


def folders_under(folder: Path, enter=None) -> list[Path]:
    """`folder` and every folder below it, linked ones too, as `files_under` walks them."""
    return [top for top, _ in _walk(folder, enter)]


def _walk(folder: Path, enter=None):
    """(folder, its file names) for `folder` and each folder below it (subfolders in name
    order), under `files_under`'s rules."""
    seen, pending = set(), [Path(folder)]
    while pending:
        links = []
        for top, dirs, names in os.walk(pending.pop(0)):  # (links not followed: kept for later)
            real = os.path.realpath(top)
            if real in seen:
                dirs.clear()
                continue
            seen.add(real)
            here = Path(top).relative_to(folder).parts
            dirs[:] = sorted(d for d in dirs if not enter or enter((*here, d)))
            links += [Path(top, d) for d in dirs if os.path.islink(os.path.join(top, d))]
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(top, d))]
            yield Path(top), names
        pending += links


def glob_files(pattern: str) -> list[Path]:
    """The files a glob matches and those below the folders it matches. A '**' part (any number
    of folders) is matched on `files_under` its fixed prefix (`glob_root`), entering only the
    folders a match can lie in."""
    if "**" not in Path(pattern).parts:
        matches = [Path(f) for f in glob.glob(pattern)]
        return [g for m in matches for g in ([m] if m.is_file() else files_under(m))]
    root = glob_root(pattern)
    wanted = Path(pattern).parts[len(root.parts) :]

    first = 1 if not root.parts else 0  # (a bare '**' does not match the current folder)
    last = len if not pattern.endswith(("/", os.sep)) else (lambda p: len(p) - 1)  # 'x/': folders

    def matched(parts: tuple[str, ...]) -> bool:  # the path, or a folder above it, matches
        k = range(first, last(parts) + 1)
        return any(_part_match(parts[:i], wanted, i == len(parts)) for i in k)

    def enter(parts: tuple[str, ...]) -> bool:
        return _could_begin(parts, wanted) or matched(parts)

    return [f for f in files_under(root, enter) if matched(f.relative_to(root).parts)]


def _part_match(parts: tuple[str, ...], wanted: tuple[str, ...], file: bool = False) -> bool:
    """Path parts against glob parts: '**' any number of folders (not hidden ones), the others
    as fnmatch (case as the file system: glob's own rule); a `file` ends no match with '**'."""
    if not wanted:
        return not parts
    if wanted[0] == "**":  # takes parts[:i]; a last one at least the file
        shown = next((i for i, q in enumerate(parts) if q.startswith(".")), len(parts))
        least = 1 if file and len(wanted) == 1 else 0
        return any(_part_match(parts[i:], wanted[1:], file) for i in range(least, shown + 1))
    return (
        bool(parts)
        and _name_match(parts[0], wanted[0])
        and _part_match(parts[1:], wanted[1:], file)
    )


def _could_begin(parts: tuple[str, ...], wanted: tuple[str, ...]) -> bool:
    """Whether the folder of `parts` can lie on the way to a path `wanted` matches."""
    if not parts:
        return True
    if not wanted:
        return False
    if wanted[0] == "**":
        hidden = parts[0].startswith(".")
        return _could_begin(parts, wanted[1:]) or (not hidden and _could_begin(parts[1:], wanted))
    return _name_match(parts[0], wanted[0]) and _could_begin(parts[1:], wanted[1:])


def _name_match(name: str, pattern: str) -> bool:
    """glob's rule for one part: fnmatch, and a hidden name only for a pattern starting '.'."""
    return fnmatch.fnmatch(name, pattern) and (name[0] != "." or pattern[0] == ".")


def glob_root(pattern: str) -> Path:
    """The folder a glob searches: its leading parts without wildcards ('data/**/*.png' ->
    'data'), so that mask folders below it are recognised as in a searched folder."""
    fixed = Path(pattern).parts
    fixed = fixed[: next((i for i, part in enumerate(fixed) if glob.has_magic(part)), len(fixed))]
    return Path(*fixed) if fixed else Path()
