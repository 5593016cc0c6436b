# cython: language_level=3
"""Compiled streaming DICOM engine (``slicebox._speedups.tagstream``).

Same interface and results as the pure-Python twin
``slicebox.dicom._tagstream_py`` (the readable reference; read its docstring
for the contract). The element walk - header decoding, skipping, the "is any
rule interested in this tag" test and the coalescing of unchanged byte
ranges - runs in C; only elements an edit plan names reach Python code.

This module imports nothing from slicebox: the selector
``slicebox.dicom.tagstream`` hands it the shared exception classes with
:func:`set_error_classes`, and edit plans arrive in the plain-data form of
``EditPlan.compile()``.

Generated once from the twin and then maintained by hand; the parity tests
in ``tests/test_speedups.py`` keep the two in step.
"""
import mmap
import os
import struct
import threading
import zlib
from collections import namedtuple

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.string cimport memset


class DicomStreamError(ValueError):
    """Malformed DICOM input (replaced by the shared class at import)."""


class DicomTruncatedError(DicomStreamError):
    """Input ended early (replaced by the shared class at import)."""


def set_error_classes(error, truncated):
    """Raise ``error`` / ``truncated`` (a subclass of ``error``) from now on."""
    global DicomStreamError, DicomTruncatedError
    if not issubclass(truncated, error):
        raise TypeError("truncated must subclass error")
    DicomStreamError, DicomTruncatedError = error, truncated


WILDCARD = 0


def format_tag(tag):
    return "(%04X,%04X)" % (tag >> 16, tag & 0xFFFF)


def format_tag_path(trunk, tag):
    steps = ["%s[%s]" % (format_tag(t), "*" if i == WILDCARD else i) for t, i in trunk]
    steps.append(format_tag(tag))
    return ".".join(steps)


def parse_tag(value):
    if isinstance(value, int):
        return value
    s = str(value).strip().strip("()").replace(",", "")
    if len(s) == 8:
        try:
            return int(s, 16)
        except ValueError:
            pass
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(str(value).strip())
    if tag is None:
        raise DicomStreamError("not a tag or keyword: %r" % (value,))
    return tag


ITEM = 0xFFFEE000
ITEM_DELIM = 0xFFFEE00D
SEQ_DELIM = 0xFFFEE0DD
PIXEL_DATA = 0x7FE00010
SOP_INSTANCE_UID = 0x00080018
MEDIA_SOP_INSTANCE_UID = 0x00020003
SPECIFIC_CHARSET = 0x00080005
TRANSFER_SYNTAX = 0x00020010
UNDEFINED = 0xFFFFFFFF
#: Deepest sequence nesting accepted (deeper input is "absurd nesting"); the
#: walk uses the C copy ``_max_depth``, both set by :func:`set_limits`.
MAX_DEPTH = 64
#: Largest inflated size accepted for deflated datasets (inflated in memory).
MAX_INFLATED = 128 << 20
#: Zero bytes accepted after the end of a deflate stream (writers pad to even length).
DEFLATE_PADDING = 16
cdef int _max_depth = 64


def set_limits(max_depth=None, max_inflated=None):
    """Set ``MAX_DEPTH`` and/or ``MAX_INFLATED`` for every later call (process-wide)."""
    global MAX_DEPTH, MAX_INFLATED, _max_depth
    if max_depth is not None:
        if not 1 <= int(max_depth) <= 1000:
            raise ValueError("max_depth must be between 1 and 1000")
        MAX_DEPTH = _max_depth = int(max_depth)
    if max_inflated is not None:
        if int(max_inflated) < 1:
            raise ValueError("max_inflated must be positive")
        MAX_INFLATED = int(max_inflated)


cdef int _check_depth(int depth) except -1:
    """Items about to be entered lie at ``depth + 1``: refuse past the limit (C recursion stays bounded)."""
    if depth >= _max_depth:
        raise DicomStreamError("sequences nested deeper than %d" % _max_depth)
    return 0
#: Ranges at least this long are moved with copy_file_range when possible
#: (below this a write from the mapped source measured faster here).
BIG_RANGE = 1 << 22
#: Files at least this large are memory-mapped (only touched pages are read);
#: smaller ones are read in one call.
MAP_THRESHOLD = 1 << 22

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"

# Encodings: 0 explicit VR LE, 1 implicit VR LE, 2 explicit VR BE.
ENC_EXPLICIT_LE, ENC_IMPLICIT_LE, ENC_EXPLICIT_BE = 0, 1, 2

