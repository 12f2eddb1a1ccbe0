"""Shared checks of the bounded-work and no-oracle hostile cases: nothing went to the log as a traceback."""

from __future__ import annotations

import logging

import pytest

__all__ = ["assert_no_traceback"]


def assert_no_traceback(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    """No log record carried an exception or a stack trace, none of the project's loggers wrote an error,
    and no server thread printed a traceback to stderr (wsgiref's handler does, for an exception it catches)."""
    for record in caplog.records:
        assert record.exc_info is None, f"{record.name}: logged with an exception"
        assert "Traceback" not in record.getMessage(), record.name
        ours = record.name.split(".")[0] in ("server", "store", "filematch")
        assert not (ours and record.levelno >= logging.ERROR), f"{record.name}: {record.getMessage()}"
    assert "Traceback" not in capfd.readouterr().err
