"""Small named factories for datasets and DICOM bytes."""
from __future__ import annotations

import io
import itertools

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

_counter = itertools.count(1)


def make_dataset(rows: int = 8, columns: int = 8, pixels: np.ndarray | None = None, **tags) -> Dataset:
    """A small valid CT image; keyword arguments override or add attributes."""
    n = next(_counter)
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.PatientName = "Doe^John"
    ds.PatientID = "PID001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "M"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.StudyDescription = "Test study"
    ds.StudyDate = "20240101"
    ds.StudyID = "S1"
    ds.AccessionNumber = "ACC1"
    ds.PatientAge = "054Y"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.2"
    ds.SeriesDescription = "Test series"
    ds.SeriesDate = "20240101"
    ds.Modality = "CT"
    ds.ProtocolName = "Proto"
    ds.BodyPartExamined = "HEAD"
    ds.Manufacturer = "Acme"
    ds.StationName = "ST1"
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.3"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.InstanceNumber = n
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleSlope = 1
    ds.RescaleIntercept = 0
    if pixels is None:
        pixels = (np.arange(rows * columns, dtype=np.uint16).reshape(rows, columns) * 7) % 4096
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    for key, value in tags.items():
        if value is None:
            if key in ds:
                delattr(ds, key)
        else:
            setattr(ds, key, value)
    return ds


def make_dicom_bytes(ds: Dataset | None = None, transfer_syntax: str = ExplicitVRLittleEndian, **tags) -> bytes:
    """Part 10 bytes (preamble, file meta) of ``ds`` or of make_dataset(**tags)."""
    if ds is None:
        ds = make_dataset(**tags)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta = meta
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
