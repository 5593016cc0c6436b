"""Export sets: a list of images to download later as one zip (kept in the
database, so they survive a restart; they expire after EXPORT_SET_TTL)."""
from __future__ import annotations

import logging
import re
import zipfile
from typing import Iterator

from slicebox.clock import now as clock_now
from slicebox.clock import now_ms
from slicebox.context import Services
from slicebox.db import exports as repo
from slicebox.errors import NotFound

logger = logging.getLogger(__name__)

ZIP_NAME = "slicebox-export.zip"
_CHUNK = 1 << 20
#: Path separators would create folders; control characters confuse unzip tools.
_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f]")


def purge_expired(services: Services) -> int:
    with services.db.connection() as conn:
        return repo.purge(conn, now_ms())


def create_export_set(services: Services, image_ids: list[int]) -> int | None:
    """Store a set of the existing images among ``image_ids``; None when there are none."""
    now = now_ms()
    ttl_ms = int(services.config["EXPORT_SET_TTL"]) * 1000
    with services.db.transaction() as conn:
        repo.purge(conn, now)
        found = repo.existing_image_ids(conn, image_ids)
        if not found:
            return None
        return repo.insert(conn, now, now + ttl_ms, found)


def export_entries(services: Services, export_id: int) -> list[tuple[str, int]]:
    """(zip entry name, image id) of the images of a live export set still stored.

    Raises
    ------
    NotFound
        Unknown or expired export set.
    """
    with services.db.connection() as conn:
        image_ids = repo.get(conn, export_id, now_ms())
        if image_ids is None:
            raise NotFound(f"export set {export_id} not found or expired")
        rows = repo.export_entries(conn, image_ids)
    return [(entry_name(r), r["image_id"]) for r in rows]


def _clean(value) -> str:
    return _UNSAFE.sub("-", str(value or ""))


def entry_name(row: dict) -> str:
    """``{patient id}_{PatientName}-{PatientID}/{study id}_{StudyDate}/{series id}_{SeriesDate}_{Modality}/{image id}.dcm``.

    Each folder starts with a database id, so no component can be ``..``.
    """
    return (f"{row['patient_id']}_{_clean(row['patient_name'])}-{_clean(row['patient_dicom_id'])}/"
            f"{row['study_id']}_{_clean(row['study_date'])}/"
            f"{row['series_id']}_{_clean(row['series_date'])}_{_clean(row['modality'])}/"
            f"{row['image_id']}.dcm")


class _Pipe:
    """A write-only, non-seekable sink: zipfile then writes data descriptors and
    never seeks back, so the archive can be sent as it is made."""

    def __init__(self):
        self.chunks: list[bytes] = []
        self.size = 0

    def write(self, data) -> int:
        self.chunks.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        self.size = 0
        return data


def stream_zip(services: Services, entries: list[tuple[str, int]]) -> Iterator[bytes]:
    """The zip archive of ``entries`` in chunks, never whole in memory.

    Entries are STORED (DICOM pixel data is mostly compressed or noise) and
    written zip64 when large.  An image deleted since the set was made is
    skipped.
    """
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, image_id in entries:
            try:
                size = services.storage.size(image_id)
                src = services.storage.open(image_id)
            except NotFound:
                logger.info("export: image %s vanished, skipped", image_id)
                continue
            info = zipfile.ZipInfo(name, date_time=clock_now().timetuple()[:6])
            info.compress_type = zipfile.ZIP_STORED
            info.file_size = size  # lets zipfile choose zip64 headers up front
            with src, zf.open(info, mode="w", force_zip64=size >= zipfile.ZIP64_LIMIT) as dst:
                while True:
                    chunk = src.read(_CHUNK)
                    if not chunk:
                        break
                    dst.write(chunk)
                    if pipe.size >= _CHUNK:
                        yield pipe.drain()
            if pipe.size:
                yield pipe.drain()
    tail = pipe.drain()
    if tail:
        yield tail
