"""Wrapping an encoded image (JPEG) as a Secondary Capture instance (PS3.3 A.8.1).

A port in spirit of dcm4che's ``jpg2dcm``, as Slicebox 2.0 did: the JPEG
stream becomes the single fragment of encapsulated Pixel Data after an empty
Basic Offset Table (PS3.5 A.4); nothing is decoded or re-encoded.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    PYDICOM_IMPLEMENTATION_UID,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from slicebox import clock
from slicebox.models import Patient, Study

logger = logging.getLogger(__name__)

#: JPEG start-of-frame marker -> transfer syntax (PS3.5 A.4.1, 8.2.1)
SOF_TRANSFER_SYNTAX = {
    0xC0: JPEGBaseline8Bit,   # baseline, process 1
    0xC1: JPEGExtended12Bit,  # extended sequential, processes 2 & 4
    0xC3: JPEGLossless,       # lossless, process 14
}


@dataclass(frozen=True)
class EncodedFrame:
    """What the pixel module needs to describe a JPEG stream without decoding it."""

    data: bytes
    transfer_syntax: str
    rows: int
    columns: int
    precision: int
    samples_per_pixel: int
    photometric: str
    lossy: bool


def build_secondary_capture(frame: EncodedFrame, patient: Patient, study: Study,
                            series_description: str = "", now: dt.datetime | None = None) -> Dataset:
    """A new SC instance in ``study`` holding ``frame``, in a new series.

    Patient and study attributes are copied from the box's records, so the
    instance files under the same patient and study when it is stored.
    """
    now = now or clock.now()
    today, time_now = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.InstanceCreationDate = today
    ds.InstanceCreationTime = time_now
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyDate = study.study_date
    ds.SeriesDate = today
    ds.ContentDate = today
    ds.ContentTime = time_now
    ds.AccessionNumber = study.accession_number
    ds.Modality = "OT"
    ds.ConversionType = "WSD"  # workstation (PS3.3 C.8.6.1)
    ds.StudyDescription = study.study_description
    ds.SeriesDescription = series_description
    ds.PatientName = patient.patient_name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.patient_birth_date
    ds.PatientSex = patient.patient_sex
    ds.PatientAge = study.patient_age
    ds.StudyInstanceUID = study.study_instance_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyID = study.study_id
    ds.SeriesNumber = None
    ds.InstanceNumber = 1
    ds.PatientOrientation = None
    ds.SamplesPerPixel = frame.samples_per_pixel
    ds.PhotometricInterpretation = frame.photometric
    if frame.samples_per_pixel > 1:
        ds.PlanarConfiguration = 0
    ds.Rows = frame.rows
    ds.Columns = frame.columns
    ds.BitsAllocated = 8 if frame.precision <= 8 else 16
    ds.BitsStored = frame.precision
    ds.HighBit = frame.precision - 1
    ds.PixelRepresentation = 0
    if frame.lossy:
        ds.LossyImageCompression = "01"
    # One fragment after an empty Basic Offset Table; encapsulate pads odd lengths.
    ds.PixelData = encapsulate([frame.data], has_bot=False)
    ds["PixelData"].VR = "OB"

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = frame.transfer_syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    return ds
