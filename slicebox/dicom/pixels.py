"""The pixel side of a dataset through pydicom: the header values rendering needs,
and the decoding of one frame (compressed syntaxes through pylibjpeg).

Only the requested frame is decoded: ``pydicom.pixels.pixel_array(path, index=)``
reads just that frame's bytes (or fragments).
"""
from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pydicom
import pydicom.encaps
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.uid import DeflatedExplicitVRLittleEndian

from slicebox.dicom.parsing import check_readable
from slicebox.errors import InvalidDicom

logger = logging.getLogger(__name__)

Source = str | os.PathLike | BinaryIO


class PixelDecodeError(Exception):
    """The pixel data exists but cannot be decoded by any available plugin."""


@dataclass(frozen=True)
class PixelHeader:
    """What rendering needs from the header; values are per frame where the
    enhanced multi-frame functional groups say so."""

    has_pixels: bool
    rows: int
    columns: int
    number_of_frames: int
    samples_per_pixel: int
    photometric: str
    bits_stored: int
    transfer_syntax: str
    slope: float = 1.0
    intercept: float = 0.0
    window_center: float | None = None
    window_width: float | None = None

    @property
    def is_color(self) -> bool:
        return self.samples_per_pixel > 1 or self.photometric == "PALETTE COLOR"


_PIXEL_TAGS = (0x7FE00010, 0x7FE00009, 0x7FE00008)


def read_pixel_header(source: Source, frame_index: int = 0) -> PixelHeader:
    """The header values rendering frame ``frame_index`` (0-based) needs; pixels are not read.

    Rescale and VOI window come from the frame's functional groups (enhanced
    multi-frame, PS3.3 C.7.6.16) if present, else from the shared groups, else
    from the top level.

    Raises
    ------
    InvalidDicom
        The header cannot be parsed, or nests sequences deeper than the
        limit (checked before pydicom recurses into it).
    """
    check_readable(source)
    try:
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as fh:
                ds, has_pixels = _header(fh)
        else:
            ds, has_pixels = _header(source)
    except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, OverflowError, struct.error,
            RecursionError) as exc:
        raise InvalidDicom(f"malformed DICOM: {type(exc).__name__}: {exc}"[:300]) from None
    meta = getattr(ds, "file_meta", None)
    tsuid = str(getattr(meta, "TransferSyntaxUID", "") or "") if meta is not None else ""
    slope, intercept = _number(ds, "RescaleSlope", 1.0), _number(ds, "RescaleIntercept", 0.0)
    center, width = _number(ds, "WindowCenter", None), _number(ds, "WindowWidth", None)
    for group in _functional_groups(ds, frame_index):
        transform = _first_item(group, "PixelValueTransformationSequence")
        if transform is not None and "RescaleSlope" in transform:
            slope = _number(transform, "RescaleSlope", 1.0)
            intercept = _number(transform, "RescaleIntercept", 0.0)
        voi = _first_item(group, "FrameVOILUTSequence")
        if voi is not None and "WindowCenter" in voi:
            center, width = _number(voi, "WindowCenter", None), _number(voi, "WindowWidth", None)
    if slope == 0:
        slope = 1.0  # a zero slope would flatten the image; treat as absent
    return PixelHeader(
        has_pixels=has_pixels,
        rows=int(_number(ds, "Rows", 0)),
        columns=int(_number(ds, "Columns", 0)),
        number_of_frames=max(1, int(_number(ds, "NumberOfFrames", 1) or 1)),
        samples_per_pixel=int(_number(ds, "SamplesPerPixel", 1) or 1),
        photometric=str(ds.get("PhotometricInterpretation", "") or "").strip().upper(),
        bits_stored=int(_number(ds, "BitsStored", 0) or _number(ds, "BitsAllocated", 8) or 8),
        transfer_syntax=tsuid,
        slope=slope,
        intercept=intercept,
        window_center=center,
        window_width=width,
    )


