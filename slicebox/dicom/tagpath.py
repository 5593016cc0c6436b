"""Tag paths: addresses of (possibly nested) DICOM elements.

A tag path names an element by the chain of sequences and items that lead to
it, e.g. ``(0008,1115)[1].(0020,000E)`` is Series Instance UID in the first
item of Referenced Series Sequence. Item indices are 1-based as in Slicebox
2.0 and in the OpenAPI ``tagPathTag`` JSON; ``[*]`` matches every item.

The canonical in-memory form, consumed by the streaming engine, is
:class:`TagPath`: a tuple ``trunk`` of ``(sequence_tag, item)`` steps (``item``
``0`` means the wildcard) and a ``tag`` leaf. Keywords are accepted in place
of ``(gggg,eeee)`` when parsing (``ReferencedSeriesSequence[*].SeriesInstanceUID``).

The JSON shape (OpenAPI ``tagPathTag`` / ``tagPathTrunk``) is the leaf with a
chain of ``previous`` steps towards the root::

    {"tag": 2097166, "previous": {"tag": 528661, "item": "1"}}
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from slicebox.dicom.errors import DicomStreamError

__all__ = [
    "TagPath",
    "parse_tag",
    "format_tag",
    "parse_tag_path",
    "format_tag_path",
    "tag_path_from_json",
    "tag_path_to_json",
    "parse_tag_mask",
    "WILDCARD",
    "TagValue",
]

#: Item index meaning "every item" (``[*]``).
WILDCARD = 0

_TAG_RE = re.compile(r"\(?\s*([0-9A-Fa-f]{4})\s*,\s*([0-9A-Fa-f]{4})\s*\)?$")
_HEX8_RE = re.compile(r"[0-9A-Fa-f]{8}$")
_STEP_RE = re.compile(r"^(.*?)\[\s*(\*|\d+)\s*\]$")
_MASK_RE = re.compile(r"\(?\s*([0-9A-Fa-fxX]{4})\s*,\s*([0-9A-Fa-fxX]{4})\s*\)?$")


@dataclass(frozen=True)
class TagPath:
    """A path to an element: ``trunk`` steps ``(seq_tag, item)`` then ``tag``.

    Parameters
    ----------
    tag : int
        The leaf element's tag, ``0xGGGGEEEE``.
    trunk : tuple of (int, int)
        ``(sequence tag, item index)`` from the root inwards; item indices
        are 1-based, ``0`` (:data:`WILDCARD`) matches any item.
    """

    tag: int
    trunk: tuple = ()

    @property
    def depth(self) -> int:
        """Number of sequences between the root dataset and the leaf."""
        return len(self.trunk)

    def __str__(self) -> str:
        return format_tag_path(self)

    def matches(self, trunk: tuple, tag: int) -> bool:
        """True if the concrete element ``trunk``/``tag`` is addressed by this path."""
        if tag != self.tag or len(trunk) != len(self.trunk):
            return False
        for (st, si), (ct, ci) in zip(self.trunk, trunk):
            if st != ct or (si != WILDCARD and si != ci):
                return False
        return True


@dataclass(frozen=True)
class TagValue:
    """A value for the element at ``path`` (custom anonymization values, modifications)."""

    path: TagPath
    value: str

    def __iter__(self):
        # unpacks like the (path, value) pairs the edit plans iterate over
        return iter((self.path, self.value))


def parse_tag(text) -> int:
    """Parse ``(gggg,eeee)``, ``gggg,eeee``, ``GGGGEEEE``, a keyword or an int.

    Raises
    ------
    DicomStreamError
        If ``text`` names no tag.
    """
    if isinstance(text, int):
        if not 0 <= text <= 0xFFFFFFFF:
            raise DicomStreamError("tag out of range: %r" % text)
        return text
    s = str(text).strip()
    m = _TAG_RE.match(s)
    if m:
        return int(m.group(1), 16) << 16 | int(m.group(2), 16)
    if _HEX8_RE.match(s):
        return int(s, 16)
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(s)
    if tag is None:
        raise DicomStreamError("not a tag or keyword: %r" % text)
    return tag


def format_tag(tag: int) -> str:
    """Format a tag as ``(GGGG,EEEE)`` with upper-case hex digits."""
    return "(%04X,%04X)" % (tag >> 16, tag & 0xFFFF)


def parse_tag_path(text) -> TagPath:
    """Parse ``(0008,1115)[*].(0020,000E)`` (or a :class:`TagPath`, or an int tag).

    Raises
    ------
    DicomStreamError
        On malformed text, a missing ``[item]`` on a trunk step or item ``0``.
    """
    if isinstance(text, TagPath):
        return text
    if isinstance(text, int):
        return TagPath(parse_tag(text))
    parts = str(text).strip().split(".")
    if not parts or any(not p.strip() for p in parts):
        raise DicomStreamError("malformed tag path: %r" % text)
    trunk = []
    for part in parts[:-1]:
        m = _STEP_RE.match(part.strip())
        if not m:
            raise DicomStreamError("tag path step needs an item index: %r" % part)
        item = m.group(2)
        index = WILDCARD if item == "*" else int(item)
        if item != "*" and index < 1:
            raise DicomStreamError("item indices are 1-based: %r" % part)
        trunk.append((parse_tag(m.group(1)), index))
    if _STEP_RE.match(parts[-1].strip()):
        raise DicomStreamError("a tag path ends in a tag, not an item: %r" % text)
    return TagPath(parse_tag(parts[-1]), tuple(trunk))


def format_tag_path(path: TagPath) -> str:
    """Inverse of :func:`parse_tag_path` (always the ``(GGGG,EEEE)`` form)."""
    steps = [
        "%s[%s]" % (format_tag(t), "*" if i == WILDCARD else i) for t, i in path.trunk
    ]
    steps.append(format_tag(path.tag))
    return ".".join(steps)


def tag_path_to_json(path) -> dict:
    """Convert to the OpenAPI ``tagPathTag`` shape (leaf + ``previous`` chain)."""
    path = parse_tag_path(path)
    previous = None
    for tag, item in path.trunk:
        step = {"tag": tag, "item": "*" if item == WILDCARD else str(item)}
        if previous is not None:
            step["previous"] = previous
        previous = step
    out = {"tag": path.tag}
    if previous is not None:
        out["previous"] = previous
    return out


def tag_path_from_json(obj) -> TagPath:
    """Convert an OpenAPI ``tagPathTag`` dict to a :class:`TagPath`.

    Raises
    ------
    DicomStreamError
        If the shape is wrong (missing/invalid ``tag``, bad ``item``, a cycle
        or absurd depth).
    """
    if not isinstance(obj, dict) or not isinstance(obj.get("tag"), int):
        raise DicomStreamError("tagPathTag needs an integer 'tag'")
    leaf = parse_tag(obj["tag"])
    steps = []
    node = obj.get("previous")
    while node is not None:
        if len(steps) > 64 or not isinstance(node, dict):
            raise DicomStreamError("malformed tagPathTrunk")
        tag, item = node.get("tag"), str(node.get("item", ""))
        if not isinstance(tag, int):
            raise DicomStreamError("tagPathTrunk needs an integer 'tag'")
        if item == "*":
            index = WILDCARD
        elif item.isdigit() and int(item) >= 1:
            index = int(item)
        else:
            raise DicomStreamError("tagPathTrunk item must be '*' or >= 1: %r" % item)
        steps.append((parse_tag(tag), index))
        node = node.get("previous")
    return TagPath(leaf, tuple(reversed(steps)))


def parse_tag_mask(text) -> tuple:
    """Parse a mask such as ``(60xx,3000)`` into ``(mask, value)``.

    An element with tag ``t`` matches when ``t & mask == value``; each ``x``
    digit is a wildcard nibble (PS3.15 Table E.1-1 writes repeating groups
    this way).
    """
    m = _MASK_RE.match(str(text).strip())
    if not m:
        raise DicomStreamError("not a tag mask: %r" % text)
    digits = m.group(1) + m.group(2)
    mask = value = 0
    for ch in digits:
        mask <<= 4
        value <<= 4
        if ch not in "xX":
            mask |= 0xF
            value |= int(ch, 16)
    return mask, value
