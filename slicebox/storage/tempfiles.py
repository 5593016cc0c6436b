"""Temporary files next to the storage, and a local readable copy of a stored image.

Incoming bytes are spooled to a temporary file in the storage's temp folder
(on the same file system when possible, so storing is a rename), never held
whole in memory.  ``local_copy`` is the one place that knows whether a
back-end keeps local files: callers get a path (or small datasets' bytes)
whatever the storage kind.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
import zlib
from typing import BinaryIO, Iterator

from slicebox.errors import BadRequest, NotFound, PayloadTooLarge
from slicebox.storage import Storage
from slicebox.storage.owner import HOST, OWNED, owner_prefix

#: Bytes read or written at a time when copying streams.
CHUNK = 1 << 20


def new_temp_path(storage: Storage, suffix: str = ".part") -> str:
    """A new empty file in the storage's temp folder; the caller discards it.

    Its name says which host and process own it, so :func:`sweep` can tell
    the leftovers of a killed process from files a live request still uses.
    """
    fd, path = tempfile.mkstemp(dir=storage.temp_dir(), prefix=owner_prefix(), suffix=suffix)
    os.close(fd)
    return path


def _process_started(pid: int) -> float | None:
    """Start time (epoch seconds) of a live process, None when it is gone or unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        with open("/proc/stat", "rb") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith(b"btime"))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, StopIteration):
        return None


def _owner_gone(pid: int, mtime: float) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, someone else's
    started = _process_started(pid)
    # A process that started after the file was last written did not write it: the pid was reused.
    return started is not None and started > mtime + 2


def sweep(folder: str, max_age: float, now: float | None = None) -> list[str]:
    """Remove stale temporary files from ``folder``; return the names removed.

    Stale: created on this host by a process that is gone (killed worker,
    crashed box), or untouched for ``max_age`` seconds (other hosts' files,
    older names).  Files of live processes are left alone, however large.
    """
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return removed
    for entry in entries:
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            mtime = entry.stat(follow_symlinks=False).st_mtime
        except FileNotFoundError:
            continue
        match = OWNED.match(entry.name)
        if match is not None and match["host"] == HOST:
            stale = _owner_gone(int(match["pid"]), mtime) or now - mtime > max_age
        else:
            stale = now - mtime > max_age
        if stale:
            try:
                os.unlink(entry.path)
                removed.append(entry.name)
            except FileNotFoundError:
                pass
    return removed


def spool(storage: Storage, stream: BinaryIO, limit: int | None = None) -> str:
    """Copy a byte stream to a new temporary file; return its path.

    Raises PayloadTooLarge (and leaves no file) past ``limit`` bytes.
    """
    path = new_temp_path(storage)
    written = 0
    try:
        with open(path, "wb") as out:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                written += len(chunk)
                if limit is not None and written > limit:
                    raise PayloadTooLarge(f"dataset larger than {limit} bytes")
                out.write(chunk)
    except BaseException:
        discard(path)
        raise
    return path


#: Inflated bytes allowed before the ratio limit of :func:`spool_inflated` applies.
RATIO_FREE_BYTES = 16 << 20


def spool_inflated(storage: Storage, stream: BinaryIO, max_ratio: float,
                   max_size: int | None = None) -> str:
    """Inflate a raw-deflate byte stream into a new temporary file; return its path.

    Memory stays at a chunk: each call to the inflater may return at most
    :data:`CHUNK` bytes.  Refused as soon as the output passes ``max_size``
    bytes or, past :data:`RATIO_FREE_BYTES`, ``max_ratio`` times the
    compressed bytes read so far (a decompression bomb), and when the stream
    lacks its final block (cut short) or anything follows it.  A refused
    stream leaves no file.

    Raises
    ------
    PayloadTooLarge
        Past a limit.
    BadRequest
        Not raw deflate, incomplete, or followed by garbage.
    """
    path = new_temp_path(storage)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    consumed = written = 0

    def put(out, data: bytes) -> None:
        nonlocal written
        written += len(data)
        if (max_size is not None and written > max_size) or \
                (written > RATIO_FREE_BYTES and written > max_ratio * consumed):
            raise PayloadTooLarge(f"deflated body inflates past its limit ({written} bytes from "
                                  f"{consumed} compressed; at most {max_ratio:g} times)")
        out.write(data)

    try:
        with open(path, "wb") as out:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                if inflater.eof:
                    raise BadRequest("garbage after the end of the deflated body")
                consumed += len(chunk)
                data = chunk
                while data and not inflater.eof:
                    put(out, inflater.decompress(data, CHUNK))
                    data = inflater.unconsumed_tail
                if inflater.unused_data:
                    raise BadRequest("garbage after the end of the deflated body")
            while not inflater.eof:
                more = inflater.decompress(b"", CHUNK)
                if not more:
                    break
                put(out, more)
        if not inflater.eof:
            # A peer that vanished mid-transfer leaves a stream without its final
            # block: never store what would be a truncated image.
            raise BadRequest("deflated body is incomplete (the transfer was cut short)")
    except zlib.error as exc:
        discard(path)
        raise BadRequest(f"body is not raw-deflate compressed: {exc}") from None
    except BaseException:
        discard(path)
        raise
    return path


def discard(path: str | None) -> None:
    """Remove a temporary file; None or an already missing file is fine."""
    if path:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


@contextlib.contextmanager
def local_copy(storage: Storage, image_id: int, in_memory_limit: int = -1) -> Iterator[str | bytes]:
    """The stored dataset of ``image_id``, readable locally for the ``with`` block.

    Its bytes when it is at most ``in_memory_limit`` bytes long (never with the
    default -1); else a local file path: the stored file itself when the
    back-end keeps local files, or a temporary copy removed at the end.

    Raises NotFound when the dataset is gone.
    """
    path = storage.path(image_id)
    if path is not None:
        data = None
        try:
            if in_memory_limit >= 0:
                with open(path, "rb") as fh:
                    if os.fstat(fh.fileno()).st_size <= in_memory_limit:
                        data = fh.read()
            elif not os.path.exists(path):
                raise FileNotFoundError(path)
        except FileNotFoundError:  # deleted meanwhile
            raise NotFound(f"dataset for image {image_id} not found") from None
        yield path if data is None else data
        return
    size = storage.size(image_id)
    spooled = data = None
    with storage.open(image_id) as fh:
        if size <= in_memory_limit:
            data = fh.read()
        else:
            spooled = spool(storage, fh)
    if data is not None:
        yield data
        return
    try:
        yield spooled
    finally:
        discard(spooled)


@contextlib.contextmanager
def open_seekable(storage: Storage, image_id: int) -> Iterator[BinaryIO]:
    """The stored dataset as an open, seekable binary file for the ``with`` block.

    The stored file itself when the back-end keeps local files (one open
    handle: a concurrent replacement unlinking it cannot pull it away), else a
    temporary local copy, removed at the end.  Raises NotFound.
    """
    if storage.path(image_id) is not None:
        with storage.open(image_id) as fh:
            yield fh
        return
    with storage.open(image_id) as src:
        spooled = spool(storage, src)
    try:
        with open(spooled, "rb") as fh:
            yield fh
    finally:
        discard(spooled)
