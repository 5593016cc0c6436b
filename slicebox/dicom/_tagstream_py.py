"""Pure-Python twin of the streaming DICOM engine (the reference behaviour).

The compiled module ``slicebox._speedups.tagstream`` (``ext/tagstream.pyx``)
implements the same functions with the same results; use them through the
selector :mod:`slicebox.dicom.tagstream`.

The engine works on encoded bytes, never on pydicom objects, and never
decodes pixel data. A source (bytes, a path, or a file object) is read in one
call when small, memory-mapped when large (files of :data:`MAP_THRESHOLD`
bytes or more: only the pages looked at are read, so memory stays flat in
file size), and walked element by element:

* :func:`read_attributes` decodes a chosen set of root-level attributes and
  stops at the first root element past the largest requested tag.
* :func:`list_elements` lists every element before Pixel Data, nested
  sequence content included, as :class:`ElementRecord` rows.
* :func:`rewrite` applies an :class:`EditPlan` in one pass and writes the
  result; unchanged byte ranges are copied as they are, and large ranges
  (pixel data) move from file to file with ``os.copy_file_range``.

Supported encodings: Part 10 files (preamble + file meta information, or
meta without preamble) and bare datasets with a given transfer syntax, in
explicit VR little endian, implicit VR little endian, explicit VR big endian,
deflated explicit VR little endian and every encapsulated syntax (fragments
are passed through untouched). Sequences and items of defined and undefined
length nest up to :data:`MAX_DEPTH` levels; a UN element of undefined length
is read as a sequence in implicit VR little endian (PS3.5 6.2.2).

Rewrite rules (PS3.5 7.1-7.5, PS3.10 7.1):

* group length elements ``(gggg,0000)`` are dropped (they are retired),
  except the file meta group length ``(0002,0000)`` which is recomputed;
* a sequence or item of defined length whose content changed gets its new
  length; undefined lengths stay undefined;
* new values are padded to even length (``\\0`` for UI and binary VRs, a space
  for text);
* when the root SOP Instance UID changes, Media Storage SOP Instance UID in
  the file meta information follows it;
* untouched elements keep their original bytes (and character set).

Every malformed input raises :class:`~slicebox.dicom.errors.DicomStreamError`
(truncation raises its subclass ``DicomTruncatedError``).
"""
from __future__ import annotations

import mmap
import os
import struct
import zlib
from collections import namedtuple

from slicebox.dicom.errors import DicomDepthError, DicomStreamError, DicomTruncatedError, InflateLimitError
from slicebox.dicom.tagpath import (
    TagPath,
    WILDCARD,
    format_tag,
    format_tag_path,
    parse_tag,
    parse_tag_mask,
    parse_tag_path,
)

__all__ = [
    "EditPlan",
    "ElementRecord",
    "Attribute",
    "RewriteResult",
    "read_attributes",
    "list_elements",
    "rewrite",
    "MAX_DEPTH",
    "set_limits",
    "check_deflated",
]

ITEM = 0xFFFEE000
ITEM_DELIM = 0xFFFEE00D
SEQ_DELIM = 0xFFFEE0DD
PIXEL_DATA = 0x7FE00010
SOP_INSTANCE_UID = 0x00080018
MEDIA_SOP_INSTANCE_UID = 0x00020003
SPECIFIC_CHARSET = 0x00080005
TRANSFER_SYNTAX = 0x00020010
UNDEFINED = 0xFFFFFFFF
#: Deepest sequence nesting accepted (deeper input is "absurd nesting"): items of
#: a root sequence are at depth 1.  Set with :func:`set_limits` (the box sets it
#: from ``SLICEBOX_MAX_SEQUENCE_DEPTH``).
MAX_DEPTH = 64
#: Largest inflated size accepted for deflated datasets (they are inflated in
#: memory).  Set with :func:`set_limits`.
MAX_INFLATED = 128 << 20
#: Zero bytes accepted after the end of a deflate stream (writers pad the file to even length).
DEFLATE_PADDING = 16
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


