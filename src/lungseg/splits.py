"""Train/val/test splits: the project's fixed `splits.csv` (found in the data root or a folder
above it), a run's own `splits.csv`, or a deterministic stratified split; and the selection of
one split's samples."""

from __future__ import annotations

import csv
import hashlib
import logging
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # datasets imports this module; the type is only needed for hints
    from .datasets import Sample

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {"validation": "val"}  # accepted in splits.csv, written as `val`
DATASETS = ("jsrt", "montgomery", "shenzhen", "other")  # names `datasets.dataset_of` gives
COLUMNS = ("dataset", "id", "split")
PARENT_LEVELS = 3  # splits.csv is looked for in the data root and up to 3 folders above it


def _examples(items, n: int = 5) -> str:
    items = list(items)
    more = f" (and {len(items) - n} more)" if len(items) > n else ""
    return ", ".join(map(str, items[:n])) + more


def make_splits(samples: list[Sample], fractions=(0.7, 0.1, 0.2), salt: str = "lungseg"):
    """Deterministic split stratified by (dataset, label), ordered by a salted sha256 of the id.
    Counts per group are `round(n * .7)` train, `round(n * .1)` val and the rest test. A group
    this gives no val or no test film (fewer than 6) gets `round(n * .1)` val and `round(n * .2)`
    test films instead, at least one each from 3 films on, so a small data set can still be
    validated."""
    groups: dict[tuple, list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.dataset, s.label), []).append(s)
    out = {}
    for members in groups.values():
        members.sort(key=lambda s: hashlib.sha256(f"{salt}{s.id}".encode()).hexdigest())
        n = len(members)
        n_train, n_val = round(n * fractions[0]), round(n * fractions[1])
        if n_val < 1 or n_train + n_val >= n:  # a small group: no val or no test film
            least = 1 if n >= 3 else 0
            n_val, n_test = (max(least, round(n * f)) for f in fractions[1:])
            n_train = n - n_val - n_test
        for i, s in enumerate(members):
            out[(s.dataset, s.id)] = (
                "train" if i < n_train else "val" if i < n_train + n_val else "test"
            )
    return out


def read_splits(path: Path, samples: list[Sample] | None = None) -> dict[tuple[str, str], str]:
    """Read `dataset,id,split` (UTF-8, an Excel BOM is fine; extra columns are ignored).
    Dataset and split names are case-insensitive, `validation` means `val`; with `samples`, ids
    are keyed as those films spell them (`matched`). Raises ValueError naming the file for a
    missing column, a short row, an unknown split name or an id listed twice (a film in two
    splits would leak)."""
    path = Path(path)
    try:
        listed = _read_splits(path)
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text; save it as CSV (UTF-8)") from None
    return listed if samples is None else matched(listed, samples)


def _read_splits(path: Path) -> dict[tuple[str, str], str]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip().lower() for h in next(reader, [])]
        if not set(COLUMNS) <= set(header):
            raise ValueError(
                f"{path}: header is {','.join(header) or '(empty)'}; expected the columns "
                f"{','.join(COLUMNS)} in the first line"
            )
        col = {c: header.index(c) for c in COLUMNS}
        rows = []
        for line, row in enumerate(reader, start=2):
            if not any(v.strip() for v in row):
                continue
            if len(row) <= max(col.values()) or not all(row[i].strip() for i in col.values()):
                raise ValueError(f"{path} line {line}: expected dataset,id,split, got {row}")
            ds, i, sp = (row[col[c]].strip() for c in COLUMNS)
            sp = SPLIT_ALIASES.get(sp.lower(), sp.lower())
            rows.append(((ds.lower(), i), sp))
    bad = Counter(sp for _, sp in rows if sp not in SPLITS)
    if bad:
        names = _examples(f"{k!r} ({n} rows)" for k, n in sorted(bad.items()))
        raise ValueError(f"{path}: unknown split names {names}; use train, val or test")
    twice = sorted(k for k, n in Counter(k for k, _ in rows).items() if n > 1)
    if twice:
        raise ValueError(
            f"{path}: {len(twice)} ids are listed more than once (a film in two splits "
            f"leaks): {_examples(f'{d}/{i}' for d, i in twice)}; keep one row per film"
        )
    return dict(rows)


def matched(listed: dict[tuple[str, str], str], samples: list[Sample]) -> dict:
    """`listed` (`read_splits`) keyed by each sample's id as the data spells it where the file
    spells it in another case (jpcln005.png, listed as JPCLN005, keeps JPCLN005's split)."""
    out, folded = dict(listed), {(d, i.casefold()): (d, i) for d, i in listed}
    exact = {(s.dataset, s.id) for s in samples}  # (film1.png and FILM1.png: two films, as named)
    for s in samples:
        key = folded.get((s.dataset, s.id.casefold()))
        if key in out and key not in exact:
            out[(s.dataset, s.id)] = out.pop(key)
    return out


