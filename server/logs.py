"""One log format for the whole process, gunicorn's own lines included (``[log] format`` and ``level``).

:func:`configure_logging` gives the root logger one handler on standard error, with

- ``text``: ``2026-12-04 15:40:00,123 INFO pregbridge.request: request face=soap-preg …``, or
- ``json``: one JSON object per line (python-json-logger, encoded with orjson), with ``time`` (ISO 8601,
  UTC), ``level``, ``logger``, ``process``, ``message`` and the record's structured fields (the request log line's
  ``face``, ``operation``, ``account``, ``outcome``, ``duration_ms``, ``request_id``).

gunicorn's arbiter and workers log through the same handler: ``pregbridge serve`` runs gunicorn with
:class:`GunicornLogger`, whose ``gunicorn.error`` and ``gunicorn.access`` loggers have no handlers of their
own and pass their records to the root logger (gunicorn's access log stays off: the request log line of
server/metrics.py replaces it, without query strings). The workers inherit the configuration at the fork.

What goes into a line is the callers' business and follows server/logsafe.py: nothing a client sent unless
through :func:`server.logsafe.loggable`, exceptions by :func:`server.logsafe.describe`.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Final

from gunicorn.glogging import Logger as _GunicornBase

__all__ = ["FORMATS", "LEVELS", "GunicornLogger", "configure_logging", "formatter"]

FORMATS: Final = ("text", "json")
LEVELS: Final = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
                 "critical": logging.CRITICAL}
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_HANDLER_NAME: Final = "pregbridge"


def formatter(format: str) -> logging.Formatter:
    """The formatter of ``format`` (``text`` or ``json``)."""
    if format == "text":
        return logging.Formatter(TEXT_FORMAT)
    if format == "json":
        from pythonjsonlogger.orjson import OrjsonFormatter

        return OrjsonFormatter("%(levelname)s %(name)s %(process)d %(message)s", timestamp="time",
                               rename_fields={"levelname": "level", "name": "logger"})
    raise ValueError(f"log.format must be one of {', '.join(FORMATS)}, not {format!r}")


class _StandardError(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler on whatever ``sys.stderr`` is when a record is written, not the stream it was at set-up: a
    process that replaces standard error later (a test's capture, a daemon's redirect) never gets a record
    written to a closed stream. ``setStream`` still fixes a stream (tests)."""

    def __init__(self) -> None:
        super().__init__()
        self._fixed: Any = None

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return self._fixed or sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        self._fixed = value


def configure_logging(format: str = "text", level: str = "info") -> None:
    """Log every record at ``level`` or above to standard error in ``format`` (module docstring). Called once
    per process, early; calling it again replaces the handler."""
    if level.lower() not in LEVELS:
        raise ValueError(f"log.level must be one of {', '.join(LEVELS)}, not {level!r}")
    handler = _StandardError()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter(format))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level.lower()])
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.captureWarnings(True)  # Python's warnings as log records (logger py.warnings), in the same format


class GunicornLogger(_GunicornBase):  # type: ignore[misc]
    """gunicorn's logger class (``logger_class``), writing through the root logger's handler (module
    docstring)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)  # gunicorn's own state (the access log switch, a reload's cfg); then its handlers go
        for logger in (self.error_log, self.access_log):
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True
            logger.setLevel(logging.NOTSET)  # the root logger's level applies
