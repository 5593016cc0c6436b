"""Series type rule matching on a dataset's attributes (pure; the engine reads them).

A rule attribute names an element by ``group``/``element`` and an optional
``path`` of sequence steps leading to it (``(0008,1115)[1]``, ``[*]`` or a bare
sequence tag for any item; Slicebox 2.0's comma-separated decimal sequence
tags are read as item 1).  It matches when the element's value, as text (text
values with padding stripped; numbers in their shortest form; several values
joined by ``\\``), equals the rule's value exactly; several values may also be
written joined by ``,`` as Slicebox 2.0 did.  A missing element has the value
``""``.  A rule matches when all its attributes match; a rule without
attributes matches nothing.
"""
from __future__ import annotations

import re

from slicebox.dicom.tagpath import WILDCARD, parse_tag

_DECIMAL_PATH = re.compile(r"^\d+(,\d+)*$")
_STEP = re.compile(r"^(.*?)(?:\[\s*(\*|\d+)\s*\])?$")


def parse_trunk(path: str) -> tuple[tuple[int, int], ...]:
    """The sequence steps ``((tag, item), ...)`` of a rule attribute's path (item 0 = any).

    Raises ValueError (or the tag parser's DicomStreamError) when malformed.
    """
    path = (path or "").strip()
    if not path:
        return ()
    if _DECIMAL_PATH.match(path):
        return tuple((int(t), 1) for t in path.split(","))
    steps = []
    for part in path.split("."):
        m = _STEP.match(part.strip())
        if not m or not m.group(1).strip():
            raise ValueError(f"malformed path step {part!r}")
        item = m.group(2)
        index = WILDCARD if item in (None, "*") else int(item)
        if item not in (None, "*") and index < 1:
            raise ValueError("item indices are 1-based")
        steps.append((parse_tag(m.group(1).strip()), index))
    if len(steps) > 16:
        raise ValueError("a path has at most 16 steps")
    return tuple(steps)


def as_text(value) -> str:
    """An engine-decoded value as rule text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).rstrip(b"\0 ").decode("latin-1")
    if isinstance(value, float):
        return repr(value) if not value.is_integer() else str(int(value))
    if isinstance(value, (list, tuple)):
        return "\\".join(as_text(v) for v in value)
    return str(value)


def values_at(attributes: dict, trunk: tuple, tag: int) -> list[str]:
    """Every value of ``tag`` reached through ``trunk`` in engine-read ``attributes`` ({tag: Attribute})."""
    datasets = [attributes]
    for seq_tag, item in trunk:
        nxt = []
        for ds in datasets:
            attr = ds.get(seq_tag)
            items = attr.value if attr is not None and isinstance(attr.value, list) else []
            if item == WILDCARD:
                nxt.extend(i for i in items if isinstance(i, dict))
            elif 1 <= item <= len(items) and isinstance(items[item - 1], dict):
                nxt.append(items[item - 1])
        datasets = nxt
    out = []
    for ds in datasets:
        attr = ds.get(tag)
        out.append("" if attr is None else as_text(attr.value))
    return out or [""]


def attribute_matches(attributes: dict, trunk: tuple, tag: int, wanted: str) -> bool:
    for text in values_at(attributes, trunk, tag):
        if text == wanted or ("\\" in text and text.replace("\\", ",") == wanted):
            return True
    return False
