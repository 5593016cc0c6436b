"""Export sets: a list of images to download later as one zip (kept in the
database, so they survive a restart; they expire after EXPORT_SET_TTL)."""
from __future__ import annotations

import time

from slicebox.context import Services
from slicebox.db import exports as repo


def _now_ms() -> int:
    return int(time.time() * 1000)


def purge_expired(services: Services) -> int:
    with services.db.connection() as conn:
        return repo.purge(conn, _now_ms())
