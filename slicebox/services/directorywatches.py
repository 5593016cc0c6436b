"""Directory watches: folders whose DICOM files (sub-folders included) are imported.

The watching itself (inotify, rescans, settling) is the supervisor part in
``slicebox/jobs/directorywatches.py``; this module decides what a watch may be
and imports one file exactly once.  What was imported is remembered in the
database by real path, size and modification time (``directory_watch_files``),
written in the image's own transaction, so neither a restart nor deleting and
re-creating a watch imports a file twice; a changed file (other size or
modification time) is a new version and is imported again.
"""
from __future__ import annotations

import enum
import logging
import os
import stat

from slicebox.clock import now_ms
from slicebox.context import Services
from slicebox.db import IntegrityError
from slicebox.db import directorywatches as repo
from slicebox.errors import BadRequest
from slicebox.models import DirectoryWatch, Page, Source, StoredImage
from slicebox.services import ingest, logs
from slicebox.storage.tempfiles import CHUNK, discard, new_temp_path

logger = logging.getLogger(__name__)

LOG_SUBJECT = "Directory"
#: longest watch name and path
MAX_NAME = 180
MAX_PATH = 4096


# -- the watches ------------------------------------------------------------------
def _directory_or_400(path: str) -> str:
    """The resolved absolute path of an existing, readable directory."""
    if "\x00" in path or not os.path.isabs(path):
        raise BadRequest("directory watch path must be an absolute path")
    real = os.path.realpath(path)
    if not os.path.isdir(real):
        raise BadRequest(f"{path} is not an existing directory")
    if not os.access(real, os.R_OK | os.X_OK):
        raise BadRequest(f"directory {path} is not readable by the box")
    return real


def _intersects(a: str, b: str) -> bool:
    """True when one of two resolved directories is the other or lies inside it."""
    a, b = a.rstrip("/") + "/", b.rstrip("/") + "/"
    return a.startswith(b) or b.startswith(a)


def add_watch(services: Services, name: str, path: str) -> tuple[DirectoryWatch, bool]:
    """A new watch (name, path); the same name and path again returns the existing one.

    Raises BadRequest when the path is no readable directory, or is inside
    or around another watch, or the name is taken by a watch of another path.
    The supervisor starts watching within ``SUPERVISOR_INTERVAL`` seconds.
    """
    path = _directory_or_400(path)
    with services.db.transaction() as conn:
        for watch in repo.list_watches(conn):
            if watch.path == path and watch.name == name:
                return watch, False
            if watch.name == name:
                raise BadRequest(f"a directory watch named {name!r} already watches {watch.path}")
            if _intersects(watch.path, path):
                raise BadRequest(f"Directory intersects existing directory {watch.path} "
                                 f"(watch {watch.name!r})")
        try:
            watch = repo.insert_watch(conn, name, path)
        except IntegrityError:
            raise BadRequest("a directory watch with this name or path was added meanwhile") from None
        logs.info(services, LOG_SUBJECT, f"watching {path} ({name!r})", conn)
    return watch, True


def list_watches(services: Services, page: Page | None = None) -> list[DirectoryWatch]:
    page = page or Page(0, 1_000_000)
    with services.db.connection() as conn:
        return repo.list_watches(conn, page.start_index, page.count)


def delete_watch(services: Services, watch_id: int) -> None:
    """Stop watching (the supervisor stops the part on its next pass); files stay where they are."""
    with services.db.transaction() as conn:
        watch = repo.get_watch(conn, watch_id)
        if watch is None:
            return
        repo.delete_watch(conn, watch_id)
        logs.info(services, LOG_SUBJECT, f"stopped watching {watch.path} ({watch.name!r})", conn)


def source_of(watch: DirectoryWatch) -> Source:
    return Source(type="directory", name=watch.name, id=watch.id)


# -- importing one file -------------------------------------------------------------
class Outcome(enum.Enum):
    ADDED = "added"            # a new image
    DUPLICATE = "duplicate"    # DICOM the box already had
    REJECTED = "rejected"      # not storable DICOM: logged once, remembered, left alone
    KNOWN = "known"            # this version of the file was handled before
    VANISHED = "vanished"      # gone (or replaced) before or while it was read
    CHANGED = "changed"        # still being written: try again once it has settled


def known_files(services: Services, root: str) -> dict[str, tuple[int, int]]:
    """path -> (size, mtime_ns) of what the ledger holds below ``root``."""
    with services.db.connection() as conn:
        return repo.ledger_under(conn, root)


def file_version(path: str) -> tuple[int, int] | None:
    """(size, mtime_ns) of a regular file (symlinks not followed); None when it is not one."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return st.st_size, st.st_mtime_ns


def import_file(services: Services, watch: DirectoryWatch, path: str,
                expected: tuple[int, int]) -> Outcome:
    """Import the file at ``path`` whose settled version is ``expected`` = (size, mtime_ns).

    The file is copied to a temporary file first (the original is never
    touched); when its size or modification time moved during the copy the
    copy is dropped (CHANGED).  A file that vanished is no error.
    """
    with services.db.connection() as conn:
        entry = repo.ledger_entry(conn, path)
    if entry is not None and (entry["size"], entry["mtime_ns"]) == expected:
        return Outcome.KNOWN
    temp = new_temp_path(services.storage)
    try:
        try:
            # No symbolic link followed, and no blocking on a FIFO swapped in for the file.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except (FileNotFoundError, NotADirectoryError):
            return Outcome.VANISHED
        except PermissionError as exc:
            return _reject(services, watch, path, expected, f"cannot read it ({exc.strerror})")
        except OSError:  # a symbolic link now (ELOOP): not ours to import
            return Outcome.VANISHED
        try:
            with open(fd, "rb") as src, open(temp, "wb") as dst:
                st = os.fstat(src.fileno())
                if not stat.S_ISREG(st.st_mode):
                    return Outcome.VANISHED
                if (st.st_size, st.st_mtime_ns) != expected:
                    return Outcome.CHANGED
                while True:
                    chunk = src.read(CHUNK)
                    if not chunk:
                        break
                    dst.write(chunk)
        except (FileNotFoundError, NotADirectoryError):
            return Outcome.VANISHED
        after = file_version(path)
        if after is None:
            return Outcome.VANISHED
        if after != expected:
            return Outcome.CHANGED
        size, mtime_ns = expected

        def remember(conn, result: StoredImage) -> None:
            repo.record_file(conn, path, size, mtime_ns, "imported", result.image.id, now_ms())

        try:
            result = ingest.store_file(services, temp, source_of(watch), in_transaction=remember)
            temp = None  # store_file consumed it
        except BadRequest as exc:
            temp = None
            return _reject(services, watch, path, expected, exc.message)
        return Outcome.ADDED if result.created else Outcome.DUPLICATE
    finally:
        discard(temp)


def _reject(services: Services, watch: DirectoryWatch, path: str, version: tuple[int, int],
            why: str) -> Outcome:
    """Remember this version as refused and say so once in the event log."""
    relative = os.path.relpath(path, watch.path)
    with services.db.transaction() as conn:
        repo.record_file(conn, path, version[0], version[1], "rejected", None, now_ms())
        logs.warn(services, LOG_SUBJECT, f"could not import {relative} from {watch.path} ({watch.name!r}): {why}",
                  conn)
    return Outcome.REJECTED