def set_limits(max_depth=None, max_inflated=None):
    """Set :data:`MAX_DEPTH` and/or :data:`MAX_INFLATED` for every later call (process-wide)."""
    global MAX_DEPTH, MAX_INFLATED
    if max_depth is not None:
        if not 1 <= int(max_depth) <= 1000:
            raise ValueError("max_depth must be between 1 and 1000")
        MAX_DEPTH = int(max_depth)
    if max_inflated is not None:
        if int(max_inflated) < 1:
            raise ValueError("max_inflated must be positive")
        MAX_INFLATED = int(max_inflated)


def _check_depth(depth):
    """Items about to be entered lie at ``depth + 1``: refuse past :data:`MAX_DEPTH`."""
    if depth >= MAX_DEPTH:
        raise DicomDepthError("sequences nested deeper than %d" % MAX_DEPTH)


# ---------------------------------------------------------------------------
# Edit plan
# ---------------------------------------------------------------------------


class EditPlan:
    """What :func:`rewrite` changes, collected before the one pass.

    Rules address elements by tag (any depth), by :class:`TagPath` or path
    string (exact position, ``[*]`` wildcards), or by mask. Precedence for an
    element: an insert of the same tag in the same dataset wins (it is an
    upsert); then removal (by tag, path, mask, private, or keep-only); then
    the replacement of a matching path; then a replacement by tag.

    Values (for :meth:`replace` and :meth:`insert`) may be ``bytes`` (used as
    they are, padded to even length), ``str`` (encoded with the dataset's
    Specific Character Set for LO/LT/PN/SH/ST/UC/UT, ASCII otherwise),
    numbers or lists of numbers for binary numeric VRs, or a callable taking
    the old encoded value (``bytes``; ``None`` for an insert of a new
    element) and returning one of those - e.g. a consistent UID mapping.
    An empty value on a sequence makes it an empty sequence.

    Examples
    --------
    >>> plan = (EditPlan().remove("(0010,1000)").remove_mask("(60xx,3000)")
    ...         .remove_private().replace("PatientName", "ANON")
    ...         .insert("(0012,0062)", "YES"))
    """

    def __init__(self):
        self._rules = []  # (TagPath or None-trunk marker, tag, action, value)
        self._masks = []
        self._private = False
        self._keep = None
        self._inserts = []  # (trunk pattern, tag, vr, value)
        self._compiled = None

    # -- builders (each returns self) ------------------------------------
    def remove(self, *targets):
        """Remove elements: ints/keywords/``(gggg,eeee)`` at any depth, paths exactly."""
        for target in targets:
            self._add_rule(target, REMOVE, None)
        return self

    def remove_mask(self, *masks):
        """Remove elements matching masks such as ``(60xx,3000)`` (any depth)."""
        for m in masks:
            self._masks.append(m if isinstance(m, tuple) else parse_tag_mask(m))
        self._compiled = None
        return self

    def remove_private(self, flag=True):
        """Remove every private element (odd group), creators included."""
        self._private = bool(flag)
        self._compiled = None
        return self

    def keep_only(self, tags):
        """Whitelist of root-level tags; other root elements are removed.

        File meta elements are never affected; kept sequences keep their
        content (subject to the other rules).
        """
        self._keep = frozenset(parse_tag(t) for t in tags)
        self._compiled = None
        return self

    def replace(self, target, value):
        """Replace the value of existing elements (a tag anywhere, or a path)."""
        self._add_rule(target, REPLACE, value)
        return self

    def insert(self, path, value, vr=None):
        """Insert (or overwrite) the element at ``path`` in its dataset.

        ``path``'s trunk names the item(s) to insert into (``[*]`` = every
        item of an existing sequence); items that do not exist are not
        created. ``vr`` defaults to the dictionary VR.
        """
        p = parse_tag_path(path)
        vr = vr or _dictionary_vr(p.tag)
        if vr == "UN" and p.tag >> 16 & 1 == 0 and isinstance(value, str):
            raise DicomStreamError("give a VR to insert unknown tag %s" % format_tag(p.tag))
        # Inserting the same path again replaces the earlier insert: one element, last value wins.
        self._inserts = [i for i in self._inserts if (i[0], i[1]) != (p.trunk, p.tag)]
        self._inserts.append((p.trunk, p.tag, vr, value))
        self._compiled = None
        return self

    def _add_rule(self, target, action, value):
        if isinstance(target, TagPath) or (isinstance(target, str) and ("." in target or "[" in target)):
            p = parse_tag_path(target)
            self._rules.append((p.trunk, p.tag, action, value))
        else:
            self._rules.append((None, parse_tag(target), action, value))
        self._compiled = None

    def compile(self):
        """Plain-data form consumed by both engines (cached).

        Returns a tuple ``(rules, masks, remove_private, keep_only, inserts)``:
        ``rules`` maps a leaf tag to ``[(trunk or None, action, value), ...]``
        ordered removes first, then path rules, then any-depth rules;
        ``inserts`` is a list of ``(trunk, tag, vr, value)`` sorted by tag.
        """
        if self._compiled is None:
            rules = {}
            for trunk, tag, action, value in self._rules:
                rules.setdefault(tag, []).append((trunk, action, value))
            for tag, lst in rules.items():
                lst.sort(key=lambda r: (r[1] != REMOVE, r[0] is None))
            inserts = sorted(self._inserts, key=lambda r: r[1])
            self._compiled = (rules, tuple(self._masks), self._private, self._keep, inserts)
        return self._compiled