def _header(fh: BinaryIO) -> tuple[Dataset, bool]:
    ds = pydicom.dcmread(fh, stop_before_pixels=True, defer_size=64 * 1024)
    tsuid = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    if tsuid == DeflatedExplicitVRLittleEndian:
        # The read position is inside an inflated copy: ask pydicom instead.
        fh.seek(0)
        full = pydicom.dcmread(fh, defer_size=64)
        return ds, any(t in full._dict for t in _PIXEL_TAGS)
    head = fh.read(4)
    if len(head) < 4:
        return ds, False
    end = "<" if ds.is_little_endian in (True, None) else ">"
    group, element = struct.unpack(end + "HH", head)
    return ds, (group << 16 | element) in _PIXEL_TAGS


def _functional_groups(ds: Dataset, frame_index: int) -> list[Dataset]:
    groups = []
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    if shared is not None:
        groups.append(shared)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and 0 <= frame_index < len(per_frame):
        groups.append(per_frame[frame_index])
    return groups


def _first_item(ds: Dataset, keyword: str) -> Dataset | None:
    try:
        seq = ds.get(keyword)
        return seq[0] if seq else None
    except Exception:  # noqa: BLE001 - a malformed sequence is treated as absent
        return None


def _number(ds: Dataset, keyword: str, default):
    try:
        value = ds.get(keyword)
        if isinstance(value, (MultiValue, list, tuple)):
            value = value[0] if value else None  # the first window of several
        if value is None or value == "" or isinstance(value, (bytes, bytearray)):
            return default
        number = float(value)
        return number if np.isfinite(number) else default
    except (ValueError, TypeError, OverflowError):
        return default


def decode_frame(source: Source, header: PixelHeader, frame_index: int) -> np.ndarray:
    """Decode one frame (0-based) to an array: (rows, cols) or (rows, cols, 3) RGB.

    YCbCr is converted to RGB and PALETTE COLOR looked up (PS3.3 C.7.6.3.1.5).

    Raises
    ------
    PixelDecodeError
        No installed decoder can decode the pixel data (or it is corrupt).
    """
    try:
        if header.transfer_syntax == DeflatedExplicitVRLittleEndian:
            # pixel_array cannot inflate from a path; a dataset it can use.
            ds = pydicom.dcmread(source)
            arr = pydicom.pixels.pixel_array(ds, index=frame_index)
        else:
            ds = Dataset()
            arr = pydicom.pixels.pixel_array(source, index=frame_index, ds_out=ds)
        if header.photometric == "PALETTE COLOR":
            arr = pydicom.pixels.apply_color_lut(arr, ds)
    except Exception as exc:  # noqa: BLE001 - pydicom and its plugins raise many types
        logger.info("cannot decode pixel data: %s", exc)
        raise PixelDecodeError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
    return arr


#: Transfer syntaxes whose pixel data is stored as it is (not encapsulated).
_NATIVE = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
                     DeflatedExplicitVRLittleEndian})
#: Bytes of a frame read to find its codestream header.
_FRAME_HEAD = 64 * 1024


def encoded_frame_head(source: Source, header: PixelHeader, frame_index: int) -> bytes | None:
    """The first bytes of frame ``frame_index``'s encoded data (encapsulated syntaxes), else None.

    Reads only that frame's fragments (compressed bytes, never decoded), so
    the codestream's own dimensions can be checked before a decoder
    allocates them.  None for native pixel data or when the frame cannot be
    located (the decoder then fails by itself).
    """
    if header.transfer_syntax in _NATIVE or not isinstance(source, (str, os.PathLike)):
        return None
    try:
        with open(source, "rb") as fh:
            ds = pydicom.dcmread(fh, stop_before_pixels=True, defer_size=1024)
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"\xe0\x7f\x10\x00":
                return None
            frame = pydicom.encaps.get_frame(fh, frame_index, number_of_frames=header.number_of_frames)
            del ds
    except Exception:  # noqa: BLE001 - not locatable: the decoder reports it
        logger.debug("cannot locate frame %s", frame_index, exc_info=True)
        return None
    return bytes(frame[:_FRAME_HEAD])
