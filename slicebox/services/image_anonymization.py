"""Anonymizing stored images: anonymized copies (download, box sends) and anonymization in place.

``anonymize_file`` turns one dataset into its anonymous form in one pass of the
engine with the profile's plan (slicebox.dicom.anonymization_plan) and this
box's pseudonyms (services.anonymization), and records the key (real and
anonymous identities plus the changed root attributes) so that
services.reidentification can restore the real identity when the anonymous
data comes back through ingest.

Pseudonyms come from services.anonymization (one row per real value, decided
by unique constraints), so any number of workers anonymizing one patient agree
on one anonymous patient, study, series and image UID, and references inside
sequences (Referenced SOP Instance UID, ...) map to the same anonymous UIDs as
the images they point to.
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass

from slicebox.context import Services
from slicebox.dicom import profiles, tagstream
from slicebox.dicom import anonymization_plan as plans
from slicebox.dicom.errors import DicomStreamError
from slicebox.dicom.tagpath import TagPath, TagValue, tag_path_from_json
from slicebox.errors import BadRequest, InvalidDicom, NotFound
from slicebox.models import AnonymizationKey, AnonymizationProfile, ImageTagValues, StoredImage
from slicebox.services import anonymization, ingest
from slicebox.services.images import get_image, user_source
from slicebox.storage.tempfiles import discard, local_copy, new_temp_path

logger = logging.getLogger(__name__)


def _read(source, tags: frozenset[int]) -> dict:
    try:
        return tagstream.read_attributes(source, tags=tags)
    except DicomStreamError as exc:
        raise InvalidDicom(f"malformed DICOM: {exc}") from None


def anonymize_file(services: Services, src, dst: str | None, options, custom: list[tuple[TagPath, str]],
                   image_id: int, force: bool = False) -> tuple[AnonymizationKey | None, bytes | None]:
    """Anonymize ``src`` (a path or the dataset's bytes) and record its key.

    The result goes to the file ``dst``, or with ``dst`` None comes back as
    bytes (for small datasets: no temporary file to create, write and delete).
    Data already marked Patient Identity Removed = YES is copied unchanged
    (no key) unless ``force``.  Returns (the recorded key or None when copied,
    the anonymized bytes or None when written to ``dst``).
    """
    prof = profiles.profile(options)
    tags = plans.wanted_tags(prof, custom)
    real = _read(src, tags)
    if not force and plans.text(real.get(plans.IDENTITY_REMOVED)).upper() == "YES":
        if dst is not None:
            if isinstance(src, (bytes, bytearray, memoryview)):
                with open(dst, "wb") as out:
                    out.write(src)
            else:
                shutil.copyfile(src, dst)
            return None, None
        if isinstance(src, (bytes, bytearray, memoryview)):
            return None, bytes(src)
        with open(src, "rb") as fh:
            return None, fh.read()
    plan = plans.plan_for(prof, custom)
    context = anonymization.plan_context(services, real, prof.modified_dates)
    try:
        result = plans.rewrite(src, dst, plan, context)
    except DicomStreamError as exc:
        raise BadRequest(f"cannot anonymize this dataset: {exc}") from None
    data = result.data if dst is None else None
    # The key only compares attributes the real data has (plus the identity
    # columns); asking for those few, not the profile's ~650 tags, halves the read.
    anon = _read(dst if dst is not None else data, frozenset(real).union(plans.KEY_TAGS))
    return anonymization.record_anonymization(services, image_id, real, anon), data


def anonymized_copy(services: Services, image_id: int, options, tag_values, force: bool = False) -> str:
    """Anonymize stored image ``image_id`` into a temporary file; return its path.

    ``tag_values`` are (tagPath JSON or TagPath, value) pairs; raises NotFound
    when the image is gone.
    """
    return _anonymized(services, image_id, options, tag_values, force, in_memory=False).path


@dataclass(frozen=True)
class AnonymizedCopy:
    """An anonymized copy: ``data`` when small enough for memory, else a temporary file ``path``."""

    data: bytes | None
    path: str | None


#: Datasets up to this size are anonymized in memory (``AnonymizedCopy.data``):
#: a CT image's half megabyte costs less held than written to, read from and
#: deleted from a temporary file.  Larger ones (multi-frame) stream from a file.
IN_MEMORY_LIMIT = 8 << 20


def _anonymized(services: Services, image_id: int, options, tag_values, force: bool,
                in_memory: bool) -> AnonymizedCopy:
    custom = [(p if isinstance(p, TagPath) else tag_path_from_json(p), v) for p, v in tag_values]
    get_image(services, image_id)  # 404 for an image deleted meanwhile
    with local_copy(services.storage, image_id, IN_MEMORY_LIMIT if in_memory else -1) as src:
        if isinstance(src, bytes):
            _key, data = anonymize_file(services, src, None, options, custom, image_id, force=force)
            return AnonymizedCopy(data=data, path=None)
        dst = new_temp_path(services.storage)
        try:
            anonymize_file(services, src, dst, options, custom, image_id, force=force)
        except BaseException:
            discard(dst)
            raise
    return AnonymizedCopy(data=None, path=dst)


# -- entry points of the routes -----------------------------------------------------------
def download_anonymized(services: Services, image_id: int, profile: AnonymizationProfile,
                        tag_values: tuple[TagValue, ...] = ()) -> AnonymizedCopy:
    """POST /images/{id}/anonymized: an anonymized copy, in memory or a temporary file (nothing stored)."""
    return _anonymized(services, image_id, profile.options, tag_values, force=False, in_memory=True)


def anonymize_in_place(services: Services, image_id: int, options, custom, user) -> StoredImage:
    """Replace a stored image by its anonymized form (a new image id; keys kept for reversal).

    Always anonymizes, also data already marked Patient Identity Removed.  The
    replacement is atomic (ingest ``replaces``): a failure leaves the original.
    """
    path = anonymized_copy(services, image_id, options, custom, force=True)
    return ingest.store_file(services, path, user_source(user), replaces=image_id)


def anonymize_image(services: Services, image_id: int, profile: AnonymizationProfile,
                    tag_values: tuple[TagValue, ...], user):
    """PUT /images/{id}/anonymize: anonymize one image in place; returns the new image."""
    return anonymize_in_place(services, image_id, profile.options, tag_values, user).image


def anonymize_images(services: Services, profile: AnonymizationProfile, items: tuple[ImageTagValues, ...],
                     user) -> list:
    """POST /anonymization/anonymize: in-place anonymization of many images (unknown ids are skipped)."""
    images = []
    for item in items:
        try:
            images.append(anonymize_in_place(services, item.image_id, profile.options, item.tag_values,
                                             user).image)
        except NotFound:
            logger.info("bulk anonymization: image %s not found, skipped", item.image_id)
    return images