# ---------------------------------------------------------------------------
# Sources and layout
# ---------------------------------------------------------------------------


class _Source:
    """A buffer over the input, with the file descriptor when it is a real file."""

    __slots__ = ("buf", "fd", "_mm", "_fd_owned", "complete")

    def __init__(self, buf, fd=None, mm=None, fd_owned=False, complete=True):
        self.buf, self.fd, self._mm, self._fd_owned, self.complete = buf, fd, mm, fd_owned, complete

    def close(self):
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:  # a view is still alive; GC will unmap it
                pass
        if self._fd_owned and self.fd is not None:
            os.close(self.fd)
        self.buf = self._mm = None


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


def _closed_after(data, fd):
    os.close(fd)
    return _Source(data)


def _map_fd(fd, owned):
    try:
        size = os.fstat(fd).st_size
        if size < MAP_THRESHOLD:
            # Small files: one read beats the page faults of a mapping.
            data = os.pread(fd, size, 0) if size else b""
            return _Source(data, None, None, False) if not owned else _closed_after(data, fd)
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
# The walker
# ---------------------------------------------------------------------------


class _Walker:
    """Walks one encoded buffer; ``out`` collects ``(start, end)`` ranges and bytes."""

    def __init__(self, buf, plan, complete=True):
        self.buf = buf
        self.n = len(buf)
        self.complete = complete
        if plan is not None:
            self.rules, self.masks, self.private, self.keep, self.inserts = plan
        else:
            self.rules, self.masks, self.private, self.keep, self.inserts = {}, (), False, None, []
        self.nested_inserts = any(t for t, _, _, _ in self.inserts)
        self.charset_raw = None
        self.new_sop = None

    # -- skipping ----------------------------------------------------------
    def skip_value(self, tag, vr, length, vpos, limit, enc, kind, depth):
        """End position of the element whose value starts at ``vpos``."""
        if length != UNDEFINED:
            end = vpos + length
            if end > limit:
                raise DicomTruncatedError("%s value runs past the end" % format_tag(tag))
            return end
        if kind == 3:
            return self.skip_fragments(vpos, limit, enc)
        _check_depth(depth)
        inner = ENC_IMPLICIT_LE if kind == 2 else enc
        pos = vpos
        while True:
            itag, _, ilen, ivpos = _header(self.buf, pos, limit, inner)
            if itag == SEQ_DELIM:
                return ivpos
            if itag != ITEM:
                raise DicomStreamError("expected an item in %s, found %s" % (format_tag(tag), format_tag(itag)))
            if ilen != UNDEFINED:
                pos = ivpos + ilen
                if pos > limit:
                    raise DicomTruncatedError("item runs past the end")
                continue
            pos = ivpos
            while True:
                etag, evr, elen, evpos = _header(self.buf, pos, limit, inner)
                if etag == ITEM_DELIM:
                    pos = evpos
                    break
                if etag >> 16 == 0xFFFE:
                    raise DicomStreamError("misplaced %s in item" % format_tag(etag))
                pos = self.skip_value(etag, evr, elen, evpos, limit, inner, _kind(etag, evr, elen, inner), depth + 1)

    def skip_fragments(self, pos, limit, enc):
        while True:
            itag, _, ilen, ivpos = _header(self.buf, pos, limit, ENC_IMPLICIT_LE if enc != ENC_EXPLICIT_BE else enc)
            if itag == SEQ_DELIM:
                return ivpos
            if itag != ITEM or ilen == UNDEFINED:
                raise DicomStreamError("bad fragment item %s" % format_tag(itag))
            pos = ivpos + ilen
            if pos > limit:
                raise DicomTruncatedError("fragment runs past the end")

    # -- decisions ---------------------------------------------------------
    def decide(self, tag, trunk, depth):
        action, value = 0, None
        entries = self.rules.get(tag)
        if entries is not None:
            for pattern, act, val in entries:
                if pattern is None or _trunk_matches(pattern, trunk):
                    action, value = act, val
                    break
        if action != REMOVE:
            if tag & 0xFFFF == 0:
                return REMOVE, None
            if self.private and tag >> 16 & 1:
                return REMOVE, None
            for mask, mval in self.masks:
                if tag & mask == mval:
                    return REMOVE, None
            if depth == 0 and self.keep is not None and tag not in self.keep:
                return REMOVE, None
        return action, value

    def inserts_for(self, trunk, depth):
        if depth and not self.nested_inserts:
            return ()
        return [
            (tag, vr, value)
            for pattern, tag, vr, value in self.inserts
            if _trunk_matches(pattern, trunk) and (depth or tag >> 16 != 2)
        ]

    # -- rewriting ---------------------------------------------------------
    def rw_dataset(self, pos, end, enc, trunk, depth, out):
        """Rewrite ``[pos, end)`` (``end`` -1: up to an item delimiter).

        Returns ``(position reached, bytes emitted)``; for ``end`` -1 the
        position is that of the item delimiter.
        """
        buf = self.buf
        limit = self.n if end < 0 else end
        pending = self.inserts_for(trunk, depth)
        pi, npend = 0, len(pending)
        total = 0
        while pos < limit:
            tag, vr, length, vpos = _header(buf, pos, limit, enc)
            if tag >> 16 == 0xFFFE:
                if tag == ITEM_DELIM and end < 0:
                    break
                raise DicomStreamError("misplaced %s at %d" % (format_tag(tag), pos))
            while pi < npend and pending[pi][0] < tag:
                total += self.emit_new(out, pending[pi], enc, None, depth)
                pi += 1
            kind = _kind(tag, vr, length, enc)
            if pi < npend and pending[pi][0] == tag:
                epos = self.skip_value(tag, vr, length, vpos, limit, enc, kind, depth)
                t, ivr, ival = pending[pi]
                old = bytes(buf[vpos:epos]) if kind == 0 else None
                total += self.emit_new(out, (t, vr.decode() if vr else ivr, ival), enc, old, depth)
                pi += 1
                pos = epos
                continue
            action, value = self.decide(tag, trunk, depth)
            if action == REMOVE:
                pos = self.skip_value(tag, vr, length, vpos, limit, enc, kind, depth)
                continue
            if action == REPLACE:
                epos = self.skip_value(tag, vr, length, vpos, limit, enc, kind, depth)
                evr = vr.decode() if vr else _dictionary_vr(tag)
                if kind in (1, 2):
                    evr = "SQ"
                old = bytes(buf[vpos:epos]) if kind == 0 else None
                total += self.emit_new(out, (tag, evr, value), enc, old, depth, vr)
                pos = epos
                continue
            if kind == 1 or kind == 2:
                _check_depth(depth)
                pos, n = self.rw_sequence(tag, vr, length, pos, vpos, limit, enc, kind, trunk, depth, out)
                total += n
                continue
            epos = self.skip_value(tag, vr, length, vpos, limit, enc, kind, depth)
            if depth == 0 and tag == SPECIFIC_CHARSET:
                self.charset_raw = bytes(buf[vpos:epos])
            out.append((pos, epos))
            total += epos - pos
            pos = epos
        else:
            if end < 0:
                raise DicomTruncatedError("item of undefined length has no delimiter")
        while pi < npend:
            total += self.emit_new(out, pending[pi], enc, None, depth)
            pi += 1
        return pos, total

    def rw_sequence(self, tag, vr, length, hpos, vpos, limit, enc, kind, trunk, depth, out):
        buf = self.buf
        inner = ENC_IMPLICIT_LE if kind == 2 else enc
        hidx = len(out)
        out.append(None)
        total = 0
        index = 0
        if length != UNDEFINED:
            send = vpos + length
            if send > limit:
                raise DicomTruncatedError("%s runs past the end" % format_tag(tag))
            limit = send
        pos = vpos
        while True:
            if length != UNDEFINED and pos >= limit:
                break
            itag, _, ilen, ivpos = _header(buf, pos, limit, inner)
            if itag == SEQ_DELIM and length == UNDEFINED:
                out.append((pos, ivpos))
                total += ivpos - pos
                pos = ivpos
                break
            if itag != ITEM:
                raise DicomStreamError("expected an item in %s, found %s" % (format_tag(tag), format_tag(itag)))
            index += 1
            iidx = len(out)
            out.append(None)
            item_trunk = trunk + ((tag, index),)
            if ilen == UNDEFINED:
                dpos, n = self.rw_dataset(ivpos, -1, inner, item_trunk, depth + 1, out)
                out[iidx] = (pos, ivpos)
                out.append((dpos, dpos + 8))
                total += 16 + n
                pos = dpos + 8
            else:
                iend = ivpos + ilen
                if iend > limit:
                    raise DicomTruncatedError("item runs past the end of %s" % format_tag(tag))
                _, n = self.rw_dataset(ivpos, iend, inner, item_trunk, depth + 1, out)
                out[iidx] = (pos, ivpos) if n == ilen else _make_header(ITEM, None, n, inner)
                total += 8 + n
                pos = iend
        if length == UNDEFINED or total == length:
            out[hidx] = (hpos, vpos)
        else:
            out[hidx] = _make_header(tag, vr, total, enc)
        return pos, vpos - hpos + total

    def emit_new(self, out, item, enc, old, depth, raw_vr=None):
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

    # -- checking ----------------------------------------------------------
    def check_value(self, tag, vr, length, vpos, limit, enc, kind, depth):
        """End of the element at ``vpos``, after walking every sequence inside it.

        Unlike :meth:`skip_value` this also enters sequences of defined length
        (their nesting is counted), and a UN element of defined length whose tag
        the dictionary knows as a sequence (pydicom reads it as one).
        """
        if kind == 1 or kind == 2:
            _check_depth(depth)
            return self.check_items(tag, length, vpos, limit, ENC_IMPLICIT_LE if kind == 2 else enc, depth)
        end = self.skip_value(tag, vr, length, vpos, limit, enc, kind, depth)
        if kind == 0 and vr == b"UN" and length >= 8 and tag in _sq_tags():
            try:
                _check_depth(depth)
                self.check_items(tag, length, vpos, end, ENC_IMPLICIT_LE, depth)
            except DicomDepthError:
                raise
            except DicomStreamError:
                pass  # opaque bytes after all: readers keep them as bytes too
        return end

    def check_items(self, tag, length, vpos, limit, inner, depth):
        if length != UNDEFINED:
            if vpos + length > limit:
                raise DicomTruncatedError("%s runs past the end" % format_tag(tag))
            limit = vpos + length
        pos = vpos
        while True:
            if length != UNDEFINED and pos >= limit:
                return limit
            itag, _, ilen, ivpos = _header(self.buf, pos, limit, inner)
            if itag == SEQ_DELIM:
                return ivpos if length == UNDEFINED else limit
            if itag != ITEM:
                raise DicomStreamError("expected an item in %s, found %s" % (format_tag(tag), format_tag(itag)))
            if ilen == UNDEFINED:
                pos = self.check_dataset(ivpos, -1, limit, inner, depth + 1)
            else:
                iend = ivpos + ilen
                if iend > limit:
                    raise DicomTruncatedError("item runs past the end of %s" % format_tag(tag))
                self.check_dataset(ivpos, iend, iend, inner, depth + 1)
                pos = iend

    def check_dataset(self, pos, end, limit, enc, depth):
        """Walk ``[pos, end)`` (``end`` -1: up to an item delimiter, within ``limit``)."""
        buf = self.buf
        while pos < limit:
            tag, vr, length, vpos = _header(buf, pos, limit, enc)
            if tag >> 16 == 0xFFFE:
                if tag == ITEM_DELIM and end < 0:
                    return vpos
                raise DicomStreamError("misplaced %s at %d" % (format_tag(tag), pos))
            pos = self.check_value(tag, vr, length, vpos, limit, enc, _kind(tag, vr, length, enc), depth)
        if end < 0:
            raise DicomTruncatedError("item of undefined length has no delimiter")
        return pos

    # -- reading -----------------------------------------------------------
    def read_dataset(self, pos, end, enc, depth, wanted, stop, result):
        buf = self.buf
        limit = self.n if end < 0 else end
        while pos < limit:
            tag, vr, length, vpos = _header(buf, pos, limit, enc)
            if tag >> 16 == 0xFFFE:
                if tag == ITEM_DELIM and end < 0:
                    return vpos
                raise DicomStreamError("misplaced %s at %d" % (format_tag(tag), pos))
            if tag > stop:
                return pos
            kind = _kind(tag, vr, length, enc)
            epos = self.skip_value(tag, vr, length, vpos, limit, enc, kind, depth)
            if depth == 0 and tag == SPECIFIC_CHARSET:
                self.charset_raw = bytes(buf[vpos:epos])
            if wanted is None or tag in wanted:
                svr = vr.decode() if vr else ("SQ" if kind == 1 else _dictionary_vr(tag))
                if kind in (1, 2):
                    value = self.read_items(vpos, length, epos, enc, kind, depth)
                    svr = "SQ" if vr is None else svr
                elif kind == 3:
                    value = bytes(buf[vpos:epos - 8])
                else:
                    value = _decode_value(buf[vpos:epos], svr, enc, self.charset_raw)
                result[tag] = Attribute(svr, value)
            pos = epos
        if end < 0:
            raise DicomTruncatedError("item of undefined length has no delimiter")
        if depth == 0 and not self.complete:
            raise DicomTruncatedError("need more data")
        return pos

    def read_items(self, vpos, length, epos, enc, kind, depth):
        _check_depth(depth)
        inner = ENC_IMPLICIT_LE if kind == 2 else enc
        items = []
        pos = vpos
        limit = epos
        while pos < limit:
            itag, _, ilen, ivpos = _header(self.buf, pos, limit, inner)
            if itag == SEQ_DELIM:
                break
            item = {}
            if ilen != UNDEFINED and ivpos + ilen > limit:
                raise DicomTruncatedError("item runs past the end of its sequence")
            if ilen == UNDEFINED:
                pos = self.read_dataset(ivpos, -1, inner, depth + 1, None, UNDEFINED, item)
            else:
                self.read_dataset(ivpos, ivpos + ilen, inner, depth + 1, None, UNDEFINED, item)
                pos = ivpos + ilen
            items.append(item)
        return items

    def list_dataset(self, pos, end, enc, trunk, depth, rows):
        buf = self.buf
        limit = self.n if end < 0 else end
        while pos < limit:
            tag, vr, length, vpos = _header(buf, pos, limit, enc)
            if tag >> 16 == 0xFFFE:
                if tag == ITEM_DELIM and end < 0:
                    return vpos
                raise DicomStreamError("misplaced %s at %d" % (format_tag(tag), pos))
            if depth == 0 and tag == PIXEL_DATA:
                return pos
            kind = _kind(tag, vr, length, enc)
            epos = self.skip_value(tag, vr, length, vpos, limit, enc, kind, depth)
            if depth == 0 and tag == SPECIFIC_CHARSET:
                self.charset_raw = bytes(buf[vpos:epos])
            path = format_tag_path(TagPath(tag, trunk))
            svr = vr.decode() if vr else ("SQ" if kind == 1 else _dictionary_vr(tag))
            slen = -1 if length == UNDEFINED else length
            if kind in (1, 2):
                rows.append(ElementRecord(path, tag, _keyword(tag), "SQ" if vr is None else svr, slen, 0, "", depth))
                self.list_items(tag, vpos, epos, enc, kind, trunk, depth, rows)
            elif kind == 3:
                rows.append(ElementRecord(path, tag, _keyword(tag), svr, -1, 1, "< Fragments >", depth))
            else:
                if svr in BULK_VRS and length > 20:
                    text, vm = "< Binary data >", 1
                else:
                    value = _decode_value(buf[vpos:epos], svr, enc, self.charset_raw)
                    text, vm = _display(value, svr, length)
                rows.append(ElementRecord(path, tag, _keyword(tag), svr, slen, vm, text, depth))
            pos = epos
        if end < 0:
            raise DicomTruncatedError("item of undefined length has no delimiter")
        return pos

    def list_items(self, tag, vpos, epos, enc, kind, trunk, depth, rows):
        _check_depth(depth)
        inner = ENC_IMPLICIT_LE if kind == 2 else enc
        pos, index = vpos, 0
        while pos < epos:
            itag, _, ilen, ivpos = _header(self.buf, pos, epos, inner)
            if itag == SEQ_DELIM:
                break
            index += 1
            sub = trunk + ((tag, index),)
            if ilen != UNDEFINED and ivpos + ilen > epos:
                raise DicomTruncatedError("item runs past the end of its sequence")
            if ilen == UNDEFINED:
                pos = self.list_dataset(ivpos, -1, inner, sub, depth + 1, rows)
            else:
                self.list_dataset(ivpos, ivpos + ilen, inner, sub, depth + 1, rows)
                pos = ivpos + ilen


# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------


def _inflate(data):
    """The inflated dataset: at most :data:`MAX_INFLATED` bytes, a complete stream, no trailing garbage."""
    d = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = d.decompress(data, MAX_INFLATED)
        if d.unconsumed_tail or (not d.eof and d.decompress(b"", 1)):
            raise InflateLimitError("deflated dataset larger than %d bytes" % MAX_INFLATED)
    except zlib.error as exc:
        raise DicomStreamError("bad deflated data: %s" % exc) from exc
    if not d.eof:
        raise DicomTruncatedError("deflated data ends before its final block")
    rest = d.unused_data
    if rest and not _trailer_ok(rest, lambda: zlib.crc32(out), len(out)):
        raise DicomStreamError("%d bytes of garbage after the deflated data" % len(rest))
    return out


def _trailer_ok(rest, crc, size):
    """What may follow a deflate stream: zero padding, after an optional gzip-style trailer.

    Some writers append CRC-32 and size (8 bytes, as gzip does); pydicom's
    own ``image_dfl.dcm`` is one.  ``crc`` is called only when needed.
    """
    if len(rest) >= 8 and rest[:8].strip(b"\0") and struct.unpack("<II", rest[:8]) == (crc(), size & 0xFFFFFFFF):
        rest = rest[8:]
    return len(rest) <= DEFLATE_PADDING and not rest.strip(b"\0")


