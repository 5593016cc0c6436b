"""Hostile inputs, built small and fast: deep nesting, decompression bombs, pixel bombs."""
from __future__ import annotations

import io
import struct
import zlib

from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, JPEGBaseline8Bit

from factories import make_dataset, make_dicom_bytes

CONTENT_SEQUENCE = struct.pack("<HH", 0x0040, 0xA730)
ITEM, ITEM_END, SEQ_END = (0xFFFE, 0xE000), (0xFFFE, 0xE00D), (0xFFFE, 0xE0DD)


def _tag(pair, length: int) -> bytes:
    return struct.pack("<HHI", *pair, length)


def nested_sequences(depth: int, defined: bool = True) -> bytes:
    """Content Sequence inside Content Sequence ... ``depth`` items deep (explicit VR LE), in linear time."""
    if defined:
        # level k (1 = innermost) is 20 * k bytes: a 12-byte SQ header, an 8-byte item header, level k - 1
        return b"".join(CONTENT_SEQUENCE + b"SQ\0\0" + struct.pack("<I", 8 + 20 * (k - 1))
                        + _tag(ITEM, 20 * (k - 1)) for k in range(depth, 0, -1))
    opening = CONTENT_SEQUENCE + b"SQ\0\0" + struct.pack("<I", 0xFFFFFFFF) + _tag(ITEM, 0xFFFFFFFF)
    return opening * depth + (_tag(ITEM_END, 0) + _tag(SEQ_END, 0)) * depth


def deep_dicom(depth: int, defined: bool = True, **tags) -> bytes:
    """A valid image header (no pixel data) followed by sequences nested ``depth`` deep."""
    ds = make_dataset(**tags)
    del ds.PixelData
    return make_dicom_bytes(ds) + nested_sequences(depth, defined)


def _meta_and_dataset(transfer_syntax: str, **tags) -> tuple[bytes, bytes]:
    """(preamble + file meta, dataset bytes in explicit VR LE) of a small image."""
    data = make_dicom_bytes(transfer_syntax=ExplicitVRLittleEndian, **tags)
    meta_len = struct.unpack("<I", data[140:144])[0]
    meta_end = 144 + meta_len
    meta = data[:meta_end].replace(ExplicitVRLittleEndian.encode() + b"\0",
                                   DeflatedExplicitVRLittleEndian.encode())
    # fix the group length for the longer UID
    head = bytearray(meta)
    grew = len(meta) - meta_end
    if grew:
        head[140:144] = struct.pack("<I", meta_len + grew)
        # and the element's own length
        pos = bytes(head).index(DeflatedExplicitVRLittleEndian.encode())
        head[pos - 2:pos] = struct.pack("<H", len(DeflatedExplicitVRLittleEndian))
    return bytes(head), data[meta_end:]


def deflated_dicom(trailing: bytes = b"", **tags) -> bytes:
    """A valid image in the deflated transfer syntax, optionally with bytes after the deflate stream."""
    meta, dataset = _meta_and_dataset(DeflatedExplicitVRLittleEndian, **tags)
    c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = c.compress(dataset) + c.flush()
    if len(body) & 1 and not trailing:
        body += b"\0"
    return meta + body + trailing


_ZEROS_BLOCK: bytes | None = None


def deflate_bomb_stream(inflated: int, prefix: bytes = b"") -> bytes:
    """Raw deflate of ``prefix`` and then about ``inflated`` zero bytes (about 1000:1), built in milliseconds.

    One block of 4 MiB zeros is compressed once, from a fresh compressor and
    sync-flushed (it starts with a literal, so it is valid after any data),
    and repeated; an empty final block ends the stream.
    """
    global _ZEROS_BLOCK
    if _ZEROS_BLOCK is None:
        c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        _ZEROS_BLOCK = c.compress(bytes(1 << 22)) + c.flush(zlib.Z_SYNC_FLUSH)
    c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    head = c.compress(prefix) + c.flush(zlib.Z_SYNC_FLUSH)
    return head + _ZEROS_BLOCK * max(1, inflated >> 22) + b"\x03\x00"


def deflated_bomb(inflated: int) -> bytes:
    """A deflated-syntax upload whose dataset inflates to ``inflated`` bytes (a header, then zeros)."""
    meta, dataset = _meta_and_dataset(DeflatedExplicitVRLittleEndian)
    return meta + deflate_bomb_stream(inflated, dataset)


def jpeg(rows: int = 8, columns: int = 8, claim: tuple[int, int] | None = None) -> bytes:
    """A real baseline JPEG; with ``claim`` its frame header says (rows, columns) instead."""
    buf = io.BytesIO()
    Image.new("L", (columns, rows), 128).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    if claim is not None:
        sof = data.index(b"\xff\xc0")
        data[sof + 5:sof + 9] = struct.pack(">HH", *claim)
    return bytes(data)


def jpeg_dicom(rows: int = 8, columns: int = 8, claim: tuple[int, int] | None = None, **tags) -> bytes:
    """A JPEG Baseline DICOM image with Rows/Columns ``rows`` x ``columns``; its JPEG may claim more."""
    ds = make_dataset(**tags)  # 8 x 8 pixels made, then the claimed size
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelData = encapsulate([jpeg(8, 8, claim)])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return make_dicom_bytes(ds, transfer_syntax=JPEGBaseline8Bit)


def native_claim_dicom(rows: int, columns: int, **tags) -> bytes:
    """A native image claiming ``rows`` x ``columns`` with only 8 x 8 pixels of data."""
    ds = make_dataset(rows=8, columns=8, **tags)
    ds.Rows, ds.Columns = rows, columns
    return make_dicom_bytes(ds)
