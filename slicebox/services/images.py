"""Images: add, fetch, delete.  Rendering, attributes, modification and export
live in their own modules under services/ and build on these."""
from __future__ import annotations

import logging
from typing import BinaryIO

from slicebox.context import Services
from slicebox.db import metadata as repo
from slicebox.errors import NotFound
from slicebox.models import Image, Source, StoredImage, User
from slicebox.services import ingest

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
