"""A run's metrics.csv: Lightning's CSV log, kept as one row per epoch across resumes."""

from __future__ import annotations

import csv
from pathlib import Path


def read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def tidy_log(path: Path, earlier: list[dict]) -> None:
    """metrics.csv as one row per epoch (Lightning writes the training and the validation
    figures of an epoch on two rows), with the epochs logged before a resume put back in front."""
    new = read_log(path)
    first = min((int(r["epoch"]) for r in new if r.get("epoch")), default=None)
    rows: dict[int, dict] = {}
    for r in [r for r in earlier if first is None or int(r["epoch"]) < first] + new:
        if r.get("epoch"):
            merged = rows.setdefault(int(r["epoch"]), {})
            merged.update({k: v for k, v in r.items() if v not in ("", None)})
    if not rows:
        return
    fields = list(dict.fromkeys(k for r in rows.values() for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows[e] for e in sorted(rows))
