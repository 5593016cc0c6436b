"""Supervisor provider for the series type updater: re-evaluates all series after a rule change."""
from __future__ import annotations

import logging
import threading
from typing import Callable

from slicebox.context import Services
from slicebox.jobs.supervisor import Part
from slicebox.services import seriestypes

logger = logging.getLogger(__name__)

KEY = "series-type-updater"
#: Seconds between looks at the database's update state when nothing woke us.
POLL_SECONDS = 2.0


class SeriesTypeUpdater:
    """A thread running :func:`seriestypes.run_pending_update` whenever the database asks for it."""

    def __init__(self, services: Services):
        self.services = services
        self.wakeup = services.state.series_type_wakeup
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=KEY, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.wakeup.clear()
            try:
                seriestypes.run_pending_update(self.services, self._stop)
            except Exception:  # noqa: BLE001 - database down or a bug: try again later
                logger.exception("series type update failed; retrying")
                self._stop.wait(POLL_SECONDS)
            self.wakeup.wait(POLL_SECONDS)

    def stop(self) -> None:
        self._stop.set()
        self.wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def parts(services: Services) -> dict[str, Callable[[], Part]]:
    return {KEY: lambda: SeriesTypeUpdater(services)}
