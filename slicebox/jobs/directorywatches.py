"""Supervisor provider and part for directory watches: one :class:`DirectoryWatcher` per watch.

A watcher learns about files three ways: a full scan when it starts (what
arrived while the box was down), inotify events (watchdog) while it runs, and
a rescan every ``DIRECTORY_RESCAN_INTERVAL`` seconds as the safety net
(missed events, an inotify queue overflow, too many folders for inotify).
Every file it hears of becomes *pending*; a pending file is imported once its
size and modification time have not moved for ``DIRECTORY_SETTLE`` seconds
(measured with :mod:`slicebox.clock`), so a file still being written is never
read half-way.  Whether a version of a file was already imported is the
database's ledger (``services.directorywatches``), loaded once at start and
kept in memory while the part runs.  Hidden files and folders (name starting
with ``.``, e.g. the temporary files of rsync or a browser) and symbolic links
are ignored.
"""
from __future__ import annotations

import logging
import os
import stat
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from slicebox.clock import now_ms
from slicebox.context import Services
from slicebox.jobs.supervisor import Part
from slicebox.models import DirectoryWatch
from slicebox.services import directorywatches as service
from slicebox.services import logs
from slicebox.services.directorywatches import Outcome

logger = logging.getLogger(__name__)

KEY_PREFIX = "directory-watch"
#: longest real-time wait of the loop while files are pending (how often they are re-examined)
_TICK = 0.1
#: seconds before a file whose import failed unexpectedly (e.g. database down) is tried again
_RETRY_SECONDS = 5.0


def parts(services: Services) -> dict[str, Callable[[], Part]]:
    """One watcher per watch; the key holds the path, so a changed row restarts its watcher."""
    return {f"{KEY_PREFIX}:{w.id}:{w.path}": (lambda w=w: DirectoryWatcher(services, w))
            for w in service.list_watches(services)}


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: "DirectoryWatcher"):
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        paths = [event.src_path]
        if getattr(event, "dest_path", ""):
            paths.append(event.dest_path)
        self.watcher.notify([os.fsdecode(p) for p in paths])


