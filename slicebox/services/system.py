"""General: health, shutdown, and the sources and destinations of this box."""
from __future__ import annotations

import logging

from slicebox.clock import call_later
from slicebox.context import Services
from slicebox.db import system as repo
from slicebox.models import Destination, Source
from slicebox.services import logs

logger = logging.getLogger(__name__)

STOP_DELAY_SECONDS = 1.0


def health(services: Services) -> None:
    """Raise if the database cannot answer; the route answers 200 otherwise."""
    with services.db.connection() as conn:
        conn.scalar("SELECT 1")


def stop(services: Services, requested_by: str) -> str:
    """Schedule a graceful shutdown shortly after the response has gone out."""
    logs.info(services, "System", f"shutdown requested by {requested_by}")
    call_later(STOP_DELAY_SECONDS, services.on_stop)
    return f"Shutting down in {STOP_DELAY_SECONDS:g} second..."


def list_sources(services: Services) -> list[Source]:
    with services.db.connection() as conn:
        return repo.sources(conn)


def list_destinations(services: Services) -> list[Destination]:
    with services.db.connection() as conn:
        return repo.destinations(conn)
