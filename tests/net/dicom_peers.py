"""Real DICOM peers for the tests: dcmtk processes on free loopback ports, generated files."""
from __future__ import annotations

import os
import socket
import subprocess
import time

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

DCMTK = "/usr/bin"


def tool(name: str) -> str:
    return os.path.join(DCMTK, name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen | None = None, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"peer exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def wait_until(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


#: dcmtk leaves Nagle on unless told: every C-STORE would wait ~40 ms for a delayed ACK
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


def run(args: list[str], timeout: float = 120.0) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=DCMTK_ENV)


def write_ct(path: str, rows: int = 16, columns: int = 16, frames: int = 1, patient: str = "Net^Test",
             patient_id: str = "NET1", study_uid: str | None = None, series_uid: str | None = None,
             number: int = 1, sop_class: str = "1.2.840.10008.5.1.4.1.1.2", **tags) -> str:
    """A CT (or multi-frame) Part 10 file, Explicit VR Little Endian."""
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.PatientName = patient
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19800101"
    ds.PatientSex = "F"
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.StudyDate = "20240301"
    ds.StudyID = "1"
    ds.AccessionNumber = "A1"
    ds.StudyDescription = "Net study"
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.SeriesNumber = 1
    ds.Modality = "CT"
    ds.SeriesDescription = "Net series"
    ds.InstanceNumber = number
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    pixels = (np.arange(rows * columns * frames, dtype=np.uint32) * 7 + number) % 4096
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    for key, value in tags.items():
        setattr(ds, key, value)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True)
    return path


def dataset_bytes(path: str) -> bytes:
    """The bytes after the file meta group (what travels in a C-STORE)."""

    with open(path, "rb") as fh:
        fh.seek(128 + 4)
        # group 0002 is explicit VR little endian: walk it by its group length element
        head = fh.read(12)
        assert head[:4] == b"\x02\x00\x00\x00", "file meta must start with its group length"
        length = int.from_bytes(head[8:12], "little")
        fh.seek(128 + 4 + 12 + length)
        return fh.read()
