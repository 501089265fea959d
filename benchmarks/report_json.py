"""One way for every benchmark script to write its JSON: the sections it measured under `meta`
(what was run, plus the date, platform, Python and the git commit of the code), then the results.
Imported by the scripts beside it (a script's own folder is on sys.path)."""

from __future__ import annotations

import json
import platform
import subprocess
import time
from pathlib import Path


def commit(root: str | Path | None = None) -> str | None:
    """The git commit of the working tree (with '+' when it has uncommitted changes), or None.
    Read-only: `--no-optional-locks` keeps `git status` from refreshing .git/index."""
    root = Path(root) if root else Path(__file__).resolve().parent.parent
    try:
        run = lambda *args: subprocess.run(  # noqa: E731
            ["git", "--no-optional-locks", *args],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = bool(run("status", "--porcelain", "--untracked-files=no"))
        return run("rev-parse", "--short", "HEAD") + ("+" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def write_json(path: str | Path, meta: dict, **sections) -> Path:
    """Write {"meta": meta + date/platform/python/commit, **sections} to `path`; says where."""
    meta = {
        **meta,
        "date": time.strftime("%F"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "commit": commit(),
    }
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, **sections}, indent=2))
    print(f"wrote {out}")
    return out
