"""Frozen dataclasses that cross layers, with their JSON shapes from the spec.

DICOM attribute values travel as ``{"value": "..."}`` objects in JSON (the
spec's ``dicomPropertyValue``); ``to_json`` produces exactly the spec shapes.
Shapes that need DICOM knowledge (anonymization profiles, tag paths: boxes,
outgoing transactions, key values) are built in ``slicebox/api/shapes.py``, so
this module imports nothing from slicebox.
"""
from __future__ import annotations

from dataclasses import dataclass


def _v(value: str) -> dict:
    return {"value": value}


# Source types (spec: user, box, directory, import, scp)
SOURCE_TYPES = ("user", "box", "directory", "import", "scp", "unknown")
DESTINATION_TYPES = ("box", "scu")
ROLES = ("SUPERUSER", "ADMINISTRATOR", "USER")
LOG_TYPES = ("DEFAULT", "INFO", "WARN", "ERROR")


@dataclass(frozen=True)
class Source:
    type: str
    name: str
    id: int

    def to_json(self) -> dict:
        return {"sourceType": self.type, "sourceName": self.name, "sourceId": self.id}


@dataclass(frozen=True)
class Destination:
    type: str
    name: str
    id: int

    def to_json(self) -> dict:
        return {"destinationType": self.type, "destinationName": self.name, "destinationId": self.id}


@dataclass(frozen=True)
class Patient:
    id: int
    patient_name: str
    patient_id: str
    patient_birth_date: str = ""
    patient_sex: str = ""

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "patientName": _v(self.patient_name),
            "patientID": _v(self.patient_id),
            "patientBirthDate": _v(self.patient_birth_date),
            "patientSex": _v(self.patient_sex),
        }


@dataclass(frozen=True)
class Study:
    id: int
    patient_id: int
    study_instance_uid: str
    study_description: str = ""
    study_date: str = ""
    study_id: str = ""
    accession_number: str = ""
    patient_age: str = ""

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "patientId": self.patient_id,
            "studyInstanceUID": _v(self.study_instance_uid),
            "studyDescription": _v(self.study_description),
            "studyDate": _v(self.study_date),
            "studyID": _v(self.study_id),
            "accessionNumber": _v(self.accession_number),
            "patientAge": _v(self.patient_age),
        }


@dataclass(frozen=True)
class Series:
    id: int
    study_id: int
    series_instance_uid: str
    series_description: str = ""
    series_date: str = ""
    modality: str = ""
    protocol_name: str = ""
    body_part_examined: str = ""
    manufacturer: str = ""
    station_name: str = ""
    frame_of_reference_uid: str = ""

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "studyId": self.study_id,
            "seriesInstanceUID": _v(self.series_instance_uid),
            "seriesDescription": _v(self.series_description),
            "seriesDate": _v(self.series_date),
            "modality": _v(self.modality),
            "protocolName": _v(self.protocol_name),
            "bodyPartExamined": _v(self.body_part_examined),
            "manufacturer": _v(self.manufacturer),
            "stationName": _v(self.station_name),
            "frameOfReferenceUID": _v(self.frame_of_reference_uid),
        }


@dataclass(frozen=True)
class Image:
    id: int
    series_id: int
    sop_instance_uid: str
    image_type: str = ""
    instance_number: str = ""

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "seriesId": self.series_id,
            "sopInstanceUID": _v(self.sop_instance_uid),
            "imageType": _v(self.image_type),
            "instanceNumber": _v(self.instance_number),
        }


@dataclass(frozen=True)
class FlatSeries:
    patient: Patient
    study: Study
    series: Series

    @property
    def id(self) -> int:
        return self.series.id

    def to_json(self) -> dict:
        return {
            "id": self.series.id,
            "patient": self.patient.to_json(),
            "study": self.study.to_json(),
            "series": self.series.to_json(),
        }


@dataclass(frozen=True)
class SeriesTag:
    id: int
    name: str

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True)
class SeriesType:
    id: int
    name: str

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True)
class User:
    id: int
    user: str
    role: str

    def to_json(self) -> dict:
        # The password hash never leaves the box (unlike Slicebox 2.0).
        return {"id": self.id, "user": self.user, "role": self.role}


@dataclass(frozen=True)
class LogEntry:
    id: int
    created: int
    entry_type: str
    subject: str
    message: str

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "created": self.created,
            "entryType": self.entry_type,
            "subject": self.subject,
            "message": self.message,
        }


