"""Large DICOM files made in a moment: a small header, then a pixel data element of any size.

The pixel data is a hole in a sparse file (``truncate``), so a 200 MB file
costs no time or disk to write; readers see zeros.
"""
from __future__ import annotations

import hashlib
import struct

from factories import make_dataset, make_dicom_bytes

CHUNK = 1 << 20


def write_big_dicom(path: str, size: int, **tags) -> str:
    """A valid Part 10 file of exactly ``size`` bytes at ``path`` (OB pixel data fills it)."""
    tags.setdefault("PatientName", "Big^File")
    ds = make_dataset(**tags)
    del ds.PixelData
    header = make_dicom_bytes(ds)
    element = struct.pack("<HH", 0x7FE0, 0x0010) + b"OB\0\0"
    length = size - len(header) - len(element) - 4
    assert length > 0 and length % 2 == 0, "size must leave an even pixel data length"
    with open(path, "wb") as fh:
        fh.write(header + element + struct.pack("<I", length))
        fh.truncate(size)
    return path


def sha256_of_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of_stream(chunks) -> tuple[str, int]:
    digest = hashlib.sha256()
    total = 0
    for chunk in chunks:
        digest.update(chunk)
        total += len(chunk)
    return digest.hexdigest(), total
