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
from typing import BinaryIO, Iterator

from slicebox.errors import NotFound, PayloadTooLarge
from slicebox.storage import Storage

#: Bytes read or written at a time when copying streams.
CHUNK = 1 << 20


def new_temp_path(storage: Storage, suffix: str = ".part") -> str:
    """A new empty file in the storage's temp folder; the caller discards it."""
    fd, path = tempfile.mkstemp(dir=storage.temp_dir(), prefix="in-", suffix=suffix)
    os.close(fd)
    return path


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
