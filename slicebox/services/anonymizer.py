"""Anonymizing and re-identifying datasets: PS3.15 profiles applied by the streaming engine.

``anonymize_file`` turns one dataset into its anonymous form in one pass of the
engine (slicebox.dicom.tagstream): every attribute the resolved profile names
gets its action (X remove, Z empty, D dummy, U one-to-one UID, C clean, K keep)
at any depth, private attributes and masked groups go, the patient gets this
box's pseudonym, and Patient Identity Removed / De-identification Method (+
its code sequence) are written.  The key (real and anonymous identities plus
the changed root attributes) is recorded so that ``reverse_step`` can restore
the real identity when the anonymous data comes back through ingest.

Pseudonyms come from services.anonymization (one row per real value, decided
by unique constraints), so any number of workers anonymizing one patient agree
on one anonymous patient, study, series and image UID, and references inside
sequences (Referenced SOP Instance UID, ...) map to the same anonymous UIDs as
the images they point to.
"""
from __future__ import annotations

import contextvars
import datetime
import logging
import os
import re
import shutil
from dataclasses import dataclass

from slicebox.context import Services
from slicebox.dicom import profiles, tagstream
from slicebox.dicom.errors import DicomStreamError
from slicebox.dicom.tagpath import TagPath, format_tag_path, parse_tag_path, tag_path_from_json
from slicebox.errors import BadRequest, InvalidDicom
from slicebox.models import AnonymizationKey, DicomIdentity, Source, StoredImage
from slicebox.services import anonymization, ingest, logs

logger = logging.getLogger(__name__)

PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020
STUDY_UID = 0x0020000D
SERIES_UID = 0x0020000E
SOP_UID = 0x00080018
IDENTITY_REMOVED = 0x00120062
DEID_METHOD = 0x00120063
DEID_CODES = 0x00120064
PIXEL_DATA = 0x7FE00010
_KEY_COLUMNS = {PATIENT_NAME, PATIENT_ID, STUDY_UID, SERIES_UID, SOP_UID}
_DEID = {IDENTITY_REMOVED, DEID_METHOD, DEID_CODES}
_BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN", "SQ", "AT", "US", "SS", "UL", "SL", "FL", "FD",
               "UV", "SV"}

# Attributes restored on a study- or series-level match (an image made from
# the anonymous data elsewhere, e.g. a segmentation): the patient module, and
# the study or series identity.  An image-level match restores every value.
_STUDY_LEVEL = {0x00080020, 0x00080030, 0x00080050, 0x00080090, 0x00081030, 0x00200010, 0x00101010,
                0x00101020, 0x00101030, STUDY_UID}
_SERIES_LEVEL = {0x00080021, 0x00080031, 0x0008103E, 0x00181030, 0x00081070, 0x00081050, SERIES_UID,
                 0x00200052}
_LEVELS = ("patient", "study", "series", "image")
_TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}


@dataclass(frozen=True)
class AnonymizedFile:
    path: str
    key: AnonymizationKey | None  # None when the data was already anonymous and passed unchanged


def _text(attribute) -> str:
    if attribute is None:
        return ""
    value = attribute.value
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "\\".join(_text_scalar(v) for v in value)
    return _text_scalar(value)


def _text_scalar(value) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip(" \0")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip(" \0")


def _decode(old: bytes | None) -> str:
    return (old or b"").decode("ascii", "replace").strip(" \0")


