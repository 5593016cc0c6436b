"""The box's event log: what happened, for the people running it.

Entries also go to the Python logger, so a console or log file shows them too.
"""
from __future__ import annotations

import logging

from slicebox.clock import now_ms
from slicebox.context import Services
from slicebox.db import Connection
from slicebox.db import logs as repo
from slicebox.errors import BadRequest
from slicebox.models import LOG_TYPES, LogEntry, Page

logger = logging.getLogger("slicebox.events")
_LEVELS = {"DEFAULT": logging.INFO, "INFO": logging.INFO, "WARN": logging.WARNING, "ERROR": logging.ERROR}


def add(services: Services, entry_type: str, subject: str, message: str,
        conn: Connection | None = None) -> LogEntry:
    """Record an event; pass ``conn`` to make it part of an open transaction."""
    if entry_type not in LOG_TYPES:
        raise ValueError(f"unknown log type {entry_type}")
    logger.log(_LEVELS[entry_type], "%s: %s", subject, message)
    now = now_ms()
    if conn is not None:
        return repo.insert(conn, now, entry_type, subject, message)
    with services.db.connection() as own:
        return repo.insert(own, now, entry_type, subject, message)


def info(services: Services, subject: str, message: str, conn: Connection | None = None) -> LogEntry:
    return add(services, "INFO", subject, message, conn)


def warn(services: Services, subject: str, message: str, conn: Connection | None = None) -> LogEntry:
    return add(services, "WARN", subject, message, conn)


def error(services: Services, subject: str, message: str, conn: Connection | None = None) -> LogEntry:
    return add(services, "ERROR", subject, message, conn)


def list_entries(services: Services, page: Page, subject: str | None, entry_type: str | None) -> list[LogEntry]:
    if entry_type and entry_type not in LOG_TYPES:
        raise BadRequest(f"type must be one of {', '.join(LOG_TYPES)}")
    with services.db.connection() as conn:
        return repo.list_entries(conn, page.start_index, page.count, subject, entry_type)


def delete_entry(services: Services, entry_id: int) -> None:
    with services.db.connection() as conn:
        repo.delete(conn, entry_id)


def clear(services: Services) -> None:
    with services.db.connection() as conn:
        repo.clear(conn)
