"""Logging: one line per event on stderr, with time, level, logger, process and request id.

``configure(level)`` installs the handler once per process (the app factory
and ``slicebox serve`` call it; gunicorn's own loggers use the same format via
:func:`gunicorn_logconfig`).  A line looks like::

    2026-12-03T14:31:07.412Z INFO slicebox.services.ingest [pid=4242 req=9f1c0e2ab4d35e61] message

``req=-`` outside a request (start-up, the long-running side).  Newlines in a
message or a traceback are written as ``\\n`` so that one event stays one
line for ``grep`` and log shippers.  The request id is the incoming
``X-Request-ID`` header when it is a sane token (nginx sends ``$request_id``),
else a new random one; responses carry it back in ``X-Request-ID``.
"""
from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
import uuid

FORMAT = "%(asctime)s %(levelname)s %(name)s [pid=%(process)d req=%(request_id)s] %(message)s"

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("slicebox_request_id", default="-")
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def new_request_id(incoming: str | None = None) -> str:
    """The incoming id when it is a sane token, else a new random one."""
    if incoming and _SANE_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex[:16]


def set_request_id(value: str) -> contextvars.Token:
    return _request_id.set(value)


def reset_request_id(token: contextvars.Token) -> None:
    try:
        _request_id.reset(token)
    except ValueError:  # reset from another context: just clear it
        _request_id.set("-")


def current_request_id() -> str:
    return _request_id.get()


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _request_id.get()
        return True


class OneLineFormatter(logging.Formatter):
    """UTC ISO-8601 times; newlines escaped so a record (traceback included) is one line."""

    converter = time.gmtime

    def __init__(self, fmt: str = FORMAT):
        super().__init__(fmt)

    def formatTime(self, record, datefmt=None):  # noqa: N802 - logging's name
        return time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created)) + f".{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = _request_id.get()
        text = super().format(record)
        return text.replace("\r", "").replace("\n", "\\n")


_HANDLER_NAME = "slicebox-stderr"


def configure(level: str | int = "INFO") -> None:
    """Route the root logger to stderr in the one-line format (idempotent; the level is updated)."""
    if isinstance(level, str):
        level = getattr(logging, level.upper(), logging.INFO)
    root = logging.getLogger()
    root.setLevel(level)
    for handler in root.handlers:
        if handler.get_name() == _HANDLER_NAME or isinstance(handler.formatter, OneLineFormatter):
            return
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(OneLineFormatter())
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)


def gunicorn_logconfig(level: str = "INFO", access_log: bool = False) -> dict:
    """gunicorn's ``logconfig_dict``: its error log (and the access log when asked) on stderr, one line each."""
    handlers = {
        "stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                   "formatter": "oneline", "filters": ["request_id"]},
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"oneline": {"()": OneLineFormatter}},
        "handlers": handlers,
        # the root logger too (slicebox's own loggers): configure() then finds this handler
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level.upper(), "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO" if access_log else "CRITICAL",
                                "handlers": ["stderr"] if access_log else [], "propagate": False},
        },
    }
