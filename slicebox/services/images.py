"""Images: add, fetch, delete.  Rendering, attributes, modification and export
live in their own modules under services/ and build on these."""
from __future__ import annotations

import logging
from typing import BinaryIO

from slicebox.context import Services
from slicebox.db import metadata as repo
from slicebox.dicom.secondary_capture import SOF_TRANSFER_SYNTAX, EncodedFrame, build_secondary_capture
from slicebox.errors import BadRequest, NotFound, PayloadTooLarge
from slicebox.imaging.jpeg import NotJpeg, read_jpeg_info
from slicebox.models import Image, Source, StoredImage, User
from slicebox.services import ingest
from slicebox.storage.tempfiles import discard, new_temp_path

logger = logging.getLogger(__name__)


def user_source(user: User) -> Source:
    return Source(type="user", name=user.user, id=user.id)


def add_image(services: Services, stream: BinaryIO, user: User) -> StoredImage:
    """Store an uploaded dataset from ``stream`` with the user as its source."""
    return ingest.store_stream(services, stream, user_source(user))


def get_image(services: Services, image_id: int) -> Image:
    with services.db.connection() as conn:
        image = repo.get_image(conn, image_id)
    if image is None:
        raise NotFound(f"image {image_id} not found")
    return image


def open_dataset(services: Services, image_id: int) -> tuple[BinaryIO, int]:
    """The stored bytes of an image as an open file and its size."""
    get_image(services, image_id)
    size = services.storage.size(image_id)
    return services.storage.open(image_id), size


def delete_images(services: Services, image_ids: list[int]) -> list[int]:
    """Delete images (unknown ids ignored) and hierarchy rows left empty; then their files."""
    if not image_ids:
        return []
    with services.db.transaction() as conn:
        deleted = repo.delete_images(conn, image_ids)
    # Files go after the commit: a crash in between leaves an orphan file, never
    # a row without its bytes.
    for image_id in deleted:
        services.storage.delete(image_id)
    return deleted


# -- JPEG wrapping ------------------------------------------------------------------
#: Largest JPEG body accepted by POST /images/jpeg (it is wrapped in memory).
MAX_JPEG_BYTES = 256 * 1024 * 1024


def add_jpeg(services: Services, stream: BinaryIO, study_id: int, description: str,
             user: User) -> StoredImage:
    """Wrap a JPEG as a Secondary Capture image in a new series of study ``study_id``.

    Raises
    ------
    NotFound
        Unknown study.
    BadRequest
        Not a JPEG (no ``FF D8 FF`` start, no start-of-frame), or a JPEG
        process DICOM has no transfer syntax for here (progressive,
        arithmetic, hierarchical), or a component count other than 1 or 3.
    """
    with services.db.connection() as conn:
        study = repo.get_study(conn, study_id)
        patient = repo.get_patient(conn, study.patient_id) if study is not None else None
    if study is None or patient is None:
        raise NotFound(f"study {study_id} not found")
    data = stream.read(MAX_JPEG_BYTES + 1)
    if len(data) > MAX_JPEG_BYTES:
        raise PayloadTooLarge(f"JPEG larger than {MAX_JPEG_BYTES} bytes")
    try:
        info = read_jpeg_info(data)
    except NotJpeg as exc:
        raise BadRequest(str(exc)) from None
    transfer_syntax = SOF_TRANSFER_SYNTAX.get(info.sof)
    if transfer_syntax is None:
        raise BadRequest(f"JPEG process with marker FF{info.sof:02X} (progressive, arithmetic or "
                         "hierarchical) cannot be wrapped; use baseline, extended or lossless JPEG")
    if info.components not in (1, 3):
        raise BadRequest(f"JPEG with {info.components} components cannot be wrapped (1 or 3 supported)")
    max_pixels = int(services.config["MAX_PIXELS"])
    if info.rows * info.columns * info.components > max_pixels:
        raise BadRequest(f"JPEG of {info.columns} x {info.rows} x {info.components} samples is larger than "
                         f"this box accepts ({max_pixels})")
    lossless = info.sof == 0xC3
    if info.components == 1:
        photometric = "MONOCHROME2"
    elif lossless or info.adobe_transform == 0:
        photometric = "RGB"  # no colour transform in the stream
    else:
        # PS3.5 8.2.1: YCbCr JPEG is YBR_FULL_422 when chroma is subsampled, else YBR_FULL.
        photometric = "YBR_FULL_422" if info.subsampled else "YBR_FULL"
    frame = EncodedFrame(data=data, transfer_syntax=transfer_syntax, rows=info.rows,
                         columns=info.columns, precision=info.precision,
                         samples_per_pixel=info.components, photometric=photometric,
                         lossy=not lossless)
    ds = build_secondary_capture(frame, patient, study, description)
    path = new_temp_path(services.storage)
    try:
        ds.save_as(path, enforce_file_format=True)
    except BaseException:
        discard(path)
        raise
    return ingest.store_file(services, path, user_source(user))