@dataclass(frozen=True)
class DicomIdentity:
    """Attributes extracted from a dataset for the hierarchy tables (ingest)."""

    patient_name: str
    patient_id: str
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    patient_birth_date: str = ""
    patient_sex: str = ""
    study_description: str = ""
    study_date: str = ""
    study_id: str = ""
    accession_number: str = ""
    patient_age: str = ""
    series_description: str = ""
    series_date: str = ""
    modality: str = ""
    protocol_name: str = ""
    body_part_examined: str = ""
    manufacturer: str = ""
    station_name: str = ""
    frame_of_reference_uid: str = ""
    image_type: str = ""
    instance_number: str = ""
    sop_class_uid: str = ""
    transfer_syntax_uid: str = ""
    patient_identity_removed: str = ""


#: The largest page any list or query returns (``count`` above it is a 400).
MAX_PAGE_COUNT = 10_000


@dataclass(frozen=True)
class Page:
    start_index: int = 0
    count: int = 20


@dataclass(frozen=True)
class Condition:
    """``property operator value`` with an API property name (e.g. patientName)."""

    property: str
    operator: str
    value: str | int


@dataclass(frozen=True)
class SeriesFilters:
    """Filters evaluated on series: OR within a kind, AND across kinds."""

    sources: tuple[tuple[str, int], ...] = ()
    series_type_ids: tuple[int, ...] = ()
    series_tag_ids: tuple[int, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.sources or self.series_type_ids or self.series_tag_ids)


@dataclass(frozen=True)
class ListSpec:
    """What to list: conditions, free-text filter, series filters, order and page."""

    start_index: int = 0
    count: int | None = 20  # None: no limit
    order_by: str | None = None
    ascending: bool = True
    text: str | None = None
    conditions: tuple[Condition, ...] = ()
    filters: SeriesFilters = SeriesFilters()



# -- typed request values (parsed from bodies by slicebox/api/bodies.py) ---------------
@dataclass(frozen=True)
class AnonymizationProfile:
    """The confidentiality option names of an anonymization profile (the basic profile always first)."""

    options: tuple[str, ...] = ("BASIC_PROFILE",)


@dataclass(frozen=True)
class ImageTagValues:
    """An image and the custom values (``slicebox.dicom.tagpath.TagValue``) to write when anonymizing it."""

    image_id: int
    tag_values: tuple = ()


@dataclass(frozen=True)
class StoredImage:
    """Result of one ingest: the image row and whether it was new."""

    image: Image
    created: bool
    patient: Patient | None = None
    study: Study | None = None
    series: Series | None = None
    #: what was read from the file
    identity: DicomIdentity | None = None
    #: the series' source (for a replaced image, the source it had)
    source: Source | None = None
    #: this image created its series (exactly one of concurrent first images says so)
    series_created: bool = False


# -- boxes and transactions -------------------------------------------------------
TRANSACTION_STATUSES = ("WAITING", "PROCESSING", "FINISHED", "FAILED")
SEND_METHODS = ("PUSH", "POLL")


@dataclass(frozen=True)
class Box:
    id: int
    name: str
    token: str
    base_url: str
    send_method: str
    profile: tuple[str, ...]
    online: bool = False


@dataclass(frozen=True)
class OutgoingTransaction:
    id: int
    box_id: int
    box_name: str
    profile: tuple[str, ...]
    sent_image_count: int
    total_image_count: int
    created: int
    updated: int
    status: str


@dataclass(frozen=True)
class OutgoingImage:
    id: int
    outgoing_transaction_id: int
    image_id: int
    sequence_number: int
    sent: bool

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "outgoingTransactionId": self.outgoing_transaction_id,
            "imageId": self.image_id,
            "sequenceNumber": self.sequence_number,
            "sent": self.sent,
        }


@dataclass(frozen=True)
class IncomingTransaction:
    id: int
    box_id: int
    box_name: str
    outgoing_transaction_id: int
    received_image_count: int
    added_image_count: int
    total_image_count: int
    created: int
    updated: int
    status: str

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "boxId": self.box_id,
            "boxName": self.box_name,
            "outgoingTransactionId": self.outgoing_transaction_id,
            "receivedImageCount": self.received_image_count,
            "addedImageCount": self.added_image_count,
            "totalImageCount": self.total_image_count,
            "created": self.created,
            "updated": self.updated,
            "status": self.status,
        }


