"""The one clock: epoch milliseconds, as the API reports times, and delayed calls.

Every wall-clock reading in slicebox goes through :func:`now_ms` (or
:func:`now` for a local datetime), and every "do this in N seconds" through
:func:`call_later`, so tests can install a clock they move by hand
(:func:`install`; see the ``clock`` fixture in tests/conftest.py) instead of
sleeping.  Waits of worker threads between rounds are not clock readings and
use real time.
"""
from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Callable, Protocol


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now_ms(self) -> int: ...
    def call_later(self, seconds: float, fn: Callable[[], None]) -> Cancellable: ...


class SystemClock:
    """Real time; delayed calls run on daemon timer threads."""

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def call_later(self, seconds: float, fn: Callable[[], None]) -> Cancellable:
        timer = threading.Timer(seconds, fn)
        timer.daemon = True
        timer.start()
        return timer


_clock: Clock = SystemClock()


def now_ms() -> int:
    """Milliseconds since the epoch."""
    return _clock.now_ms()


def now() -> dt.datetime:
    """The local date and time (for DICOM dates and times we write)."""
    return dt.datetime.fromtimestamp(now_ms() / 1000)


def call_later(seconds: float, fn: Callable[[], None]) -> Cancellable:
    """Call ``fn()`` once, ``seconds`` from now (on another thread with the real clock)."""
    return _clock.call_later(seconds, fn)


def install(clock: Clock) -> Clock:
    """Make ``clock`` the clock of this process; returns the one it replaces (tests)."""
    global _clock
    previous, _clock = _clock, clock
    return previous