def parse_tag_values(raw) -> list[tuple[TagPath, str]]:
    """Custom values from the spec's tagValue list: [{tagPath: tagPathTag, value: str}]."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadRequest("tagValues must be an array of {tagPath, value}")
    values = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            raise BadRequest("each tag value needs a tagPath object and a string value")
        try:
            path = tag_path_from_json(item.get("tagPath"))
        except DicomStreamError as exc:
            raise BadRequest(f"bad tagPath: {exc}") from None
        _check_custom_tag(path, item["value"])
        values.append((path, item["value"]))
    return values


def _check_custom_tag(path: TagPath, value: str) -> None:
    """400 for a custom value the engine cannot write as a text value of that attribute."""
    tag = path.tag
    if tag >> 16 in (0x0000, 0x0002, 0xFFFE) or tag == PIXEL_DATA:
        # file meta follows the dataset (Media Storage SOP Instance UID = SOP Instance UID)
        raise BadRequest(f"{format_tag_path(path)} cannot take a custom value")
    try:
        # The engine knows the dictionary VR; a trial insert says whether it can write the value.
        [(_trunk, _tag, vr, _value)] = tagstream.EditPlan().insert(path, value).compile()[4]
    except DicomStreamError as exc:
        raise BadRequest(f"bad tag value for {format_tag_path(path)}: {exc}") from None
    if vr == "SQ" or vr not in _TEXT_VRS and not tag >> 16 & 1:
        raise BadRequest(f"{format_tag_path(path)} has VR {vr}: only text attributes take custom values")


# A DA or DT (optionally with a UTC offset &ZZXX, hours 00-14) and a range of them (A-B, -B, A-).
_OFFSET = r"[+-](?:0[0-9]|1[0-4])[0-5][0-9]"
_DATE_OR_DT = rf"[0-9][0-9.]*(?:{_OFFSET})?"
_RANGE = re.compile(rf"(?P<a>{_DATE_OR_DT})?(?:-(?P<b>{_DATE_OR_DT})?)?")
_DT_PARTS = re.compile(rf"(?P<date>[0-9]{{8}})(?P<rest>[0-9]*(?:\.[0-9]*)?)(?P<offset>{_OFFSET})?")
_DUMMY_DATE = "19000101"


def _shift_date(text: str, days: int) -> str:
    """Shift every date in a DA/DT value by ``days``; times and UTC offsets stay.

    A value that is not a full date (or a range of them) cannot be shifted and
    gets a dummy date: nothing of the original survives.
    """
    def one(value: str) -> str:
        parts = _DT_PARTS.fullmatch(value)
        if parts is None:
            return _DUMMY_DATE
        date = parts["date"]
        try:
            day = datetime.date(int(date[:4]), int(date[4:6]), int(date[6:8]))
            date = (day + datetime.timedelta(days=days)).strftime("%Y%m%d")
        except (ValueError, OverflowError):
            date = _DUMMY_DATE
        return date + parts["rest"] + (parts["offset"] or "")

    def shift_value(value: str) -> str:
        value = value.strip()
        found = _RANGE.fullmatch(value)
        if not value or found is None:
            return value and _DUMMY_DATE
        # A '-' before four digits can be a UTC offset or a range; the regex
        # takes an offset when the digits form one (hours 00-14), else a range.
        start, end = found["a"], found["b"]
        if "-" not in value[len(start or ""):]:
            return one(start)
        return (one(start) if start else "") + "-" + (one(end) if end else "")

    return "\\".join(shift_value(v) for v in text.split("\\"))


@dataclass(frozen=True)
class _PlanContext:
    """What one anonymization adds to its profile's plan: this box, the patient's pseudonym and date shift."""

    services: Services
    anon_name: str
    anon_id: str
    shift: int


# The plan of a profile holds callables that read the current anonymization's
# context, so one compiled plan per profile serves every request: building it
# (about 650 rules) cost more than the engine's whole rewrite of a CT image.
# A ContextVar is per thread, so concurrent requests never see each other's patient.
_context: contextvars.ContextVar[_PlanContext] = contextvars.ContextVar("anonymization_plan_context")
_plans: dict[tuple[str, ...], tagstream.EditPlan] = {}
_tag_sets: dict[tuple[str, ...], frozenset[int]] = {}


def _uid_map(old):
    text = _decode(old)
    if not text:
        return ""
    services = _context.get().services
    return "\\".join(anonymization.anon_uid(services, u) for u in text.split("\\"))


def _date_shift(old):
    text = _decode(old)
    return _shift_date(text, _context.get().shift) if text else ""


def _anon_name(_old):
    return _context.get().anon_name


def _anon_id(_old):
    return _context.get().anon_id


def _new_plan(prof: profiles.Profile, custom: list[tuple[TagPath, str]]) -> tagstream.EditPlan:
    """The engine's EditPlan for a profile (and custom values); per-dataset values come from _context."""
    plan = tagstream.EditPlan()
    for tag, action in prof.exact.items():
        if action == "K" or tag in _DEID:
            continue
        vr = prof.vrs.get(tag, "")
        if action == "X":
            plan.remove(tag)
        elif action == "Z":
            plan.replace(tag, b"")
        elif action == "D":
            plan.replace(tag, profiles.dummy_value(vr))
        elif action == "U":
            plan.replace(tag, _uid_map)
        elif action == "C":
            kind = profiles.clean_kind(vr, prof)
            if kind == "shift":
                plan.replace(tag, _date_shift)
            elif kind == "dummy":
                plan.replace(tag, profiles.dummy_value(vr))
            # 'keep' and 'recurse': the element stays, nested items get their own rules
    for mask, action in prof.masks:
        if action not in ("K", "U"):
            plan.remove_mask((mask.mask, mask.value))
    if prof.private != "K":
        # The engine removes private attributes all or nothing: it cannot tell a
        # safe element (named by creator, group and element) from any other, so
        # with a safe list every private attribute still goes.  Keeping them all
        # would leak whatever the unsafe ones carry.
        plan.remove_private()
    # Root identity: this box's pseudonyms (inserts win over the profile's Z).
    plan.insert(PATIENT_NAME, _anon_name)
    plan.insert(PATIENT_ID, _anon_id)
    plan.insert(IDENTITY_REMOVED, "YES")
    plan.insert(DEID_METHOD, profiles.deidentification_method(prof)[:64])
    plan.insert(DEID_CODES, [
        [(0x00080100, "SH", code), (0x00080102, "SH", scheme), (0x00080104, "LO", meaning[:64])]
        for code, scheme, meaning in profiles.deidentification_codes(prof)
    ], vr="SQ")
    for path, value in custom:  # a user's chosen values win over generated ones
        plan.insert(path, value)
    plan.compile()
    return plan