# -- anonymization keys ------------------------------------------------------------
@dataclass(frozen=True)
class AnonymizationKey:
    """Real and anonymous identities of one anonymized image (spec: anonymizationKey)."""

    id: int
    created: int
    image_id: int
    patient_name: str = ""
    anon_patient_name: str = ""
    patient_id: str = ""
    anon_patient_id: str = ""
    study_instance_uid: str = ""
    anon_study_instance_uid: str = ""
    series_instance_uid: str = ""
    anon_series_instance_uid: str = ""
    sop_instance_uid: str = ""
    anon_sop_instance_uid: str = ""

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "created": self.created,
            "imageId": self.image_id,
            "patientName": self.patient_name,
            "anonPatientName": self.anon_patient_name,
            "patientID": self.patient_id,
            "anonPatientID": self.anon_patient_id,
            "studyInstanceUID": self.study_instance_uid,
            "anonStudyInstanceUID": self.anon_study_instance_uid,
            "seriesInstanceUID": self.series_instance_uid,
            "anonSeriesInstanceUID": self.anon_series_instance_uid,
            "sopInstanceUID": self.sop_instance_uid,
            "anonSOPInstanceUID": self.anon_sop_instance_uid,
        }


@dataclass(frozen=True)
class AnonymizationKeyValue:
    """One recorded attribute of a key: tag path text like ``(0008,1110)[1].(0008,1155)``."""

    id: int
    anonymization_key_id: int
    tag_path: str
    value: str
    anonymized_value: str


@dataclass(frozen=True)
class Scp:
    """A DICOM listener of this box (SCP): PACS systems send images to it."""

    id: int
    name: str
    ae_title: str
    port: int

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "aeTitle": self.ae_title, "port": self.port}


@dataclass(frozen=True)
class Scu:
    """A remote DICOM listener (e.g. a PACS) this box sends images to."""

    id: int
    name: str
    ae_title: str
    host: str
    port: int

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "aeTitle": self.ae_title, "host": self.host,
                "port": self.port}


@dataclass(frozen=True)
class ScuSendResult:
    """What ``services.scus.send_images`` did: every image was accepted (warnings count as success)."""

    scu: Scu
    #: image ids sent, in the order sent
    sent: tuple[int, ...]
    #: image ids the peer stored with a warning status (also in ``sent``)
    warnings: tuple[int, ...] = ()
    #: image ids sent decompressed because the peer accepted no context for their own syntax
    decompressed: tuple[int, ...] = ()


# -- automation: tag filters, forwarding rules, series type rules -----------------------
TAG_FILTER_TYPES = ("WHITELIST", "BLACKLIST")


@dataclass(frozen=True)
class TagFilterPath:
    """One tag path of a filter; ``tag_path`` is the text form ``(gggg,eeee)[*].(gggg,eeee)``."""
    id: int
    tag_filter_id: int
    tag_path: str


@dataclass(frozen=True)
class TagFilter:
    id: int
    name: str
    filter_type: str
    tag_paths: tuple[TagFilterPath, ...] = ()


@dataclass(frozen=True)
class SourceTagFilter:
    id: int
    source: Source
    tag_filter_id: int
    tag_filter_name: str

    def to_json(self) -> dict:
        return {"id": self.id, "sourceType": self.source.type, "sourceName": self.source.name,
                "sourceId": self.source.id, "tagFilterId": self.tag_filter_id,
                "tagFilterName": self.tag_filter_name}


@dataclass(frozen=True)
class ForwardingRule:
    id: int
    source: Source
    destination: Destination
    keep_images: bool

    def to_json(self) -> dict:
        return {"id": self.id, "source": self.source.to_json(),
                "destination": self.destination.to_json(), "keepImages": self.keep_images}


@dataclass(frozen=True)
class SeriesTypeRule:
    id: int
    series_type_id: int

    def to_json(self) -> dict:
        return {"id": self.id, "seriesTypeId": self.series_type_id}


@dataclass(frozen=True)
class SeriesTypeRuleAttribute:
    id: int
    series_type_rule_id: int
    group: int
    element: int
    path: str
    value: str

    @property
    def tag(self) -> int:
        return self.group << 16 | self.element

    def to_json(self) -> dict:
        out = {"id": self.id, "seriesTypeRuleId": self.series_type_rule_id, "group": self.group,
               "element": self.element, "value": self.value}
        if self.path:
            out["path"] = self.path
        return out


@dataclass(frozen=True)
class DirectoryWatch:
    """A watched folder (spec ``watchedDirectory``); ``path`` is absolute and resolved."""

    id: int
    name: str
    path: str

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "path": self.path}


@dataclass(frozen=True)
class ImportSession:
    """An import session and its counters (spec ``importSession``)."""

    id: int
    name: str
    user_id: int
    user: str
    files_imported: int
    files_added: int
    files_rejected: int
    created: int
    last_updated: int

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "userId": self.user_id,
            "user": self.user,
            "filesImported": self.files_imported,
            "filesAdded": self.files_added,
            "filesRejected": self.files_rejected,
            "created": self.created,
            "lastUpdated": self.last_updated,
        }