def check_deflated(source, max_size=None, max_ratio=None, free_size=16 << 20):
    """Inflate a deflated-syntax file's dataset chunk by chunk (nothing kept), refusing early.

    A no-op for other transfer syntaxes.  The inflated size may not pass
    ``max_size`` (default :data:`MAX_INFLATED`), nor ``max_ratio`` times the
    compressed size once past ``free_size`` bytes; the stream must end with
    its final block and be followed by nothing but a few zero bytes of padding.
    Memory stays at a chunk, whatever the file claims.

    Raises
    ------
    DicomStreamError
        Bad, incomplete or trailing data; ``InflateLimitError`` (a subclass)
        past a limit.
    """
    max_size = MAX_INFLATED if max_size is None else int(max_size)
    if isinstance(source, (str, os.PathLike)):
        # The file meta information alone says whether there is anything to do.
        try:
            with open(source, "rb") as fh:
                head = fh.read(1 << 16)
            if not _layout(head, None).deflated:
                return
        except DicomTruncatedError:
            pass  # a file meta group past 64 KiB: look at the whole file
        except OSError as exc:
            raise DicomStreamError("cannot read %s: %s" % (source, exc)) from exc
    src = _open_source(source)
    try:
        buf = src.buf
        lay = _layout(buf, None)
        if not lay.deflated:
            return
        compressed = len(buf) - lay.meta_end
        allowed = max_size
        if max_ratio is not None:
            allowed = min(allowed, max(free_size, int(max_ratio * compressed)))
        d = zlib.decompressobj(-zlib.MAX_WBITS)
        total, crc, pos, step = 0, 0, lay.meta_end, 1 << 16
        mv = memoryview(buf)
        try:
            while pos < len(buf) and not d.eof:
                data = bytes(mv[pos:pos + step])
                pos += len(data)
                while data and not d.eof:
                    out = d.decompress(data, 1 << 20)
                    total += len(out)
                    if total > allowed:
                        raise InflateLimitError(
                            "deflated dataset inflates to more than %d bytes (from %d compressed)"
                            % (allowed, compressed))
                    crc = zlib.crc32(out, crc)
                    data = d.unconsumed_tail
            if not d.eof:
                raise DicomTruncatedError("deflated data ends before its final block")
            trailing = len(d.unused_data) + len(buf) - pos
            if trailing and (trailing > DEFLATE_PADDING + 8
                             or not _trailer_ok(bytes(d.unused_data) + bytes(mv[pos:]), lambda: crc, total)):
                raise DicomStreamError("%d bytes of garbage after the deflated data" % trailing)
        except zlib.error as exc:
            raise DicomStreamError("bad deflated data: %s" % exc) from exc
        finally:
            mv.release()
    finally:
        src.close()


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


