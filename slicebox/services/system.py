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


HEALTH_DB_TIMEOUT = 5.0


def health(services: Services) -> dict[str, str]:
    """What this box depends on, each ``"ok"`` or what is wrong with it: ``database``, ``storage``.

    Never raises: the route answers 200 when every value is ``"ok"``, else 503.
    """
    checks: dict[str, str] = {}
    try:
        services.db.ping(timeout=HEALTH_DB_TIMEOUT)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        checks["database"] = f"unreachable: {_short(exc)}"
    try:
        services.storage.check()
        checks["storage"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["storage"] = f"unreachable: {_short(exc)}"
    down = [name for name, value in checks.items() if value != "ok"]
    if down:
        logger.warning("health check: %s", "; ".join(f"{n} {checks[n]}" for n in down))
    return checks


def _short(exc: Exception) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())[:300]


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
