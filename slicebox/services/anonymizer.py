"""Producing anonymized copies of stored images (the flow on top of the engine).

INTERIM: until the streaming engine and the profile tables are merged, this
copies the stored bytes unchanged.  Box transport is built and tested against
this seam; the anonymizing implementation replaces the body of
``anonymized_copy`` without changing its signature.
"""
from __future__ import annotations

import shutil

from slicebox.context import Services
from slicebox.services import ingest


def anonymized_copy(services: Services, image_id: int, profile: tuple[str, ...],
                    tag_values: list[tuple[dict, str]]) -> str:
    """Write an anonymized copy of image ``image_id`` to a temporary file; return its path."""
    from slicebox.services.images import open_dataset

    fh, _size = open_dataset(services, image_id)
    path = ingest.new_temp_path(services)
    try:
        with fh, open(path, "wb") as out:
            shutil.copyfileobj(fh, out, ingest.CHUNK)
    except BaseException:
        ingest.discard(path)
        raise
    return path