def check_complete(source, transfer_syntax=None):
    """Walk every root element header to the end of the data without decoding values.

    Raises :class:`DicomStreamError` (``DicomTruncatedError`` when data is
    missing) if an element's length runs past the end, a sequence or the pixel
    data fragments lack their delimiters, or garbage follows.  Files are
    memory-mapped, so only the pages holding element headers are touched:
    the pixel data of a large file is never read.  Ingest uses this after its
    early-stopping header read, so a file cut short inside its pixel data is
    refused instead of stored.
    """
    src = _open_source(source)
    try:
        buf = src.buf
        lay = _layout(buf, transfer_syntax)
        if lay.deflated:
            walker = _Walker(_inflate(bytes(buf[lay.meta_end:])), None, True)
            start = 0
        else:
            walker = _Walker(buf, None, True)
            start = lay.meta_end
        data = walker.buf  # the inflated dataset for deflated syntax
        pos, limit = start, walker.n
        while pos < limit:
            rest = limit - pos
            # Devices sometimes pad a file with a few zero bytes: too short for
            # an element, or all zero; that is padding, not a cut.
            if rest < 8 or (rest <= 1024 and not any(bytes(data[pos:limit]))):
                break
            tag, vr, length, vpos = _header(data, pos, limit, lay.enc)
            if tag >> 16 == 0xFFFE:
                raise DicomStreamError("misplaced %s at %d" % (format_tag(tag), pos))
            kind = _kind(tag, vr, length, lay.enc)
            pos = walker.check_value(tag, vr, length, vpos, limit, lay.enc, kind, 0)
    finally:
        src.close()


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
            if merged and type(merged[-1]) is tuple and merged[-1][1] == piece[0]:
                merged[-1] = (merged[-1][0], piece[1])
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
