"""The command line's log: records on stderr, written around progress bars; DEBUG with -v, else
INFO without pydicom's decoder tracebacks; Lightning's records through the same handler. Only
the CLI sets this up: the library just logs."""

from __future__ import annotations

import logging
import sys


def _hide_pydicom(record: logging.LogRecord) -> bool:
    """Without -v: pydicom logs, with a traceback, each decoder it tries that fails."""
    return not record.name.startswith("pydicom")


_handler: logging.Handler | None = None  # the stderr handler main() installed, if it did


def setup(verbose: bool) -> None:
    """The command line's log on stderr, DEBUG with -v, else INFO without pydicom's records.
    Set on every call (tests and notebooks call main() again), on lungseg's own handler only:
    when the host application set up logging itself, its handlers and level are left alone."""
    global _handler
    root = logging.getLogger()
    if _handler not in root.handlers:
        if root.handlers:
            return
        _handler = _BarSafeHandler(sys.stderr)
        _handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(_handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("PIL").setLevel(logging.INFO)  # -v: not every PNG chunk Pillow reads
    (_handler.removeFilter if verbose else _handler.addFilter)(_hide_pydicom)


class _BarSafeHandler(logging.StreamHandler):
    """Writes through tqdm, so a record printed while a progress bar runs (predict, train) gets
    its own line instead of being appended to the bar's."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - as logging.StreamHandler does
            self.handleError(record)


def lightning_through_ours() -> None:
    """Lightning adds its own console handler to the `lightning` logger when imported, and its
    records also reach the root's: each was printed twice. With lungseg's handler in place they
    go through it alone, without Lightning's advert for its cloud logger."""
    if _handler is not None and _handler in logging.getLogger().handlers:
        logging.getLogger("lightning").handlers.clear()
        tips = logging.getLogger("lightning.pytorch.utilities.rank_zero")
        tips.filters = [f for f in tips.filters if f is not _no_tip] + [_no_tip]


def _no_tip(record: logging.LogRecord) -> bool:
    return "litlogger" not in record.getMessage()
