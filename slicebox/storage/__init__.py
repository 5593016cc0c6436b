"""Dataset bytes, one object per image id, behind a small protocol.

Back-ends by name: ``filesystem`` (default, ``file:///path``) and ``memory``
(``memory://``, tests and throw-away boxes).  Writes are atomic: a temporary
name first, then a rename, so a crash never leaves a half-written image.
"""
from __future__ import annotations

from typing import BinaryIO, Protocol
from urllib.parse import urlparse


class Storage(Protocol):
    def put_file(self, image_id: int, path: str) -> None:
        """Move (or copy) the finished file at ``path`` to the image's place."""

    def write(self, image_id: int, data: bytes) -> None: ...

    def open(self, image_id: int) -> BinaryIO:
        """Open the stored bytes for reading; raises ``NotFound``."""

    def path(self, image_id: int) -> str | None:
        """A local file path when the back-end has one (fast paths use it), else None."""

    def size(self, image_id: int) -> int: ...

    def delete(self, image_id: int) -> None:
        """Remove the object; a missing object is not an error."""

    def exists(self, image_id: int) -> bool: ...

    def temp_dir(self) -> str:
        """A local folder for spooling uploads, on the same file system when possible."""


def open_storage(url: str, data_dir: str) -> Storage:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        from slicebox.storage.filesystem import FileSystemStorage

        return FileSystemStorage(parsed.path)
    if parsed.scheme == "memory":
        from slicebox.storage.memory import MemoryStorage

        return MemoryStorage(data_dir)
    raise ValueError(f"unsupported storage URL: {url!r}")