def _plan_for(prof: profiles.Profile, custom: list[tuple[TagPath, str]]) -> tagstream.EditPlan:
    """The profile's cached plan, or a fresh one when the request brings custom values."""
    if custom:
        return _new_plan(prof, custom)
    key = tuple(o.name for o in prof.options)
    plan = _plans.get(key)
    if plan is None:  # two threads may both build it; either result is the same
        plan = _plans[key] = _new_plan(prof, custom)
    return plan


def _plan_context(services: Services, prof: profiles.Profile, real: dict) -> _PlanContext:
    name, pid = _text(real.get(PATIENT_NAME)), _text(real.get(PATIENT_ID))
    anon_name, anon_id = anonymization.pseudonym_for_patient(services, name, pid)
    shift = anonymization.date_shift_for_patient(services, name, pid) if prof.modified_dates else 0
    return _PlanContext(services, anon_name, anon_id, shift)


def _rewrite(src, dst: str | None, plan: tagstream.EditPlan, context: _PlanContext) -> tagstream.RewriteResult:
    token = _context.set(context)
    try:
        return tagstream.rewrite(src, dst, plan)
    finally:
        _context.reset(token)


def _wanted_tags(prof: profiles.Profile, custom: list[tuple[TagPath, str]]) -> frozenset[int]:
    """Root tags read before and after the rewrite to record the key (cached per profile)."""
    key = None if custom else tuple(o.name for o in prof.options)
    tags = _tag_sets.get(key) if key is not None else None
    if tags is None:
        tags = _new_wanted_tags(prof, custom)
        if key is not None:
            _tag_sets[key] = tags
    return tags


