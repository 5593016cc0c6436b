"""Image modification: set or insert attributes; the result replaces the image.

The stored dataset is streamed through the engine with an edit plan
(:mod:`slicebox.dicom.modification`) into a temporary file, which the one
ingest path stores as a *new* image replacing the old one atomically
(``ingest.store_file(..., replaces=id)``): new id, old id gone, series source
and series tags carried over, and on any failure the old image untouched.
"""
from __future__ import annotations

import logging

from slicebox.context import Services
from slicebox.dicom import tagstream
from slicebox.dicom.errors import DicomStreamError
from slicebox.dicom.modification import ModificationError, TagMapping, build_plan
from slicebox.errors import BadRequest
from slicebox.models import StoredImage, User
from slicebox.services import ingest
from slicebox.services.images import get_image, user_source
from slicebox.storage.tempfiles import discard, new_temp_path, open_seekable

logger = logging.getLogger(__name__)


def modify_image(services: Services, image_id: int, mappings: tuple[TagMapping, ...], user: User) -> StoredImage:
    """Apply ``mappings`` to image ``image_id``; store the result as a new image.

    Raises
    ------
    BadRequest
        A path to a missing item, a value the VR cannot
        hold, or a result that is not storable (e.g. an emptied UID).
    NotFound
        Unknown image (also when a concurrent modification replaced it first).
    Conflict
        The modified dataset has the identity of another stored image.
    """
    get_image(services, image_id)
    temp = new_temp_path(services.storage, suffix=".dcm")
    try:
        # One open file for both passes: a concurrent replacement that unlinks
        # it cannot pull it away in between. The engine maps a real file (and
        # copies pixel data in the kernel); other file objects are read.
        with open_seekable(services.storage, image_id) as fh:
            try:
                plan = build_plan(fh, mappings)
                fh.seek(0)
                tagstream.rewrite(fh, temp, plan)
            except ModificationError as exc:
                raise BadRequest(str(exc)) from None
            except DicomStreamError as exc:
                raise BadRequest(f"cannot modify image {image_id}: {exc}") from None
    except BaseException:
        discard(temp)
        raise
    # The old series' source is carried over; the user is only the fallback
    # for a series that somehow has none.
    result = ingest.store_file(services, temp, user_source(user), replaces=image_id)
    logger.info("image %s modified by %s into image %s", image_id, user.user, result.image.id)
    return result
