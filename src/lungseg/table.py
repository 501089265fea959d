"""results.csv and results.json, `predict`'s tables: their columns, a table read back (also
as a spreadsheet saves it again) and both written in one step."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from pathlib import Path

from .files import replace_file

log = logging.getLogger(__name__)
TABLE, JSON = "results.csv", "results.json"
CSV_TEXT = {"encoding": "utf-8", "errors": "surrogateescape", "newline": ""}  # any file name
FIELDS = [  # results.csv's columns (new ones go last: those read by position stay put)
    "file", "quality", "flags", "right_area_px", "left_area_px", "right_area_mm2",
    "left_area_mm2", "lung_image_ratio", "components", "uncertain_fraction", "width", "height",
    "error",
    "mask",  # the row's mask file in --out
    "view",  # a DICOM's ViewPosition
    "right_height_px", "left_height_px", "right_height_mm", "left_height_mm",
]  # fmt: skip
TEXT_FIELDS = {"file", "quality", "flags", "error", "mask", "view"}  # the others hold numbers


def read_table(out_dir: Path, base: Path = Path()) -> list[dict]:
    """results.csv's rows, empty numeric cells as None and numbers as numbers (as results.json
    has them); also as a spreadsheet saves it again (a BOM, ';' between cells, decimal commas,
    quoted cells, a Windows code page: `_decoded`; `base`: the folder its relative paths are
    relative to). A row cut short (a kill while writing it, an edit) is left out, said. A
    table that cannot be read is moved aside (results.csv.unreadable), said."""
    table = out_dir / TABLE
    if not table.is_file():
        return []
    try:
        raw = table.read_bytes()
        first = raw.removeprefix(BOM).partition(b"\n")[0].decode("latin-1")
        sep = ";" if (next(csv.reader([first], delimiter=";"), None) or [""])[0] == "file" else ","
        reader = csv.DictReader(io.StringIO(_decoded(raw, sep, base), newline=""), delimiter=sep)
        rows = [r for r in reader if r.get("file")]
        if "file" not in (reader.fieldnames or []):
            raise ValueError("no 'file' column")
    except (csv.Error, ValueError) as e:  # e.g. a tail of NULs after a crash
        aside = table.with_name(f"{TABLE}.unreadable")
        for n in range(2, 10**6):  # an earlier one is kept
            if not aside.exists():
                break
            aside = table.with_name(f"{TABLE}.unreadable.{n}")
        os.replace(table, aside)
        log.warning("%s cannot be read (%s): moved to %s; its films count as not done", table, e,
                    aside.name)  # fmt: skip
        return []
    whole = [r for r in rows if None not in r.values()]
    if len(whole) < len(rows):
        log.warning("%s: %d rows cut short are left out (their films count as not done)",
                    table, len(rows) - len(whole))  # fmt: skip
    comma = sep == ";"  # a spreadsheet of a decimal-comma locale

    def cell(key: str, text: str):
        return text if key in TEXT_FIELDS else _number(text.replace(",", ".") if comma else text)

    return [{"mask": "", "error": "", **{k: cell(k, v) for k, v in r.items() if k}} for r in whole]


BOM = b"\xef\xbb\xbf"


def _decoded(raw: bytes, sep: str, base: Path) -> str:
    """A table's bytes -> its text: UTF-8, as lungseg writes it (a BOM dropped); when they are
    not valid UTF-8, either UTF-8 with the bytes of file names that are not UTF-8 kept (as
    lungseg writes such names) or Windows-1252 (a spreadsheet's plain 'CSV' on Windows):
    whichever names more files that exist (below `base`), UTF-8 on a tie."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        utf8, cp1252 = (raw.decode(c, "surrogateescape") for c in ("utf-8-sig", "cp1252"))

    def existing(text: str) -> int:
        rows = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
        return sum(os.path.lexists(base / r[0]) for r in rows if r)

    return cp1252 if existing(cp1252) > existing(utf8) else utf8


def _number(cell: str | None) -> int | float | str | None:
    if not cell:
        return None
    for kind in (int, float):
        try:
            return kind(cell)
        except ValueError:
            pass
    return cell


def table_text(rows: list[dict]) -> str:
    """results.csv's text: its header and `rows` (dicts by FIELDS; other keys ignored)."""
    text = io.StringIO(newline="")
    w = csv.DictWriter(text, fieldnames=FIELDS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return text.getvalue()


def write_table(out_dir: Path, rows: list[dict]) -> None:
    """results.csv and results.json, each replaced in one step (a kill leaves old or new)."""
    replace_text(out_dir / TABLE, table_text(rows))
    whole = [{**dict.fromkeys(FIELDS), **r} for r in rows]  # a failed film's row: every key
    replace_text(out_dir / JSON, json.dumps(whole, indent=2))


def replace_text(path: Path, text: str) -> None:
    """Write `text` to `path` in one step (`files.replace_file`: a kill leaves the old file or
    the new one, never half of it)."""
    replace_file(path, text.encode(CSV_TEXT["encoding"], CSV_TEXT["errors"]))