def _new_wanted_tags(prof: profiles.Profile, custom: list[tuple[TagPath, str]]) -> frozenset[int]:
    tags = {t for t, a in prof.exact.items() if a != "K"} | _KEY_COLUMNS | _DEID
    tags |= {p.tag for p, _ in custom if not p.trunk}
    # Nothing from Pixel Data on is a key value (all binary), and asking for a
    # tag past it would make the reader scan the whole file.
    return frozenset(t for t in tags if t < PIXEL_DATA)


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
    tags = _wanted_tags(prof, custom)
    real = _read(src, tags)
    if not force and _text(real.get(IDENTITY_REMOVED)).upper() == "YES":
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
    plan = _plan_for(prof, custom)
    try:
        result = _rewrite(src, dst, plan, _plan_context(services, prof, real))
    except DicomStreamError as exc:
        raise BadRequest(f"cannot anonymize this dataset: {exc}") from None
    data = result.data if dst is None else None
    # The key only compares attributes the real data has (plus the identity
    # columns); asking for those few, not the profile's ~650 tags, halves the read.
    anon = _read(dst if dst is not None else data, frozenset(real).union(_KEY_COLUMNS))
    return _record_key(services, image_id, real, anon), data


def _record_key(services: Services, image_id: int, real: dict, anon: dict) -> AnonymizationKey:
    values = []
    for tag in sorted(set(real) | set(anon)):
        if tag in _KEY_COLUMNS or tag in _DEID or tag >> 16 == 0x0002:
            continue
        before, after = real.get(tag), anon.get(tag)
        if before is None or before.vr in _BINARY_VRS:
            continue  # only text values present in the real data can be restored
        real_text, anon_text = _text(before), _text(after)
        if real_text != anon_text or after is None:
            values.append((format_tag_path(TagPath(tag)), real_text, anon_text))
    key = AnonymizationKey(
        id=0, created=0, image_id=image_id,
        patient_name=_text(real.get(PATIENT_NAME)), anon_patient_name=_text(anon.get(PATIENT_NAME)),
        patient_id=_text(real.get(PATIENT_ID)), anon_patient_id=_text(anon.get(PATIENT_ID)),
        study_instance_uid=_text(real.get(STUDY_UID)), anon_study_instance_uid=_text(anon.get(STUDY_UID)),
        series_instance_uid=_text(real.get(SERIES_UID)), anon_series_instance_uid=_text(anon.get(SERIES_UID)),
        sop_instance_uid=_text(real.get(SOP_UID)), anon_sop_instance_uid=_text(anon.get(SOP_UID)),
    )
    return anonymization.record_key(services, key, values)


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
    from slicebox.services.images import open_dataset

    custom = [(p if isinstance(p, TagPath) else tag_path_from_json(p), v) for p, v in tag_values]
    src = services.storage.path(image_id)
    spooled = None
    if src is None or not os.path.exists(src):
        fh, size = open_dataset(services, image_id)
        with fh:
            if in_memory and size <= IN_MEMORY_LIMIT:
                src = fh.read()
            else:
                src = spooled = ingest.spool(services, fh)
    else:
        from slicebox.services.images import get_image

        get_image(services, image_id)  # 404 for an image deleted meanwhile
        if in_memory:
            try:
                with open(src, "rb") as fh:
                    if os.fstat(fh.fileno()).st_size <= IN_MEMORY_LIMIT:
                        src = fh.read()
            except FileNotFoundError:  # deleted meanwhile
                from slicebox.errors import NotFound

                raise NotFound(f"dataset for image {image_id} not found") from None
    if isinstance(src, bytes):
        _key, data = anonymize_file(services, src, None, options, custom, image_id, force=force)
        return AnonymizedCopy(data=data, path=None)
    dst = ingest.new_temp_path(services)
    try:
        anonymize_file(services, src, dst, options, custom, image_id, force=force)
    except BaseException:
        ingest.discard(dst)
        raise
    finally:
        ingest.discard(spooled)
    return AnonymizedCopy(data=None, path=dst)


# -- reverse anonymization (an ingest step) -------------------------------------------
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
        if tag_path.trunk or tag in _KEY_COLUMNS:
            continue
        if level == 3 or tag >> 16 == 0x0010 or (level >= 1 and tag in _STUDY_LEVEL) \
                or (level >= 2 and tag in _SERIES_LEVEL):
            restore.append((tag, kv.value))
    for tag, value in restore:
        _restore(plan, tag, value)
    if level == 3:
        plan.remove(IDENTITY_REMOVED, DEID_METHOD, DEID_CODES)
    out = ingest.new_temp_path(services)
    try:
        tagstream.rewrite(path, out, plan)
        from slicebox.dicom.parsing import read_identity

        restored = read_identity(out)
    except (DicomStreamError, InvalidDicom, ValueError) as exc:
        ingest.discard(out)
        logs.warn(services, "Anonymization",
                  f"could not restore identity of image {ident.sop_instance_uid}: {exc}; stored as received")
        return path, ident
    ingest.discard(path)
    return out, restored


