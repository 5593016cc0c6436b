"""Reading what a DICOM wrapper needs from a JPEG stream's markers (ITU T.81 Annex B)."""
from __future__ import annotations

import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)

#: Start-of-frame markers (T.81 Table B.1); C4 (DHT), C8 (JPG) and CC (DAC) are not frames.
SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
#: Markers without a length field.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_SOS = 0xDA
_EOI = 0xD9
_APP14 = 0xEE


class NotJpeg(ValueError):
    """The bytes are not a JPEG stream this module can describe."""


@dataclass(frozen=True)
class JpegInfo:
    sof: int  #: the SOF marker's second byte: 0xC0 baseline, 0xC1 extended, 0xC3 lossless, ...
    precision: int
    rows: int
    columns: int
    components: int
    #: (horizontal, vertical) sampling factors per component
    sampling: tuple[tuple[int, int], ...]
    #: Adobe APP14 colour transform flag (0 = none, i.e. RGB), None when absent
    adobe_transform: int | None = None

    @property
    def subsampled(self) -> bool:
        return len(set(self.sampling)) > 1


def read_jpeg_info(data: bytes) -> JpegInfo:
    """Frame header values of the JPEG in ``data``.

    Raises
    ------
    NotJpeg
        ``data`` does not start with SOI + a marker (``FF D8 FF``), or no
        start-of-frame segment precedes the first scan.
    """
    if len(data) < 4 or data[0:3] != b"\xFF\xD8\xFF":
        raise NotJpeg("not a JPEG image: it does not start with FF D8 FF")
    pos = 2
    adobe = None
    n = len(data)
    while pos < n:
        if data[pos] != 0xFF:
            raise NotJpeg(f"corrupt JPEG: expected a marker at byte {pos}")
        while pos < n and data[pos] == 0xFF:  # fill bytes (T.81 B.1.1.2)
            pos += 1
        if pos >= n:
            break
        marker = data[pos]
        pos += 1
        if marker in _STANDALONE:
            continue
        if marker in (_SOS, _EOI):
            break
        if pos + 2 > n:
            break
        length = int.from_bytes(data[pos:pos + 2], "big")
        if length < 2 or pos + length > n:
            raise NotJpeg(f"corrupt JPEG: bad segment length at byte {pos}")
        segment = data[pos + 2:pos + length]
        if marker == _APP14 and segment[:5] == b"Adobe" and len(segment) >= 12:
            adobe = segment[11]
        if marker in SOF_MARKERS:
            if len(segment) < 6:
                raise NotJpeg("corrupt JPEG: short start-of-frame segment")
            precision = segment[0]
            rows = int.from_bytes(segment[1:3], "big")
            columns = int.from_bytes(segment[3:5], "big")
            components = segment[5]
            sampling = []
            for i in range(components):
                off = 6 + 3 * i + 1
                if off >= len(segment):
                    raise NotJpeg("corrupt JPEG: short start-of-frame segment")
                sampling.append((segment[off] >> 4, segment[off] & 0x0F))
            if rows == 0 or columns == 0 or components == 0:
                raise NotJpeg("JPEG frame header has zero rows, columns or components")
            return JpegInfo(marker, precision, rows, columns, components, tuple(sampling), adobe)
        pos += length
    raise NotJpeg("not a JPEG image: no start-of-frame segment found")


#: JPEG-LS start of frame (ITU T.87): same segment layout as T.81's SOF.
_SOF55 = 0xF7


def codestream_dimensions(data: bytes) -> tuple[int, int, int] | None:
    """(rows, columns, components) a compressed frame's own header claims, before any decoding.

    Understands JPEG (T.81, any SOF), JPEG-LS (SOF55) and JPEG 2000 / HTJ2K
    codestreams (SIZ); None for anything else or a header it cannot find
    (the decoder then fails on its own, cheaply).  A decoder allocates what
    this header says, not what the DICOM Rows/Columns say.
    """
    if data[:4] == b"\xFF\x4F\xFF\x51" and len(data) >= 42:
        xsiz, ysiz, xo, yo = (int.from_bytes(data[i:i + 4], "big") for i in (8, 12, 16, 20))
        components = int.from_bytes(data[40:42], "big")
        return max(0, ysiz - yo), max(0, xsiz - xo), components
    if data[:2] != b"\xFF\xD8":
        return None
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return None
        while pos < n and data[pos] == 0xFF:
            pos += 1
        if pos >= n:
            return None
        marker = data[pos]
        pos += 1
        if marker in _STANDALONE:
            continue
        if marker in (_SOS, _EOI) or pos + 2 > n:
            return None
        length = int.from_bytes(data[pos:pos + 2], "big")
        if marker in SOF_MARKERS or marker == _SOF55:
            if pos + 8 > n:
                return None
            rows = int.from_bytes(data[pos + 3:pos + 5], "big")
            columns = int.from_bytes(data[pos + 5:pos + 7], "big")
            return rows, columns, data[pos + 7]
        if length < 2:
            return None
        pos += length
    return None
