"""Row <-> model mappings of the DICOM hierarchy, shared by db/metadata.py and db/querybuild.py."""
from __future__ import annotations

from slicebox.models import Image, Patient, Series, Study

PATIENT_COLUMNS = ("id", "patient_name", "patient_id", "patient_birth_date", "patient_sex")
STUDY_COLUMNS = ("id", "patient_id", "study_instance_uid", "study_description", "study_date",
                 "study_id", "accession_number", "patient_age")
SERIES_COLUMNS = ("id", "study_id", "series_instance_uid", "series_description", "series_date",
                  "modality", "protocol_name", "body_part_examined", "manufacturer",
                  "station_name", "frame_of_reference_uid")
IMAGE_COLUMNS = ("id", "series_id", "sop_instance_uid", "image_type", "instance_number")


def row_to_patient(row: dict, prefix: str = "") -> Patient:
    return Patient(**{c: row[prefix + c] for c in PATIENT_COLUMNS})


def row_to_study(row: dict, prefix: str = "") -> Study:
    return Study(**{c: row[prefix + c] for c in STUDY_COLUMNS})


def row_to_series(row: dict, prefix: str = "") -> Series:
    return Series(**{c: row[prefix + c] for c in SERIES_COLUMNS})


def row_to_image(row: dict, prefix: str = "") -> Image:
    return Image(**{c: row[prefix + c] for c in IMAGE_COLUMNS})