def _restore(plan: tagstream.EditPlan, tag: int, value: str) -> None:
    """Insert a real value back; attributes newer than pydicom's dictionary take the table's VR."""
    try:
        plan.insert(tag, value)
        return
    except DicomStreamError:
        pass
    vr = profiles.profile(()).vrs.get(tag, "")
    if vr in _TEXT_VRS:
        plan.insert(tag, value, vr=vr)
    else:  # a VR we cannot know: the anonymous value stays rather than failing the store
        logger.warning("cannot restore %s: unknown VR", format_tag_path(TagPath(tag)))



# -- request bodies ---------------------------------------------------------------------
def profile_options(raw) -> tuple[str, ...]:
    """Option names of a spec anonymizationProfile ({options: [...]}); the basic profile always."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict) or not isinstance(raw.get("options", []), list):
        raise BadRequest("profile must be an object with an 'options' array")
    return tuple(o.name for o in profiles.parse_options(raw.get("options", [])))


def download_anonymized(services: Services, image_id: int, body) -> AnonymizedCopy:
    """POST /images/{id}/anonymized: an anonymized copy, in memory or a temporary file (nothing stored)."""
    if not isinstance(body, dict):
        raise BadRequest("body must be an anonymizationData object {profile, tagValues}")
    options = profile_options(body.get("profile"))
    custom = parse_tag_values(body.get("tagValues"))
    return _anonymized(services, image_id, options, custom, force=False, in_memory=True)


def anonymize_in_place(services: Services, image_id: int, options, custom, user) -> StoredImage:
    """Replace a stored image by its anonymized form (a new image id; keys kept for reversal).

    Always anonymizes, also data already marked Patient Identity Removed.  The
    replacement is atomic (ingest ``replaces``): a failure leaves the original.
    """
    from slicebox.services.images import user_source

    path = anonymized_copy(services, image_id, options, custom, force=True)
    return ingest.store_file(services, path, user_source(user), replaces=image_id)


def anonymize_image(services: Services, image_id: int, body, user):
    """PUT /images/{id}/anonymize with an anonymizationData body."""
    if not isinstance(body, dict):
        raise BadRequest("body must be an anonymizationData object {profile, tagValues}")
    options = profile_options(body.get("profile"))
    custom = parse_tag_values(body.get("tagValues"))
    return anonymize_in_place(services, image_id, options, custom, user).image


def anonymize_images(services: Services, body, user) -> list:
    """POST /anonymization/anonymize: in-place anonymization of many images.

    The body is the spec's array of imageTagValues (basic profile), or an
    object {profile, imageTagValuesSet} as Slicebox 2.0 clients send.  Every
    entry is checked before any image is touched; unknown ids are skipped.
    """
    if isinstance(body, list):
        options, entries = profile_options(None), body
    elif isinstance(body, dict):
        options, entries = profile_options(body.get("profile")), body.get("imageTagValuesSet")
    else:
        raise BadRequest("body must be an array of {imageId, tagValues}")
    if not isinstance(entries, list):
        raise BadRequest("imageTagValuesSet must be an array of {imageId, tagValues}")
    parsed = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("imageId"), int) \
                or isinstance(entry.get("imageId"), bool):
            raise BadRequest("each entry needs an integer imageId")
        parsed.append((entry["imageId"], parse_tag_values(entry.get("tagValues"))))
    from slicebox.errors import NotFound

    images = []
    for image_id, custom in parsed:
        try:
            images.append(anonymize_in_place(services, image_id, options, custom, user).image)
        except NotFound:
            logger.info("bulk anonymization: image %s not found, skipped", image_id)
    return images