class DirectoryWatcher:
    """Imports every DICOM file below one watched directory, each version exactly once."""

    def __init__(self, services: Services, watch: DirectoryWatch, settle: float | None = None,
                 rescan_interval: float | None = None, parallelism: int | None = None):
        config = services.config
        self.services = services
        self.watch = watch
        self.root = watch.path
        self.settle_ms = int(1000 * float(config["DIRECTORY_SETTLE"] if settle is None else settle))
        self.rescan_interval = float(config["DIRECTORY_RESCAN_INTERVAL"]
                                     if rescan_interval is None else rescan_interval)
        workers = int(config["DIRECTORY_PARALLELISM"] if parallelism is None else parallelism)
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers),
                                        thread_name_prefix=f"watch-{watch.id}")
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observer: Observer | None = None
        self._events: set[str] = set()
        #: path -> (size, mtime_ns) imported or refused (the ledger)
        self._known: dict[str, tuple[int, int]] = {}
        #: path -> ((size, mtime_ns), clock ms since which it is unchanged)
        self._pending: dict[str, tuple[tuple[int, int], int]] = {}
        self._inflight: set[str] = set()
        #: what happened, by outcome name, plus "scans" and "errors" (tests and diagnostics)
        self.stats: dict[str, int] = {o.value: 0 for o in Outcome} | {"scans": 0, "errors": 0}
        self._ready = threading.Event()

    # -- Part ---------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"directory-watch-{self.watch.id}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self._stop_observer()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def alive(self) -> bool:
        if self._thread is None or not self._thread.is_alive() or self._stop.is_set():
            return False
        observer = self._observer
        return observer is None or observer.is_alive()

    def wait_ready(self, timeout: float) -> bool:
        """True once the first full scan is done (tests)."""
        return self._ready.wait(timeout)

    def pending(self) -> int:
        with self._lock:
            return len(self._pending) + len(self._inflight)

    # -- events (observer thread) ----------------------------------------------------
    def notify(self, paths: list[str]) -> None:
        with self._lock:
            self._events.update(paths)
        self._wake.set()

    # -- the loop ---------------------------------------------------------------------
    def _run(self) -> None:
        if not self._wait_for_directory():
            return
        while not self._stop.is_set():
            try:
                self._known = service.known_files(self.services, self.root)
                break
            except Exception:  # noqa: BLE001 - database down: try again
                logger.exception("watch %s: could not read what was imported before", self.watch.name)
                self._stop.wait(_RETRY_SECONDS)
        self._start_observer()
        next_scan = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_scan:
                    if not os.path.isdir(self.root):
                        # inotify lost it; the supervisor restarts this part, which waits for it
                        logger.warning("watch %s: %s is gone", self.watch.name, self.root)
                        return
                    self._scan(self.root)
                    self.stats["scans"] += 1
                    self._ready.set()
                    next_scan = time.monotonic() + self.rescan_interval
                self._take_events()
                self._examine_pending()
            except Exception:  # noqa: BLE001 - the watcher must outlive any bug in one round
                logger.exception("watch %s: round failed", self.watch.name)
                self.stats["errors"] += 1
            with self._lock:
                busy = bool(self._pending or self._events)
            timeout = _TICK if busy else max(0.0, min(next_scan - time.monotonic(), 1.0))
            self._wake.wait(timeout)
            self._wake.clear()

    def _wait_for_directory(self) -> bool:
        """Wait (warning once) while the watched directory is missing; False when stopped."""
        warned = False
        while not self._stop.is_set():
            if os.path.isdir(self.root):
                if warned:
                    logs.info(self.services, service.LOG_SUBJECT,
                              f"directory {self.root} of watch {self.watch.name!r} is back")
                return True
            if not warned:
                warned = True
                try:
                    logs.warn(self.services, service.LOG_SUBJECT,
                              f"directory {self.root} of watch {self.watch.name!r} does not exist; "
                              "waiting for it")
                except Exception:  # noqa: BLE001
                    logger.exception("could not write to the event log")
            self._stop.wait(min(self.rescan_interval, 5.0))
        return False

    def _start_observer(self) -> None:
        observer = Observer()
        try:
            observer.schedule(_Handler(self), self.root, recursive=True)
            observer.start()
        except OSError as exc:  # e.g. too many folders for inotify: the rescans still find everything
            logs.warn(self.services, service.LOG_SUBJECT,
                      f"watch {self.watch.name!r}: no change notifications for {self.root} ({exc}); "
                      f"relying on a rescan every {self.rescan_interval:g} s")
            return
        self._observer = observer

    def _stop_observer(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=10)

    # -- finding files --------------------------------------------------------------------
    def _scan(self, top: str) -> None:
        """Walk ``top`` (no symbolic links, no hidden entries) and note every regular file."""
        stack = [top]
        while stack and not self._stop.is_set():
            folder = stack.pop()
            try:
                with os.scandir(folder) as entries:
                    for entry in entries:
                        if entry.name.startswith("."):
                            continue
                        try:
                            st = entry.stat(follow_symlinks=False)
                        except OSError:
                            continue
                        if stat.S_ISDIR(st.st_mode):
                            stack.append(entry.path)
                        elif stat.S_ISREG(st.st_mode):
                            self._observe(entry.path, (st.st_size, st.st_mtime_ns))
            except (FileNotFoundError, NotADirectoryError, PermissionError):
                continue

    def _take_events(self) -> None:
        with self._lock:
            events, self._events = self._events, set()
        for path in events:
            if not self._inside(path):
                continue
            try:
                st = os.lstat(path)
            except OSError:
                with self._lock:
                    self._pending.pop(path, None)  # deleted or moved away: nothing to do
                continue
            if stat.S_ISDIR(st.st_mode):
                self._scan(path)  # files made before inotify watched the new folder
            elif stat.S_ISREG(st.st_mode):
                self._observe(path, (st.st_size, st.st_mtime_ns))

    def _inside(self, path: str) -> bool:
        relative = os.path.relpath(path, self.root)
        if relative == "." or relative.startswith(".."):
            return False
        return not any(part.startswith(".") for part in relative.split(os.sep))

    def _observe(self, path: str, version: tuple[int, int]) -> None:
        with self._lock:
            if self._known.get(path) == version or path in self._inflight:
                return
            current = self._pending.get(path)
            if current is None or current[0] != version:
                self._pending[path] = (version, now_ms())

    # -- importing ---------------------------------------------------------------------------
    def _examine_pending(self) -> None:
        now = now_ms()
        with self._lock:
            candidates = [(p, v, since) for p, (v, since) in self._pending.items() if p not in self._inflight]
        for path, version, since in candidates:
            current = service.file_version(path)
            with self._lock:
                if current is None:
                    self._pending.pop(path, None)
                    self.stats[Outcome.VANISHED.value] += 1
                    continue
                if current != version:
                    self._pending[path] = (current, now)
                    continue
                if now - since < self.settle_ms or self._stop.is_set():
                    continue
                self._inflight.add(path)
            # Outside the lock: a future done already runs its callback (which takes the lock) at once.
            future = self._pool.submit(service.import_file, self.services, self.watch, path, version)
            future.add_done_callback(lambda f, path=path, version=version: self._done(path, version, f))

    def _done(self, path: str, version: tuple[int, int], future: Future) -> None:
        if future.cancelled():  # stopping
            with self._lock:
                self._inflight.discard(path)
            return
        try:
            outcome = future.result()
        except Exception:  # noqa: BLE001 - e.g. the database is down: try again later
            logger.exception("watch %s: importing %s failed; trying again", self.watch.name, path)
            with self._lock:
                self._inflight.discard(path)
                self.stats["errors"] += 1
                self._pending[path] = (version, now_ms() + int(_RETRY_SECONDS * 1000))
            return
        with self._lock:
            self._inflight.discard(path)
            self.stats[outcome.value] += 1
            if outcome in (Outcome.ADDED, Outcome.DUPLICATE, Outcome.REJECTED, Outcome.KNOWN):
                self._known[path] = version
                if self._pending.get(path, (None,))[0] == version:
                    del self._pending[path]
            elif outcome is Outcome.VANISHED:
                self._pending.pop(path, None)
            # CHANGED: stays pending; the next round sees the new version and waits for it to settle
        self._wake.set()
