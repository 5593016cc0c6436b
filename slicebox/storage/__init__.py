"""Dataset bytes, one object per image id, behind a small protocol.

Back-ends by name: ``filesystem`` (default, ``file:///path``), ``memory``
(``memory://``, tests and throw-away boxes) and ``s3`` (``s3://bucket/prefix``,
an S3-compatible object store through boto3, the ``s3`` extra).  Writes are
atomic: a temporary name first, then a rename (or a whole PUT / a completed
multipart upload), so a crash never leaves a half-written image.

A back-end whose ``stages_before_commit`` is true is remote: ingest reserves
the image id and puts the object before the database transaction that indexes
it, and deletes it again when that transaction fails (no network call while
holding database locks).  Local back-ends move the file inside the
transaction.
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

    def check(self) -> None:
        """Raise ``StorageUnavailable`` unless the storage can be used now (health check)."""


def stages_before_commit(storage: Storage) -> bool:
    """True for remote back-ends: objects are put before the indexing transaction."""
    return bool(getattr(storage, "stages_before_commit", False))


def open_storage(url: str, data_dir: str, config: dict | None = None) -> Storage:
    """The storage named by ``url``; ``config`` supplies the ``S3_*`` settings for ``s3://``."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        from slicebox.storage.filesystem import FileSystemStorage

        return FileSystemStorage(parsed.path)
    if parsed.scheme == "memory":
        from slicebox.storage.memory import MemoryStorage

        return MemoryStorage(data_dir)
    if parsed.scheme == "s3":
        try:
            from slicebox.storage.s3 import S3Storage
        except ImportError as exc:  # boto3 missing
            raise ValueError(f"s3:// storage needs boto3: pip install 'slicebox[s3]' ({exc})") from None
        config = config or {}
        return S3Storage(parsed.netloc, parsed.path, data_dir,
                         endpoint_url=str(config.get("S3_ENDPOINT_URL", "") or ""),
                         region=str(config.get("S3_REGION", "") or ""),
                         access_key_id=str(config.get("S3_ACCESS_KEY_ID", "") or ""),
                         secret_access_key=str(config.get("S3_SECRET_ACCESS_KEY", "") or ""))
    raise ValueError(f"unsupported storage URL: {url!r}")
