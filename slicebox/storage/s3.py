"""Images as objects ``<prefix>/<image id>`` in an S3-compatible bucket (boto3).

``SLICEBOX_STORAGE_URL=s3://bucket/prefix``.  The endpoint, region and
credentials come from ``SLICEBOX_S3_*`` when set, else from boto3's usual
chain (``AWS_ENDPOINT_URL``, ``AWS_REGION`` / ``AWS_DEFAULT_REGION``,
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, ``~/.aws``, instance roles).

The object store is remote: ingest puts an object *before* the database
transaction that indexes it (``stages_before_commit``), under an image id
reserved beforehand, and deletes it again when that transaction fails or finds
the image already stored.  Large files go up as multipart uploads (aborted by
boto3 when a part fails, so nothing half-written stays behind).  Downloads
stream the object's body.  Temporary files live in ``<DATA_DIR>/tmp``, local
to this host.

Every failure to reach the object store, or an answer other than "not found"
from it, is a :class:`~slicebox.errors.StorageUnavailable` (HTTP 503): the
client did nothing wrong.
"""
from __future__ import annotations

import io
import logging
import os
from typing import BinaryIO, Iterator

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from slicebox.errors import NotFound, StorageUnavailable

logger = logging.getLogger(__name__)

#: Files larger than this go up as multipart uploads, in parts of PART_SIZE.
MULTIPART_THRESHOLD = 32 * 1024 * 1024
PART_SIZE = 16 * 1024 * 1024
#: Parts uploaded at once per file (memory per upload is about this × PART_SIZE).
UPLOAD_CONCURRENCY = 4
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


class S3Storage:
    #: ingest puts objects before the database transaction, never inside it
    stages_before_commit = True

    def __init__(self, bucket: str, prefix: str, data_dir: str, endpoint_url: str = "",
                 region: str = "", access_key_id: str = "", secret_access_key: str = ""):
        if not bucket:
            raise ValueError("S3 storage URL needs a bucket: s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._tmp = os.path.join(data_dir, "tmp")
        os.makedirs(self._tmp, exist_ok=True)
        kwargs: dict = {}
        if endpoint_url:
            kwargs["endpoint_url"] = endpoint_url
        if region:
            kwargs["region_name"] = region
        if access_key_id:
            kwargs["aws_access_key_id"] = access_key_id
            kwargs["aws_secret_access_key"] = secret_access_key
        session = boto3.session.Session()
        self.client = session.client("s3", config=BotoConfig(
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=10, read_timeout=120,
            max_pool_connections=32,
            # S3-compatible servers (MinIO, Ceph, moto) vary in virtual-host support
            s3={"addressing_style": "path"},
            # boto3 >= 1.36 adds CRC checksums by default; not every S3-compatible server has them
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ), **kwargs)
        self._transfer = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD,
                                        multipart_chunksize=PART_SIZE,
                                        max_concurrency=UPLOAD_CONCURRENCY, use_threads=True)

    def __repr__(self) -> str:
        return f"S3Storage(s3://{self.bucket}/{self.prefix})"

    def key(self, image_id: int) -> str:
        name = str(int(image_id))
        return f"{self.prefix}/{name}" if self.prefix else name

    def temp_dir(self) -> str:
        return self._tmp

    # -- writing ------------------------------------------------------------------
    def put_file(self, image_id: int, path: str) -> None:
        """Upload the file (multipart when large).  The local file stays; its owner removes it."""
        try:
            self.client.upload_file(path, self.bucket, self.key(image_id), Config=self._transfer)
        except (BotoCoreError, ClientError, Exception) as exc:  # s3transfer wraps in its own errors
            raise _unavailable("storing", image_id, exc) from None

    def write(self, image_id: int, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key(image_id), Body=bytes(data))
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable("storing", image_id, exc) from None

    # -- reading ------------------------------------------------------------------
    def open(self, image_id: int) -> BinaryIO:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.key(image_id))
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                raise NotFound(f"dataset for image {image_id} not found") from None
            raise _unavailable("reading", image_id, exc) from None
        except BotoCoreError as exc:
            raise _unavailable("reading", image_id, exc) from None
        return _Body(response["Body"], image_id)

    def path(self, image_id: int) -> str | None:
        return None

    def size(self, image_id: int) -> int:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key(image_id))
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                raise NotFound(f"dataset for image {image_id} not found") from None
            raise _unavailable("reading", image_id, exc) from None
        except BotoCoreError as exc:
            raise _unavailable("reading", image_id, exc) from None
        return int(head["ContentLength"])

    def exists(self, image_id: int) -> bool:
        try:
            self.size(image_id)
        except NotFound:
            return False
        return True

    def delete(self, image_id: int) -> None:
        """Remove the object; a missing object is not an error (S3 says 204 either way)."""
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key(image_id))
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable("deleting", image_id, exc) from None

    def ids(self) -> list[int]:
        return sorted(self._iter_ids())

    def _iter_ids(self) -> Iterator[int]:
        start = f"{self.prefix}/" if self.prefix else ""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=start):
            for item in page.get("Contents", ()):
                name = item["Key"][len(start):]
                if name.isdigit():
                    yield int(name)

    def check(self) -> None:
        """Raise StorageUnavailable unless the bucket answers."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable(f"object store s3://{self.bucket}: {_describe(exc)}") from None


class _Body(io.RawIOBase):
    """The streamed body of an object, as a readable binary file (closes the connection)."""

    def __init__(self, body, image_id: int):
        self._body = body
        self._image_id = image_id

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            return self._body.read(None if size is None or size < 0 else size)
        except (BotoCoreError, OSError) as exc:
            raise _unavailable("reading", self._image_id, exc) from None

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                self._body.close()
            finally:
                super().close()


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"answered {status} {_code(exc)}".strip()
    return str(exc) or type(exc).__name__


def _unavailable(doing: str, image_id: int, exc: Exception) -> StorageUnavailable:
    logger.warning("object store failed %s image %s: %s", doing, image_id, _describe(exc))
    return StorageUnavailable(f"object store failed {doing} the dataset of image {image_id}: {_describe(exc)}")
