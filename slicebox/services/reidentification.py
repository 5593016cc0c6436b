"""Re-identification: the ingest step that gives anonymous data back its real identity.

Data this box anonymized (services.image_anonymization recorded a key for it)
that comes back through ingest, from any source, gets the real values back in
its root dataset and so lands on the original patient, study, series (and
image).  Without a matching key it is stored as it is.
"""
from __future__ import annotations

import logging

from slicebox.context import Services
from slicebox.dicom import profiles, tagstream
from slicebox.dicom.anonymization_plan import (
    DEID_CODES,
    DEID_METHOD,
    IDENTITY_REMOVED,
    KEY_TAGS,
    PATIENT_ID,
    PATIENT_NAME,
    SERIES_UID,
    SOP_UID,
    STUDY_UID,
    TEXT_VRS,
)
from slicebox.dicom.errors import DicomStreamError
from slicebox.dicom.parsing import read_identity
from slicebox.dicom.tagpath import TagPath, format_tag_path, parse_tag_path
from slicebox.errors import InvalidDicom
from slicebox.models import DicomIdentity, Source
from slicebox.services import anonymization, logs
from slicebox.storage.tempfiles import discard, new_temp_path

logger = logging.getLogger(__name__)

# Attributes restored on a study- or series-level match (an image made from
# the anonymous data elsewhere, e.g. a segmentation): the patient module, and
# the study or series identity.  An image-level match restores every value.
_STUDY_LEVEL = {0x00080020, 0x00080030, 0x00080050, 0x00080090, 0x00081030, 0x00200010, 0x00101010,
                0x00101020, 0x00101030, STUDY_UID}
_SERIES_LEVEL = {0x00080021, 0x00080031, 0x0008103E, 0x00181030, 0x00081070, 0x00081050, SERIES_UID,
                 0x00200052}
_LEVELS = ("patient", "study", "series", "image")


def reverse_step(services: Services, path: str, ident: DicomIdentity, source: Source):
    """Restore the real identity of anonymous data this box anonymized (any source).

    Data marked Patient Identity Removed = YES whose anonymous identities match
    a key of this box gets the real values back in its root dataset and so
    lands on the original patient, study, series (and image).  Without a match
    it is stored as it is.
    """
    if ident.patient_identity_removed.strip().upper() != "YES":
        return path, ident
    match = anonymization.find_key_for_anonymous(
        services, ident.patient_name, ident.patient_id, ident.study_instance_uid,
        ident.series_instance_uid, ident.sop_instance_uid)
    if match is None:
        return path, ident
    level = _LEVELS.index(match.level)
    key = match.key
    plan = tagstream.EditPlan()
    restore = [(PATIENT_NAME, key.patient_name), (PATIENT_ID, key.patient_id)]
    if level >= 1:
        restore.append((STUDY_UID, key.study_instance_uid))
    if level >= 2:
        restore.append((SERIES_UID, key.series_instance_uid))
    if level >= 3:
        restore.append((SOP_UID, key.sop_instance_uid))
    for kv in match.values:
        try:
            tag_path = parse_tag_path(kv.tag_path)
        except DicomStreamError:
            continue
        tag = tag_path.tag
        if tag_path.trunk or tag in KEY_TAGS:
            continue
        if level == 3 or tag >> 16 == 0x0010 or (level >= 1 and tag in _STUDY_LEVEL) \
                or (level >= 2 and tag in _SERIES_LEVEL):
            restore.append((tag, kv.value))
    for tag, value in restore:
        _restore(plan, tag, value)
    if level == 3:
        plan.remove(IDENTITY_REMOVED, DEID_METHOD, DEID_CODES)
    out = new_temp_path(services.storage)
    try:
        tagstream.rewrite(path, out, plan)
        restored = read_identity(out)
    except (DicomStreamError, InvalidDicom, ValueError) as exc:
        discard(out)
        logs.warn(services, "Anonymization",
                  f"could not restore identity of image {ident.sop_instance_uid}: {exc}; stored as received")
        return path, ident
    discard(path)
    return out, restored


def _restore(plan: tagstream.EditPlan, tag: int, value: str) -> None:
    """Insert a real value back; attributes newer than pydicom's dictionary take the table's VR."""
    try:
        plan.insert(tag, value)
        return
    except DicomStreamError:
        pass
    vr = profiles.profile(()).vrs.get(tag, "")
    if vr in TEXT_VRS:
        plan.insert(tag, value, vr=vr)
    else:  # a VR we cannot know: the anonymous value stays rather than failing the store
        logger.warning("cannot restore %s: unknown VR", format_tag_path(TagPath(tag)))
