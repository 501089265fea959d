"""The command line's log: pydicom's records (it logs, with a traceback, each decoder it tries that
fails, also for films that then read fine) are hidden unless -v is given; lungseg's own records
are shown either way."""

from __future__ import annotations

import logging

import pytest

import lungseg.console
import lungseg.phantom
from lungseg.cli import main


def _main_with_a_bare_root_logger(argv: list[str]) -> int:
    """main(argv) with no handlers on the root logger, as outside pytest: pytest's capture
    handlers would keep main's logging.basicConfig from installing its stderr handler (and the
    filter on it). Pytest's handlers and the root logger's level are restored after."""
    root = logging.getLogger()
    handlers, level = root.handlers, root.level
    root.handlers = []
    try:
        return main(argv)
    finally:
        root.handlers = handlers
        root.setLevel(level)


def _log_like_a_failing_decoder(*args, **kwargs) -> list:
    """Stands in for write_phantoms: logs as pydicom's decoder loop and as lungseg."""
    try:
        raise RuntimeError("gdcm: cannot decode this frame")
    except RuntimeError as exc:
        logging.getLogger("pydicom.pixels.decoders.base").exception(exc)
    logging.getLogger("lungseg").warning("lungseg's own warning")
    return []


@pytest.mark.parametrize("v", [None, "after", "before"])  # no -v, or -v after/before the subcommand
def test_pydicom_log_is_hidden_unless_verbose(monkeypatch, capsys, tmp_path, v):
    monkeypatch.setattr(lungseg.phantom, "write_phantoms", _log_like_a_failing_decoder)
    argv = ["phantom", "--out", str(tmp_path)]
    argv = {"after": [*argv, "-v"], "before": ["-v", *argv]}.get(v, argv)
    assert _main_with_a_bare_root_logger(argv) == 0
    err = capsys.readouterr().err
    assert "WARNING lungseg: lungseg's own warning" in err  # the log reaches stderr either way
    if v is None:
        assert "pydicom" not in err and "Traceback" not in err
    else:
        assert "ERROR pydicom.pixels.decoders.base: gdcm: cannot decode this frame" in err
        assert "Traceback" in err and "RuntimeError: gdcm: cannot decode this frame" in err


def test_repeated_calls_keep_one_filter_and_verbose_removes_it(monkeypatch, tmp_path):
    """main() called again in one process (as tests and notebooks do) reuses the handler that
    basicConfig installed the first time: the filter is added once, and -v takes it off."""
    monkeypatch.setattr(lungseg.phantom, "write_phantoms", lambda *a, **k: [])
    root = logging.getLogger()
    handlers, level = root.handlers, root.level
    root.handlers = []
    try:
        argv = ["phantom", "--out", str(tmp_path)]
        for _ in range(3):
            assert main(argv) == 0
        (handler,) = root.handlers
        assert handler is lungseg.console._handler
        assert handler.filters == [lungseg.console._hide_pydicom] and root.level == logging.INFO
        assert main([*argv, "-v"]) == 0
        assert root.handlers == [handler] and handler.filters == []
        assert root.level == logging.DEBUG  # -v on a later call still turns on debug records
        assert main(argv) == 0 and root.level == logging.INFO
    finally:
        root.handlers = handlers
        root.setLevel(level)


def test_a_host_applications_logging_is_left_alone(monkeypatch, tmp_path):
    """main() inside an application that configured logging: no handler, filter or level of its
    own is added or changed."""
    monkeypatch.setattr(lungseg.phantom, "write_phantoms", lambda *a, **k: [])
    root = logging.getLogger()
    handlers, level = root.handlers, root.level
    app = logging.StreamHandler()
    root.handlers = [app]
    root.setLevel(logging.WARNING)
    try:
        assert main(["phantom", "--out", str(tmp_path), "-v"]) == 0
        assert main(["phantom", "--out", str(tmp_path)]) == 0
        assert root.handlers == [app] and app.filters == [] and root.level == logging.WARNING
    finally:
        root.handlers = handlers
        root.setLevel(level)