def write_splits(path: Path, splits: dict[tuple[str, str], str]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for (ds, i), sp in sorted(splits.items()):
            w.writerow([ds, i, sp])


def find_splits_file(root: str | Path) -> Path | None:
    """`splits.csv` in the data root, else in the nearest of up to 3 folders above it (so
    `--data ROOT/chest-xray-masks` still uses ROOT's fixed split); None when there is none."""
    folder = Path(root).resolve()
    for d in [folder, *folder.parents][: PARENT_LEVELS + 1]:
        if (d / "splits.csv").is_file():
            return d / "splits.csv"
    return None


def assign_splits(
    root: Path,
    samples: list[Sample],
    out_dir: Path | None = None,
    split_file: Path | None = None,
):
    """Split of every sample: from `split_file` (e.g. a training run's splits.csv) when given,
    else from `find_splits_file(root)`, else a new deterministic split (a WARNING says so).
    Ids match the file's whatever their case. Samples missing from the file get a
    deterministic split. The split used is written to
    out_dir/splits.csv."""
    path = Path(split_file) if split_file else find_splits_file(root)
    if path is not None:
        log.info("using split file %s", path)
        splits = read_splits(path, samples)
        keys = {(s.dataset, s.id) for s in samples}
        unknown = sorted(k for k in splits if k not in keys)
        if unknown:
            log.warning(
                "%d ids in %s are not in the data under %s (e.g. %s)",
                len(unknown),
                path,
                root,
                _examples((f"{d}/{i}" for d, i in unknown), 3),
            )
        missing = [s for s in samples if (s.dataset, s.id) not in splits]
        if missing:
            log.warning(
                "%d samples are not in %s and get a deterministic split", len(missing), path
            )
            splits.update(make_splits(missing))
    else:
        named = folder_splits(root, samples)
        splits = make_splits([s for s in samples if (s.dataset, s.id) not in named]) | named
        where = Path(out_dir) / "splits.csv" if out_dir is not None else "nowhere (no output)"
        log.warning(
            "no splits.csv in %s or the %d folders above it: made a NEW stratified split%s "
            "(saved to %s); put the project's splits.csv in the data root to use a fixed split",
            root, PARENT_LEVELS, f" ({len(named)} films by their train/val/test folders)"
            if named else "", where,
        )  # fmt: skip
    if out_dir is not None:
        write_splits(Path(out_dir) / "splits.csv", splits)
    return splits


def folder_splits(root: Path, samples: list[Sample]) -> dict[tuple[str, str], str]:
    """The split of each film below a folder named train, val (validation) or test (the group
    folders of a data set shipped split: train/images + train/masks, test/...); with no val
    folder, a tenth of the train folders' films (`make_splits`' val share) validate."""
    names = {"train": "train", "training": "train", "test": "test", "testing": "test"}
    names |= {"val": "val", "valid": "val", "validation": "val"}
    out = {}
    for s in samples:
        try:
            below = Path(s.image).relative_to(root).parts[:-1]
        except ValueError:  # (not below root as given)
            below = ()
        if split := next((names[p.lower()] for p in below if p.lower() in names), None):
            out[(s.dataset, s.id)] = split
    if out and "val" not in out.values():
        train = [s for s in samples if out.get((s.dataset, s.id)) == "train"]
        out.update({k: "val" for k, v in make_splits(train).items() if v == "val"})
    return out


def check_dataset_names(names: list[str] | None) -> list[str] | None:
    """Lower-cased `--datasets` names; ValueError listing the valid names for an unknown one."""
    if not names:
        return names
    wanted = [n.strip().lower() for n in names]
    unknown = [n for n, w in zip(names, wanted, strict=True) if w not in DATASETS]
    if unknown:
        raise ValueError(
            f"--datasets: unknown name(s) {', '.join(map(repr, unknown))}; "
            f"valid names are {', '.join(DATASETS)}"
        )
    return wanted


def select(samples, splits, split: str | None, datasets=None, limit: int | None = None):
    """Samples of one split (and datasets), at most `limit` per split (spread over datasets)."""
    datasets = check_dataset_names(datasets)
    chosen = [
        s
        for s in samples
        if (split is None or splits.get((s.dataset, s.id)) == split)
        and (not datasets or s.dataset in datasets)
    ]
    if limit:
        by_ds: dict[str, list[Sample]] = {}
        for s in chosen:
            by_ds.setdefault(s.dataset, []).append(s)
        chosen = [s for i in range(limit) for g in by_ds.values() if i < len(g) for s in [g[i]]]
        chosen = chosen[:limit]
    return chosen