LONG_VRS = frozenset(
    [b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"]
)
KNOWN_VRS = frozenset(
    v.encode() for v in "AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split()
)
TEXT_VRS = frozenset(
    ["AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"]
)
CHARSET_VRS = frozenset(["LO", "LT", "PN", "SH", "ST", "UC", "UT"])
NUMERIC_FORMATS = {
    "US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d",
    "UV": "Q", "SV": "q", "OF": "f", "OD": "d", "OL": "L", "OV": "Q", "OW": "H",
}
BULK_VRS = frozenset(["OB", "OD", "OF", "OL", "OV", "OW", "UN"])

REMOVE, REPLACE = 1, 2

Attribute = namedtuple("Attribute", "vr value")
Attribute.__doc__ = """A decoded element: ``vr`` (str) and ``value``.

``value`` is a ``str`` for text VRs (padding stripped, multiple values joined
by ``\\``), an ``int``/``float`` or a list of them for numeric VRs, ``bytes``
for OB/OW/UN and friends, and a list of item dicts for sequences."""

ElementRecord = namedtuple(
    "ElementRecord", "path tag keyword vr length multiplicity value depth"
)
ElementRecord.__doc__ = """One row of :func:`list_elements`.

``path`` is the tag path string (``(0008,1115)[1].(0020,000E)``), ``length``
the encoded value length (-1 for undefined), ``multiplicity`` the number of
values, ``value`` a display string (binary values over 20 bytes are shown as
``< Binary data >``, encapsulated data as ``< Fragments >``), ``depth`` the
sequence nesting level (0 = root)."""

RewriteResult = namedtuple("RewriteResult", "length transfer_syntax data")
RewriteResult.__doc__ = """What :func:`rewrite` did: bytes written, the
transfer syntax of the output, and the output itself when no destination was
given (else ``None``)."""


_SQ_TAGS = None


def _sq_tags():
    global _SQ_TAGS
    if _SQ_TAGS is None:
        from pydicom._dicom_dict import DicomDictionary

        _SQ_TAGS = frozenset(t for t, v in DicomDictionary.items() if v[0] == "SQ")
    return _SQ_TAGS


def _dictionary_vr(tag):
    from pydicom.datadict import dictionary_VR

    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return "UN"
    return vr.split(" or ")[0]


def _keyword(tag):
    from pydicom.datadict import keyword_for_tag

    return keyword_for_tag(tag) or ""


# ---------------------------------------------------------------------------
# Sources and layout
# ---------------------------------------------------------------------------


class _Source:
    """A buffer over the input, with the file descriptor when it is a real file."""

    __slots__ = ("buf", "fd", "_mm", "_fd_owned", "complete", "_scratch")

    def __init__(self, buf, fd=None, mm=None, fd_owned=False, complete=True, scratch=None):
        self.buf, self.fd, self._mm, self._fd_owned, self.complete = buf, fd, mm, fd_owned, complete
        self._scratch = scratch

    def close(self):
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:  # a view is still alive; GC will unmap it
                pass
        if self._fd_owned and self.fd is not None:
            os.close(self.fd)
        if self._scratch is not None:
            self._scratch.busy = False
            self._scratch = None
        self.buf = self._mm = None


#: Per-thread read buffer for small files, reused from call to call: a fresh
#: half-megabyte allocation per file is mmap'd by malloc and costs a page
#: fault per 4 KiB (measured: a quarter of the engine's time on 0.5 MB CT
#: files). At most MAP_THRESHOLD bytes per thread; nothing read from it
#: escapes (values are copied out), and a nested call (a plan callable that
#: uses the engine) gets its own buffer.
_scratch_local = threading.local()


def _small_read(fd, size):
    """``(buffer view, scratch or None)`` holding the ``size``-byte file at ``fd``."""
    st = _scratch_local
    if getattr(st, "busy", False):
        return os.pread(fd, size, 0) if size else b"", None
    buf = getattr(st, "buf", None)
    if buf is None or len(buf) < size:
        buf = st.buf = bytearray(max(size, 1 << 16))
    view = memoryview(buf)[:size]
    done = 0
    while done < size:
        n = os.preadv(fd, [view[done:]], done)
        if n <= 0:  # the file shrank under us: parse what is there
            view = view[:done]
            break
        done += n
    st.busy = True
    return view, st


def _open_source(source):
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _Source(source)
    if isinstance(source, (str, os.PathLike)):
        try:
            fd = os.open(source, os.O_RDONLY)
        except OSError as exc:
            raise DicomStreamError("cannot open %s: %s" % (source, exc)) from exc
        return _map_fd(fd, owned=True)
    try:
        fd = source.fileno()
        os.fstat(fd)
    except (AttributeError, OSError, ValueError):
        fd = None
    if fd is not None and hasattr(source, "seek"):
        return _map_fd(fd, owned=False)
    return _Source(source.read())


def _map_fd(fd, owned):
    try:
        size = os.fstat(fd).st_size
        if size < MAP_THRESHOLD:
            # Small files: one read beats the page faults of a mapping.
            data, scratch = _small_read(fd, size)
            if owned:
                os.close(fd)
            return _Source(data, None, None, False, True, scratch)
        mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:
        if owned:
            os.close(fd)
        raise DicomStreamError("cannot map the source: %s" % exc) from exc
    return _Source(mm, fd, mm, owned)


_Layout = namedtuple("_Layout", "meta_start meta meta_end ts enc deflated")


def _is_vr(b0, b1):
    return 65 <= b0 <= 90 and 65 <= b1 <= 90


def _layout(buf, transfer_syntax):
    n = len(buf)
    meta_start = None
    if n >= 132 and bytes(buf[128:132]) == b"DICM":
        meta_start = 132
    elif n >= 8 and buf[0] == 2 and buf[1] == 0 and _is_vr(buf[4], buf[5]):
        meta_start = 0
    meta = []
    ts = None
    pos = meta_start
    if meta_start is not None:
        while pos + 8 <= n and buf[pos] == 2 and buf[pos + 1] == 0:
            tag, vr, length, vpos = _header(buf, pos, n, ENC_EXPLICIT_LE)
            if length == UNDEFINED or vpos + length > n:
                raise DicomTruncatedError("file meta element %s runs past the end" % format_tag(tag))
            if tag >> 16 != 2:
                break
            meta.append((tag, vr, pos, vpos, length))
            if tag == TRANSFER_SYNTAX:
                ts = bytes(buf[vpos:vpos + length]).rstrip(b"\0 ").decode("ascii", "replace")
            pos = vpos + length
        if pos + 8 > n and pos < n:
            raise DicomTruncatedError("truncated after file meta information")
    else:
        pos = 0
    if transfer_syntax is not None and ts is None:
        ts = transfer_syntax
    deflated = ts == DEFLATED_LE
    if ts is None:
        enc = _guess_encoding(buf, pos)
        ts = (EXPLICIT_LE, IMPLICIT_LE, EXPLICIT_BE)[enc]
    elif ts == IMPLICIT_LE:
        enc = ENC_IMPLICIT_LE
    elif ts == EXPLICIT_BE:
        enc = ENC_EXPLICIT_BE
    else:
        enc = ENC_EXPLICIT_LE
    if not deflated and len(buf) >= pos + 6:
        # Some writers lie about VR explicitness; trust the first element
        # (pydicom does the same).
        vr = bytes(buf[pos + 4:pos + 6])
        if enc == ENC_EXPLICIT_LE and vr not in KNOWN_VRS:
            enc = ENC_IMPLICIT_LE
        elif enc == ENC_IMPLICIT_LE and vr in KNOWN_VRS:
            enc = ENC_EXPLICIT_LE
    return _Layout(meta_start, meta, pos, ts, enc, deflated)


def _guess_encoding(buf, pos):
    if len(buf) < pos + 8:
        return ENC_EXPLICIT_LE
    explicit = _is_vr(buf[pos + 4], buf[pos + 5])
    if explicit and buf[pos] == 0 and buf[pos + 1] != 0:
        return ENC_EXPLICIT_BE
    return ENC_EXPLICIT_LE if explicit else ENC_IMPLICIT_LE


# ---------------------------------------------------------------------------
# Element headers
# ---------------------------------------------------------------------------

_U16 = {True: struct.Struct("<H"), False: struct.Struct(">H")}
_U32 = {True: struct.Struct("<I"), False: struct.Struct(">I")}
_TAGS = {True: struct.Struct("<HH"), False: struct.Struct(">HH")}


def _header(buf, pos, end, enc):
    """Decode the element header at ``pos``: ``(tag, vr bytes|None, length, value pos)``."""
    if pos + 8 > end or pos + 8 > len(buf):
        raise DicomTruncatedError("truncated element header at %d" % pos)
    little = enc != ENC_EXPLICIT_BE
    g, e = _TAGS[little].unpack_from(buf, pos)
    tag = g << 16 | e
    if g == 0xFFFE or enc == ENC_IMPLICIT_LE:
        return tag, None, _U32[little].unpack_from(buf, pos + 4)[0], pos + 8
    vr = bytes(buf[pos + 4:pos + 6])
    if not _is_vr(vr[0], vr[1]):
        raise DicomStreamError("invalid VR %r at %d for %s" % (vr, pos, format_tag(tag)))
    if vr in LONG_VRS:
        if pos + 12 > end or pos + 12 > len(buf):
            raise DicomTruncatedError("truncated element header at %d" % pos)
        return tag, vr, _U32[little].unpack_from(buf, pos + 8)[0], pos + 12
    return tag, vr, _U16[little].unpack_from(buf, pos + 6)[0], pos + 8


def _kind(tag, vr, length, enc):
    """0 plain value, 1 sequence, 2 sequence in implicit LE (UN), 3 fragments."""
    if enc == ENC_IMPLICIT_LE:
        if length == UNDEFINED:
            return 3 if tag == PIXEL_DATA else 1
        return 1 if tag in _sq_tags() else 0
    if vr == b"SQ":
        return 1
    if length == UNDEFINED:
        if vr == b"UN":
            return 2
        if vr == b"OB" or vr == b"OW":
            return 3
        raise DicomStreamError("undefined length on VR %s for %s" % (vr.decode(), format_tag(tag)))
    return 0


def _make_header(tag, vr, length, enc):
    little = enc != ENC_EXPLICIT_BE
    head = _TAGS[little].pack(tag >> 16, tag & 0xFFFF)
    if enc == ENC_IMPLICIT_LE or tag >> 16 == 0xFFFE:
        return head + _U32[little].pack(length)
    if vr in LONG_VRS:
        return head + vr + b"\0\0" + _U32[little].pack(length)
    if length > 0xFFFF:
        raise DicomStreamError("value of %d bytes too long for VR %s" % (length, vr.decode()))
    return head + vr + _U16[little].pack(length)


def _trunk_matches(pattern, trunk):
    if len(pattern) != len(trunk):
        return False
    for (pt, pi), (ct, ci) in zip(pattern, trunk):
        if pt != ct or (pi != WILDCARD and pi != ci):
            return False
    return True


# ---------------------------------------------------------------------------
# Value encoding / decoding
# ---------------------------------------------------------------------------


def _charsets(raw):
    from pydicom.charset import convert_encodings

    if raw is None:
        return None
    text = bytes(raw).decode("ascii", "replace").strip(" \0")
    if not text:
        return None
    try:
        return convert_encodings([v.strip() for v in text.split("\\")])
    except Exception:  # noqa: BLE001 - unknown charset: fall back to default
        return None



def _encode_items(items, enc, charset_raw):
    """Encode a new sequence's items: a list of items, each a list of (tag, vr, value).

    Elements of an item are written in the given order (give them ascending).
    """
    parts = []
    for item in items:
        body = b""
        for tag, vr, value in item:
            data = _encode_value(value, vr, enc, None, charset_raw)
            if vr == "SQ":
                raise DicomStreamError("nested sequences cannot be inserted")
            body += _make_header(tag, vr.encode("ascii"), len(data), enc) + data
        parts.append(_make_header(ITEM, None, len(body), enc) + body)
    return b"".join(parts)


def _encode_text(value, vr, encodings):
    """Encode text in a Specific Character Set, value by value (PS3.5 6.1.2.5.3).

    Every value, and in a PN every component group and component, starts again
    in the initial code elements, so a code extension (ISO 2022 escape
    sequence) is repeated after each ``\\``, ``=`` and ``^`` where needed; an
    encoder working on the whole string would put it once at the front.
    """
    from pydicom.charset import encode_string

    if vr in ("LT", "ST", "UT"):  # single-valued: a backslash is text
        return encode_string(value, encodings)
    if vr == "PN":
        from pydicom.valuerep import _encode_personname

        return b"\\".join(_encode_personname(v.split("="), encodings) for v in value.split("\\"))
    return b"\\".join(encode_string(v, encodings) for v in value.split("\\"))


def _encode_value(value, vr, enc, old, charset_raw):
    if callable(value):
        value = value(old)
    if value is None:
        value = b""
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    elif isinstance(value, str):
        data = None
        if vr in CHARSET_VRS:
            encodings = _charsets(charset_raw)
            if encodings:
                data = _encode_text(value, vr, encodings)
        if data is None:
            try:
                data = value.encode("ascii")
            except UnicodeEncodeError as exc:
                raise DicomStreamError(
                    "non-ASCII value for %s needs a Specific Character Set" % vr
                ) from exc
    elif vr in NUMERIC_FORMATS or vr == "AT":
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        little = "<" if enc != ENC_EXPLICIT_BE else ">"
        try:
            if vr == "AT":
                data = b"".join(struct.pack(little + "HH", v >> 16, v & 0xFFFF) for v in values)
            else:
                data = struct.pack(little + NUMERIC_FORMATS[vr] * len(values), *values)
        except (struct.error, TypeError) as exc:
            raise DicomStreamError("cannot encode %r as %s" % (value, vr)) from exc
    elif isinstance(value, (int, float)) and vr in TEXT_VRS:
        data = str(value).encode("ascii")
    else:
        raise DicomStreamError("cannot encode %r as %s" % (value, vr))
    if len(data) & 1:
        data += b" " if vr in TEXT_VRS and vr != "UI" else b"\0"
    return data


def _decode_value(raw, vr, enc, charset_raw):
    if vr in TEXT_VRS:
        if vr in CHARSET_VRS:
            encodings = _charsets(charset_raw)
            if encodings:
                from pydicom.charset import decode_bytes

                delims = {0x5C, 0x5E, 0x3D} if vr == "PN" else {0x5C, 0x0D, 0x0A, 0x09, 0x0C}
                try:
                    text = decode_bytes(bytes(raw), encodings, delims)
                except Exception:  # noqa: BLE001 - undecodable: keep latin-1 view
                    text = bytes(raw).decode("latin-1")
            else:
                text = bytes(raw).decode("latin-1")
        else:
            text = bytes(raw).decode("latin-1")
        if vr in ("LT", "ST", "UT"):
            return text.rstrip(" \0")
        return "\\".join(v.strip(" \0") for v in text.split("\\")) if "\\" in text else text.strip(" \0")
    if vr == "AT":
        little = "<" if enc != ENC_EXPLICIT_BE else ">"
        n = len(raw) // 4
        vals = struct.unpack_from(little + "HH" * n, raw)
        tags = [vals[i] << 16 | vals[i + 1] for i in range(0, 2 * n, 2)]
        return tags[0] if n == 1 else tags
    if vr in NUMERIC_FORMATS and vr not in BULK_VRS:
        fmt = NUMERIC_FORMATS[vr]
        size = struct.calcsize(fmt)
        n = len(raw) // size
        little = "<" if enc != ENC_EXPLICIT_BE else ">"
        vals = list(struct.unpack_from(little + fmt * n, raw))
        return vals[0] if n == 1 else vals
    return bytes(raw)


def _display(value, vr, length):
    if isinstance(value, bytes):
        if length > 20:
            return "< Binary data >", 1
        return "\\".join("%02x" % b for b in value), 1 if value else 0
    if isinstance(value, str):
        return value, (value.count("\\") + 1 if value else 0)
    if isinstance(value, list):
        return "\\".join(str(v) for v in value), len(value)
    return str(value), 1


# ---------------------------------------------------------------------------
# The walker (compiled)
# ---------------------------------------------------------------------------

cdef enum:
    C_ENC_EXPLICIT_LE = 0
    C_ENC_IMPLICIT_LE = 1
    C_ENC_EXPLICIT_BE = 2

cdef unsigned int C_ITEM = 0xFFFEE000u
cdef unsigned int C_ITEM_DELIM = 0xFFFEE00Du
cdef unsigned int C_SEQ_DELIM = 0xFFFEE0DDu
cdef unsigned int C_UNDEF = 0xFFFFFFFFu
cdef unsigned int C_PIXEL = 0x7FE00010u

cdef inline unsigned short _vr2(char a, char b):
    return (<unsigned char>a) << 8 | (<unsigned char>b)

cdef struct Hdr:
    unsigned int tag
    unsigned short vr
    unsigned int length
    Py_ssize_t vpos


cdef inline bint _is_long_vr(unsigned short vr):
    cdef unsigned char a = vr >> 8
    cdef unsigned char b = vr & 0xFF
    if a == b'O':
        return b == b'B' or b == b'D' or b == b'F' or b == b'L' or b == b'V' or b == b'W'
    if a == b'S':
        return b == b'Q' or b == b'V'
    if a == b'U':
        return b == b'C' or b == b'N' or b == b'R' or b == b'T' or b == b'V'
    return False


cdef class _Walker:
    """Walks one encoded buffer; ``out`` collects ``(start, end)`` ranges and bytes."""

    cdef const unsigned char[:] mv
    cdef public object buf
    cdef public Py_ssize_t n
    cdef public bint complete
    cdef object rules, masks, keep, inserts, sq_tags
    cdef bint private, nested_inserts, has_plan
    cdef unsigned char elem_bits[8192]
    cdef unsigned int* rtags  # sorted tags that have rules (exact test after the bitmap)
    cdef Py_ssize_t nrtags
    cdef unsigned int cmask[64]
    cdef unsigned int cval[64]
    cdef int nmasks
    cdef public object charset_raw, new_sop
    cdef Py_ssize_t run_s, run_e

    def __init__(self, buf, plan, complete=True):
        cdef int i
        self.buf = buf
        self.mv = buf
        self.n = len(buf)
        self.complete = complete
        self.has_plan = plan is not None
        if plan is not None:
            self.rules, self.masks, self.private, self.keep, self.inserts = plan
        else:
            self.rules, self.masks, self.private, self.keep, self.inserts = {}, (), False, None, []
        self.nested_inserts = any(t for t, _, _, _ in self.inserts)
        self.charset_raw = None
        self.new_sop = None
        self.sq_tags = _sq_tags()
        memset(self.elem_bits, 0, sizeof(self.elem_bits))
        self.nrtags = len(self.rules)
        self.rtags = <unsigned int*>PyMem_Malloc((self.nrtags + 1) * sizeof(unsigned int))
        if self.rtags == NULL:
            raise MemoryError()
        i = 0
        for t in sorted(self.rules):
            self.rtags[i] = t
            i += 1
            el = t & 0xFFFF
            self.elem_bits[el >> 3] |= 1 << (el & 7)
        self.nmasks = len(self.masks)
        if self.nmasks > 64:
            raise DicomStreamError("at most 64 tag masks")
        for i in range(self.nmasks):
            self.cmask[i] = self.masks[i][0]
            self.cval[i] = self.masks[i][1]
        self.run_s = self.run_e = -1

    def __dealloc__(self):
        PyMem_Free(self.rtags)

    cdef inline bint has_rule(self, unsigned int tag):
        cdef unsigned int el = tag & 0xFFFF
        cdef Py_ssize_t lo = 0, hi = self.nrtags, mid
        if not self.elem_bits[el >> 3] & (1 << (el & 7)):
            return False
        while lo < hi:
            mid = (lo + hi) >> 1
            if self.rtags[mid] < tag:
                lo = mid + 1
            else:
                hi = mid
        return lo < self.nrtags and self.rtags[lo] == tag

    cdef inline int quick(self, unsigned int tag, int depth):
        """Without Python: -1 a rule names ``tag`` (ask decide), 1 removed, 0 kept."""
        cdef int i
        if self.has_rule(tag):
            return -1
        if tag & 0xFFFF == 0:
            return 1
        if self.private and (tag >> 16) & 1:
            return 1
        for i in range(self.nmasks):
            if tag & self.cmask[i] == self.cval[i]:
                return 1
        if depth == 0 and self.keep is not None and tag not in self.keep:
            return 1
        return 0

    def release(self):
        self.mv = None
        self.buf = None

    cdef int hdr(self, Py_ssize_t pos, Py_ssize_t end, int enc, Hdr* h) except -1:
        cdef const unsigned char* p
        cdef unsigned int g, e
        if pos + 8 > end or pos + 8 > self.n:  # never read outside the buffer
            raise DicomTruncatedError("truncated element header at %d" % pos)
        p = &self.mv[pos]
        if enc == C_ENC_EXPLICIT_BE:
            g = p[0] << 8 | p[1]
            e = p[2] << 8 | p[3]
        else:
            g = p[1] << 8 | p[0]
            e = p[3] << 8 | p[2]
        h.tag = g << 16 | e
        h.vr = 0
        if g == 0xFFFE or enc == C_ENC_IMPLICIT_LE:
            if enc == C_ENC_EXPLICIT_BE:
                h.length = <unsigned int>p[4] << 24 | <unsigned int>p[5] << 16 | p[6] << 8 | p[7]
            else:
                h.length = <unsigned int>p[7] << 24 | <unsigned int>p[6] << 16 | p[5] << 8 | p[4]
            h.vpos = pos + 8
            return 0
        if not (65 <= p[4] <= 90 and 65 <= p[5] <= 90):
            raise DicomStreamError("invalid VR %r at %d for %s" % (bytes(self.mv[pos + 4:pos + 6]), pos, format_tag(h.tag)))
        h.vr = p[4] << 8 | p[5]
        if _is_long_vr(h.vr):
            if pos + 12 > end or pos + 12 > self.n:
                raise DicomTruncatedError("truncated element header at %d" % pos)
            if enc == C_ENC_EXPLICIT_BE:
                h.length = <unsigned int>p[8] << 24 | <unsigned int>p[9] << 16 | p[10] << 8 | p[11]
            else:
                h.length = <unsigned int>p[11] << 24 | <unsigned int>p[10] << 16 | p[9] << 8 | p[8]
            h.vpos = pos + 12
        else:
            if enc == C_ENC_EXPLICIT_BE:
                h.length = p[6] << 8 | p[7]
            else:
                h.length = p[7] << 8 | p[6]
            h.vpos = pos + 8
        return 0

    cdef int kind(self, Hdr* h, int enc) except -1:
        if enc == C_ENC_IMPLICIT_LE:
            if h.length == C_UNDEF:
                return 3 if h.tag == C_PIXEL else 1
            if h.tag in self.sq_tags:
                return 1
            return 0
        if h.vr == _vr2(b'S', b'Q'):
            return 1
        if h.length == C_UNDEF:
            if h.vr == _vr2(b'U', b'N'):
                return 2
            if h.vr == _vr2(b'O', b'B') or h.vr == _vr2(b'O', b'W'):
                return 3
            raise DicomStreamError("undefined length on VR %s for %s" % (self.vrbytes(h).decode(), format_tag(h.tag)))
        return 0

    cdef object vrbytes(self, Hdr* h):
        if h.vr == 0:
            return None
        return bytes([h.vr >> 8, h.vr & 0xFF])

    # -- output runs ---------------------------------------------------------
    cdef inline void emit_range(self, list out, Py_ssize_t s, Py_ssize_t e):
        if s == self.run_e:
            self.run_e = e
        else:
            if self.run_e > self.run_s:
                out.append((self.run_s, self.run_e))
            self.run_s = s
            self.run_e = e

    cdef void flush(self, list out):
        if self.run_e > self.run_s:
            out.append((self.run_s, self.run_e))
        self.run_s = self.run_e = -1

    # -- skipping ------------------------------------------------------------
    cdef Py_ssize_t skip_value(self, Hdr* h, Py_ssize_t limit, int enc, int kind, int depth) except -1:
        cdef Py_ssize_t pos, end
        cdef Hdr ih, eh
        cdef int inner
        if h.length != C_UNDEF:
            end = h.vpos + h.length
            if end > limit:
                raise DicomTruncatedError("%s value runs past the end" % format_tag(h.tag))
            return end
        if kind == 3:
            return self.skip_fragments(h.vpos, limit, enc)
        _check_depth(depth)
        inner = C_ENC_IMPLICIT_LE if kind == 2 else enc
        pos = h.vpos
        while True:
            self.hdr(pos, limit, inner, &ih)
            if ih.tag == C_SEQ_DELIM:
                return ih.vpos
            if ih.tag != C_ITEM:
                raise DicomStreamError("expected an item in %s, found %s" % (format_tag(h.tag), format_tag(ih.tag)))
            if ih.length != C_UNDEF:
                pos = ih.vpos + ih.length
                if pos > limit:
                    raise DicomTruncatedError("item runs past the end")
                continue
            pos = ih.vpos
            while True:
                self.hdr(pos, limit, inner, &eh)
                if eh.tag == C_ITEM_DELIM:
                    pos = eh.vpos
                    break
                if eh.tag >> 16 == 0xFFFE:
                    raise DicomStreamError("misplaced %s in item" % format_tag(eh.tag))
                pos = self.skip_value(&eh, limit, inner, self.kind(&eh, inner), depth + 1)

    cdef Py_ssize_t skip_fragments(self, Py_ssize_t pos, Py_ssize_t limit, int enc) except -1:
        cdef Hdr ih
        cdef int fenc = C_ENC_EXPLICIT_BE if enc == C_ENC_EXPLICIT_BE else C_ENC_IMPLICIT_LE
        while True:
            self.hdr(pos, limit, fenc, &ih)
            if ih.tag == C_SEQ_DELIM:
                return ih.vpos
            if ih.tag != C_ITEM or ih.length == C_UNDEF:
                raise DicomStreamError("bad fragment item %s" % format_tag(ih.tag))
            pos = ih.vpos + ih.length
            if pos > limit:
                raise DicomTruncatedError("fragment runs past the end")

    # -- decisions -----------------------------------------------------------
    cpdef tuple decide(self, unsigned int tag, tuple trunk, int depth):
        cdef int action = 0
        cdef int i
        cdef unsigned int el = tag & 0xFFFF
        value = None
        if self.elem_bits[el >> 3] & (1 << (el & 7)):
            entries = self.rules.get(tag)
            if entries is not None:
                for pattern, act, val in entries:
                    if pattern is None or _trunk_matches(pattern, trunk):
                        action, value = act, val
                        break
        if action != REMOVE:
            if el == 0:
                return _REMOVE_T
            if self.private and (tag >> 16) & 1:
                return _REMOVE_T
            for i in range(self.nmasks):
                if tag & self.cmask[i] == self.cval[i]:
                    return _REMOVE_T
            if depth == 0 and self.keep is not None and tag not in self.keep:
                return _REMOVE_T
            if action == 0:
                return _KEEP_T
        return (action, value)

    cdef inline bint boring(self, unsigned int tag, int depth):
        """True when no rule can touch ``tag`` (the common case, decided in C)."""
        cdef unsigned int el = tag & 0xFFFF
        cdef int i
        if el == 0 or self.has_rule(tag):
            return False
        if self.private and (tag >> 16) & 1:
            return False
        for i in range(self.nmasks):
            if tag & self.cmask[i] == self.cval[i]:
                return False
        if depth == 0 and self.keep is not None:
            return False
        return True

    def inserts_for(self, trunk, depth):
        if depth and not self.nested_inserts:
            return ()
        return [
            (tag, vr, value)
            for pattern, tag, vr, value in self.inserts
            if _trunk_matches(pattern, trunk) and (depth or tag >> 16 != 2)
        ]

    # -- rewriting -------------------------------------------------------------
    def rw_dataset(self, Py_ssize_t pos, Py_ssize_t end, int enc, tuple trunk, int depth, list out):
        """Rewrite ``[pos, end)`` (``end`` -1: up to an item delimiter)."""
        r = self._rw_dataset(pos, end, enc, trunk, depth, out)
        self.flush(out)
        return r

    cdef tuple _rw_dataset(self, Py_ssize_t pos, Py_ssize_t end, int enc, tuple trunk, int depth, list out):
        cdef Py_ssize_t limit = self.n if end < 0 else end
        cdef Py_ssize_t epos, total = 0, n
        cdef Hdr h
        cdef int kind, action, q
        cdef Py_ssize_t pi = 0, npend
        cdef bint found_delim = False
        # tag of the next pending insert, past every tag when there is none
        cdef unsigned long long next_ins = 1ULL << 32
        pending = self.inserts_for(trunk, depth) if self.inserts else ()
        npend = len(pending)
        if npend:
            next_ins = <unsigned int>pending[0][0]
        while pos < limit:
            self.hdr(pos, limit, enc, &h)
            if h.tag >> 16 == 0xFFFE:
                if h.tag == C_ITEM_DELIM and end < 0:
                    found_delim = True
                    break
                raise DicomStreamError("misplaced %s at %d" % (format_tag(h.tag), pos))
            kind = self.kind(&h, enc)
            if h.tag < next_ins:
                q = self.quick(h.tag, depth)
                if q == 0 and kind == 0:
                    # fast path: an untouched plain element
                    epos = h.vpos + h.length
                    if epos > limit:
                        raise DicomTruncatedError("%s value runs past the end" % format_tag(h.tag))
                    if depth == 0 and h.tag == 0x00080005:
                        self.charset_raw = bytes(self.mv[h.vpos:epos])
                    self.emit_range(out, pos, epos)
                    total += epos - pos
                    pos = epos
                    continue
                if q == 1:
                    # removed by group length, private, mask or keep-only: no Python
                    pos = self.skip_value(&h, limit, enc, kind, depth)
                    continue
            while pi < npend and next_ins < h.tag:
                self.flush(out)
                total += self.emit_new(out, pending[pi], enc, None, depth, None)
                pi += 1
                next_ins = <unsigned int>pending[pi][0] if pi < npend else 1ULL << 32
            if pi < npend and next_ins == h.tag:
                epos = self.skip_value(&h, limit, enc, kind, depth)
                t, ivr, ival = pending[pi]
                old = bytes(self.mv[h.vpos:epos]) if kind == 0 else None
                vrb = self.vrbytes(&h)
                self.flush(out)
                total += self.emit_new(out, (t, vrb.decode() if vrb else ivr, ival), enc, old, depth, None)
                pi += 1
                next_ins = <unsigned int>pending[pi][0] if pi < npend else 1ULL << 32
                pos = epos
                continue
            action, value = self.decide(h.tag, trunk, depth)
            if action == REMOVE:
                pos = self.skip_value(&h, limit, enc, kind, depth)
                continue
            if action == REPLACE:
                epos = self.skip_value(&h, limit, enc, kind, depth)
                vrb = self.vrbytes(&h)
                evr = vrb.decode() if vrb else _dictionary_vr(h.tag)
                if kind == 1 or kind == 2:
                    evr = "SQ"
                old = bytes(self.mv[h.vpos:epos]) if kind == 0 else None
                self.flush(out)
                total += self.emit_new(out, (h.tag, evr, value), enc, old, depth, vrb)
                pos = epos
                continue
            if kind == 1 or kind == 2:
                _check_depth(depth)
                pos, n = self.rw_sequence(&h, pos, limit, enc, kind, trunk, depth, out)
                total += n
                continue
            epos = self.skip_value(&h, limit, enc, kind, depth)
            if depth == 0 and h.tag == 0x00080005:
                self.charset_raw = bytes(self.mv[h.vpos:epos])
            self.emit_range(out, pos, epos)
            total += epos - pos
            pos = epos
        if end < 0 and not found_delim:
            raise DicomTruncatedError("item of undefined length has no delimiter")
        while pi < npend:
            self.flush(out)
            total += self.emit_new(out, pending[pi], enc, None, depth, None)
            pi += 1
        return pos, total

    cdef tuple rw_sequence(self, Hdr* h, Py_ssize_t hpos, Py_ssize_t limit, int enc, int kind, tuple trunk, int depth, list out):
        cdef int inner = C_ENC_IMPLICIT_LE if kind == 2 else enc
        cdef Py_ssize_t hidx, iidx, total = 0, pos, dpos, n, iend
        cdef Py_ssize_t index = 0
        cdef Hdr ih
        cdef unsigned int tag = h.tag
        cdef unsigned int length = h.length
        cdef Py_ssize_t vpos = h.vpos
        self.flush(out)
        hidx = len(out)
        out.append(None)
        if length != C_UNDEF:
            if vpos + length > limit:
                raise DicomTruncatedError("%s runs past the end" % format_tag(tag))
            limit = vpos + length
        pos = vpos
        while True:
            if length != C_UNDEF and pos >= limit:
                break
            self.hdr(pos, limit, inner, &ih)
            if ih.tag == C_SEQ_DELIM and length == C_UNDEF:
                self.emit_range(out, pos, ih.vpos)
                total += ih.vpos - pos
                pos = ih.vpos
                break
            if ih.tag != C_ITEM:
                raise DicomStreamError("expected an item in %s, found %s" % (format_tag(tag), format_tag(ih.tag)))
            index += 1
            self.flush(out)
            iidx = len(out)
            out.append(None)
            item_trunk = trunk + ((tag, index),)
            if ih.length == C_UNDEF:
                dpos, n = self._rw_dataset(ih.vpos, -1, inner, item_trunk, depth + 1, out)
                out[iidx] = (pos, ih.vpos)
                self.emit_range(out, dpos, dpos + 8)
                total += 16 + n
                pos = dpos + 8
            else:
                iend = ih.vpos + ih.length
                if iend > limit:
                    raise DicomTruncatedError("item runs past the end of %s" % format_tag(tag))
                dpos, n = self._rw_dataset(ih.vpos, iend, inner, item_trunk, depth + 1, out)
                out[iidx] = (pos, ih.vpos) if n == ih.length else _make_header(ITEM, None, n, inner)
                total += 8 + n
                pos = iend
        self.flush(out)
        if length == C_UNDEF or total == length:
            out[hidx] = (hpos, vpos)
        else:
            out[hidx] = _make_header(tag, self.vrbytes(h), total, enc)
        return pos, vpos - hpos + total

    cdef Py_ssize_t emit_new(self, list out, tuple item, int enc, object old, int depth, object raw_vr) except -1:
        tag, vr, value = item
        if vr == "SQ" and isinstance(value, list):
            data = _encode_items(value, enc, self.charset_raw)
        else:
            data = _encode_value(value, vr, enc, old, self.charset_raw)
            if vr == "SQ" and data:
                raise DicomStreamError("only an empty value or a list of items can replace sequence %s"
                                       % format_tag(tag))
        bvr = raw_vr if raw_vr is not None else vr.encode("ascii")
        head = _make_header(tag, bvr, len(data), enc)
        out.append(head + data)
        if depth == 0:
            if tag == SOP_INSTANCE_UID:
                self.new_sop = data
            elif tag == SPECIFIC_CHARSET:
                self.charset_raw = data
        return len(head) + len(data)

    # -- reading (decoding is Python-level; the walk is typed) -------------------
    def read_dataset(self, Py_ssize_t pos, Py_ssize_t end, int enc, int depth, wanted, unsigned int stop, dict result):
        cdef Py_ssize_t limit = self.n if end < 0 else end
        cdef Py_ssize_t epos
        cdef Hdr h
        cdef int kind
        while pos < limit:
            self.hdr(pos, limit, enc, &h)
            if h.tag >> 16 == 0xFFFE:
                if h.tag == C_ITEM_DELIM and end < 0:
                    return h.vpos
                raise DicomStreamError("misplaced %s at %d" % (format_tag(h.tag), pos))
            if h.tag > stop:
                return pos
            kind = self.kind(&h, enc)
            epos = self.skip_value(&h, limit, enc, kind, depth)
            if depth == 0 and h.tag == 0x00080005:
                self.charset_raw = bytes(self.mv[h.vpos:epos])
            if wanted is None or h.tag in wanted:
                vrb = self.vrbytes(&h)
                svr = vrb.decode() if vrb else ("SQ" if kind == 1 else _dictionary_vr(h.tag))
                if kind == 1 or kind == 2:
                    value = self.read_items(h.vpos, h.length, epos, enc, kind, depth)
                elif kind == 3:
                    value = bytes(self.mv[h.vpos:epos - 8])
                else:
                    value = _decode_value(self.mv[h.vpos:epos], svr, enc, self.charset_raw)
                result[h.tag] = Attribute(svr, value)
            pos = epos
        if end < 0:
            raise DicomTruncatedError("item of undefined length has no delimiter")
        if depth == 0 and not self.complete:
            raise DicomTruncatedError("need more data")
        return pos

    def read_items(self, Py_ssize_t vpos, length, Py_ssize_t epos, int enc, int kind, int depth):
        cdef int inner = C_ENC_IMPLICIT_LE if kind == 2 else enc
        cdef Py_ssize_t pos = vpos
        cdef Hdr ih
        _check_depth(depth)
        items = []
        while pos < epos:
            self.hdr(pos, epos, inner, &ih)
            if ih.tag == C_SEQ_DELIM:
                break
            item = {}
            if ih.length != C_UNDEF and ih.vpos + ih.length > epos:
                raise DicomTruncatedError("item runs past the end of its sequence")
            if ih.length == C_UNDEF:
                pos = self.read_dataset(ih.vpos, -1, inner, depth + 1, None, C_UNDEF, item)
            else:
                self.read_dataset(ih.vpos, ih.vpos + ih.length, inner, depth + 1, None, C_UNDEF, item)
                pos = ih.vpos + ih.length
            items.append(item)
        return items

    def list_dataset(self, Py_ssize_t pos, Py_ssize_t end, int enc, tuple trunk, int depth, list rows):
        cdef Py_ssize_t limit = self.n if end < 0 else end
        cdef Py_ssize_t epos
        cdef Hdr h
        cdef int kind
        while pos < limit:
            self.hdr(pos, limit, enc, &h)
            if h.tag >> 16 == 0xFFFE:
                if h.tag == C_ITEM_DELIM and end < 0:
                    return h.vpos
                raise DicomStreamError("misplaced %s at %d" % (format_tag(h.tag), pos))
            if depth == 0 and h.tag == C_PIXEL:
                return pos
            kind = self.kind(&h, enc)
            epos = self.skip_value(&h, limit, enc, kind, depth)
            if depth == 0 and h.tag == 0x00080005:
                self.charset_raw = bytes(self.mv[h.vpos:epos])
            path = format_tag_path(trunk, h.tag)
            vrb = self.vrbytes(&h)
            svr = vrb.decode() if vrb else ("SQ" if kind == 1 else _dictionary_vr(h.tag))
            slen = -1 if h.length == C_UNDEF else h.length
            if kind == 1 or kind == 2:
                rows.append(ElementRecord(path, h.tag, _keyword(h.tag), "SQ" if vrb is None else svr, slen, 0, "", depth))
                self.list_items(h.tag, h.vpos, epos, enc, kind, trunk, depth, rows)
            elif kind == 3:
                rows.append(ElementRecord(path, h.tag, _keyword(h.tag), svr, -1, 1, "< Fragments >", depth))
            else:
                if svr in BULK_VRS and h.length > 20:
                    text, vm = "< Binary data >", 1
                else:
                    value = _decode_value(self.mv[h.vpos:epos], svr, enc, self.charset_raw)
                    text, vm = _display(value, svr, h.length)
                rows.append(ElementRecord(path, h.tag, _keyword(h.tag), svr, slen, vm, text, depth))
            pos = epos
        if end < 0:
            raise DicomTruncatedError("item of undefined length has no delimiter")
        return pos

    def list_items(self, unsigned int tag, Py_ssize_t vpos, Py_ssize_t epos, int enc, int kind, tuple trunk, int depth, list rows):
        cdef int inner = C_ENC_IMPLICIT_LE if kind == 2 else enc
        cdef Py_ssize_t pos = vpos
        cdef Py_ssize_t index = 0
        cdef Hdr ih
        _check_depth(depth)
        while pos < epos:
            self.hdr(pos, epos, inner, &ih)
            if ih.tag == C_SEQ_DELIM:
                break
            index += 1
            sub = trunk + ((tag, index),)
            if ih.length != C_UNDEF and ih.vpos + ih.length > epos:
                raise DicomTruncatedError("item runs past the end of its sequence")
            if ih.length == C_UNDEF:
                pos = self.list_dataset(ih.vpos, -1, inner, sub, depth + 1, rows)
            else:
                self.list_dataset(ih.vpos, ih.vpos + ih.length, inner, sub, depth + 1, rows)
                pos = ih.vpos + ih.length


_REMOVE_T = (REMOVE, None)
_KEEP_T = (0, None)



# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------


def _inflate(data):
    """The inflated dataset: at most MAX_INFLATED bytes, a complete stream, no trailing garbage."""
    d = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = d.decompress(data, MAX_INFLATED)
        if d.unconsumed_tail or (not d.eof and d.decompress(b"", 1)):
            raise DicomStreamError("deflated dataset larger than %d bytes" % MAX_INFLATED)
    except zlib.error as exc:
        raise DicomStreamError("bad deflated data: %s" % exc) from exc
    if not d.eof:
        raise DicomTruncatedError("deflated data ends before its final block")
    rest = d.unused_data
    if rest and not _trailer_ok(rest, out):
        raise DicomStreamError("%d bytes of garbage after the deflated data" % len(rest))
    return out


def _trailer_ok(rest, out):
    """Zero padding, after an optional gzip-style trailer (CRC-32, size) some writers append."""
    if len(rest) >= 8 and rest[:8].strip(b"\0") and \
            struct.unpack("<II", rest[:8]) == (zlib.crc32(out), len(out) & 0xFFFFFFFF):
        rest = rest[8:]
    return len(rest) <= DEFLATE_PADDING and not rest.strip(b"\0")


def _stream_prefix_read(source, fn):
    """Run ``fn(buf, complete)`` on growing prefixes of a non-seekable stream."""
    data = b""
    chunk = 16384
    while True:
        more = b""
        while len(more) < chunk:  # a short read is not the end of a pipe
            part = source.read(chunk - len(more))
            if not part:
                break
            more += part
        data += more
        eof = len(more) < chunk
        try:
            return fn(data, eof)
        except DicomTruncatedError:
            if eof:
                raise
        chunk *= 2


def read_attributes(source, tags=None, stop_tag=None, transfer_syntax=None):
    """Decode root-level attributes, stopping as early as possible.

    Parameters
    ----------
    source : bytes, path or file object
        A Part 10 file or, with ``transfer_syntax``, a bare dataset. Paths and
        file objects are read in growing chunks (16 KiB, doubling) until the
        answer is known, so little past the stop tag is ever read.
    tags : iterable of int/str, optional
        Tags or keywords to return; ``None`` for all root elements (file meta
        elements included).
    stop_tag : int/str, optional
        Stop at the first root element with a larger tag. Defaults to the
        largest requested tag (so nothing past it is read).
    transfer_syntax : str, optional
        Transfer syntax UID of a bare dataset (ignored when file meta
        information names one).

    Returns
    -------
    dict
        ``{tag: Attribute(vr, value)}`` for the requested tags present.

    Raises
    ------
    DicomStreamError
        If the input is malformed before the stop point.
    """
    wanted = None if tags is None else frozenset(parse_tag(t) for t in tags)
    stop = UNDEFINED
    if stop_tag is not None:
        stop = parse_tag(stop_tag)
    elif wanted:
        stop = max(wanted)

    def run(buf, complete):
        lay = _layout(buf, transfer_syntax)
        result = {}
        walker = _Walker(buf, None, complete)
        for tag, vr, hpos, vpos, length in lay.meta:
            if wanted is None or tag in wanted:
                result[tag] = Attribute(vr.decode(), _decode_value(buf[vpos:vpos + length], vr.decode(), 0, None))
        if lay.deflated:
            if not complete:
                raise DicomTruncatedError("need the whole deflated stream")
            walker = _Walker(_inflate(bytes(buf[lay.meta_end:])), None, True)
            start = 0
        else:
            start = lay.meta_end
        walker.read_dataset(start, walker.n, lay.enc, 0, wanted, stop, result)
        return result

    if isinstance(source, (bytes, bytearray, memoryview)):
        return run(source, True)
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb", buffering=0) as fh:
                return _stream_prefix_read(fh, run)
        except OSError as exc:
            raise DicomStreamError("cannot read %s: %s" % (source, exc)) from exc
    return _stream_prefix_read(source, run)


def list_elements(source, transfer_syntax=None):
    """List every element before Pixel Data, nested content included.

    Parameters
    ----------
    source : bytes, path or file object
    transfer_syntax : str, optional
        For a bare dataset.

    Returns
    -------
    list of ElementRecord
        In stream order: file meta first, then the dataset; a sequence's row
        (VR ``SQ``, empty value) precedes the rows of its items' elements,
        whose paths carry the 1-based item index.
    """
    src = _open_source(source)
    try:
        buf = src.buf
        lay = _layout(buf, transfer_syntax)
        rows = []
        for tag, vr, hpos, vpos, length in lay.meta:
            svr = vr.decode()
            value = _decode_value(buf[vpos:vpos + length], svr, 0, None)
            text, vm = ("< Binary data >", 1) if svr in BULK_VRS and length > 20 else _display(value, svr, length)
            rows.append(ElementRecord(format_tag(tag), tag, _keyword(tag), svr, length, vm, text, 0))
        if lay.deflated:
            walker = _Walker(_inflate(bytes(buf[lay.meta_end:])), None)
            start = 0
        else:
            walker = _Walker(buf, None)
            start = lay.meta_end
        walker.list_dataset(start, walker.n, lay.enc, (), 0, rows)
        return rows
    finally:
        src.close()


def _rewrite_meta(buf, lay, walker, plan_inserts):
    """Encode the file meta group with edits, Media Storage SOP UID and group length."""
    elems = {}
    for tag, vr, hpos, vpos, length in lay.meta:
        if tag == 0x00020000:
            continue
        action, value = walker.decide(tag, (), 1)  # depth 1: no keep-only, no group length
        if tag == MEDIA_SOP_INSTANCE_UID and walker.new_sop is not None:
            elems[tag] = _make_header(tag, b"UI", len(walker.new_sop), 0) + walker.new_sop
        elif action == REMOVE:
            continue
        elif action == REPLACE:
            data = _encode_value(value, vr.decode(), 0, bytes(buf[vpos:vpos + length]), None)
            elems[tag] = _make_header(tag, vr, len(data), 0) + data
        else:
            elems[tag] = bytes(buf[hpos:vpos + length])
    for trunk, tag, vr, value in plan_inserts:
        if not trunk and tag >> 16 == 2 and tag != 0x00020000:
            data = _encode_value(value, vr, 0, None, None)
            elems[tag] = _make_header(tag, vr.encode(), len(data), 0) + data
    if walker.new_sop is not None and MEDIA_SOP_INSTANCE_UID not in elems:
        elems[MEDIA_SOP_INSTANCE_UID] = _make_header(MEDIA_SOP_INSTANCE_UID, b"UI", len(walker.new_sop), 0) + walker.new_sop
    body = b"".join(elems[t] for t in sorted(elems))
    return _make_header(0x00020000, b"UL", 4, 0) + struct.pack("<I", len(body)) + body


def rewrite(source, destination=None, plan=None, transfer_syntax=None):
    """Apply ``plan`` to ``source`` in one pass and write the result.

    Parameters
    ----------
    source : bytes, path or file object
        A Part 10 file, or a bare dataset with ``transfer_syntax``.
    destination : path, file object or None
        Where to write. ``None`` returns the bytes in the result. When both
        ends are real files, large unchanged ranges (pixel data) are copied
        in the kernel with ``os.copy_file_range``.
    plan : EditPlan, optional
        The edits; ``None`` only drops group lengths and fixes lengths.
    transfer_syntax : str, optional
        For a bare dataset (the output is then a bare dataset too).

    Returns
    -------
    RewriteResult
        ``(length, transfer_syntax, data)``.

    Raises
    ------
    DicomStreamError
        Malformed input or an edit that cannot be encoded. Nothing is
        guaranteed about a destination that was partly written.
    """
    compiled = plan.compile() if plan is not None else None
    src = _open_source(source)
    try:
        buf = src.buf
        lay = _layout(buf, transfer_syntax)
        out = []
        if lay.deflated:
            walker = _Walker(_inflate(bytes(buf[lay.meta_end:])), compiled)
            ds_out = []
            walker.rw_dataset(0, walker.n, lay.enc, (), 0, ds_out)
            body = _join(walker.buf, ds_out)
            c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
            body = c.compress(body) + c.flush()
            if len(body) & 1:
                body += b"\0"
            out.append(body)
        else:
            walker = _Walker(buf, compiled)
            walker.rw_dataset(lay.meta_end, len(buf), lay.enc, (), 0, out)
        if lay.meta_start is not None:
            head = [(0, lay.meta_start)] if lay.meta_start else []
            head.append(_rewrite_meta(buf, lay, walker, compiled[4] if compiled else ()))
            out[:0] = head
        return _write(out, buf, src.fd, destination, lay.ts)
    finally:
        src.close()


def _coalesce(out):
    merged = []
    for piece in out:
        if type(piece) is tuple:
            last = len(merged) - 1  # no negative indices: wraparound is off
            if merged and type(merged[last]) is tuple and merged[last][1] == piece[0]:
                merged[last] = (merged[last][0], piece[1])
            elif piece[1] > piece[0]:
                merged.append(piece)
        elif piece:
            merged.append(piece)
    return merged


def _join(buf, out):
    mv = memoryview(buf)
    try:
        return b"".join(mv[p[0]:p[1]] if type(p) is tuple else p for p in _coalesce(out))
    finally:
        mv.release()


def _write_all(fd, data):
    mv = memoryview(data)
    while mv:
        n = os.write(fd, mv)
        mv = mv[n:]


def _writev_all(fd, pieces):
    """Write ``pieces`` in order with writev (no joined copy of large pieces)."""
    while pieces:
        batch = pieces[:512]
        want = sum(len(p) for p in batch)
        done = os.writev(fd, batch)
        if done < want:  # partial write: finish this batch the slow way
            _write_all(fd, b"".join(bytes(p) for p in batch)[done:])
        pieces = pieces[512:]


def _copy_range(src_fd, dst_fd, start, count):
    while count > 0:
        try:
            n = os.copy_file_range(src_fd, dst_fd, count, start)
        except OSError:
            n = 0
        if n <= 0:
            try:
                n = os.sendfile(dst_fd, src_fd, start, count)
            except OSError:
                n = 0
        if n <= 0:
            data = os.pread(src_fd, min(count, 1 << 20), start)
            if not data:
                raise DicomTruncatedError("source shrank while copying")
            _write_all(dst_fd, data)
            n = len(data)
        start += n
        count -= n


def _write(out, buf, src_fd, destination, ts):
    out = _coalesce(out)
    if destination is None:
        data = _join(buf, out)
        return RewriteResult(len(data), ts, data)
    owned = isinstance(destination, (str, os.PathLike))
    if owned:
        dst_fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    else:
        try:
            destination.flush()
            dst_fd = destination.fileno()
        except (AttributeError, OSError, ValueError):
            data = _join(buf, out)
            destination.write(data)
            return RewriteResult(len(data), ts, None)
    try:
        mv = memoryview(buf)
        total = 0
        pending = []
        for piece in out:
            if type(piece) is tuple:
                size = piece[1] - piece[0]
                if src_fd is not None and size >= BIG_RANGE:
                    if pending:
                        _writev_all(dst_fd, pending)
                        pending = []
                    _copy_range(src_fd, dst_fd, piece[0], size)
                else:
                    pending.append(mv[piece[0]:piece[1]])
            else:
                size = len(piece)
                pending.append(piece)
            total += size
        if pending:
            _writev_all(dst_fd, pending)
        del pending
        mv.release()
    finally:
        if owned:
            os.close(dst_fd)
        else:
            destination.seek(0, os.SEEK_END)
    return RewriteResult(total, ts, None)
