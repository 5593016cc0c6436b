"""Tag paths: text form ``(0008,1110)[1].(0008,1155)`` and the spec's JSON form.

The text form is what keys store and CSV exports show; items are 1-based.  The
JSON form (spec ``tagPathTag`` / ``tagPathTrunk``) is a linked list from the
leaf back to the root: ``{"tag": 528725, "previous": {"tag": 528656, "item": "1"}}``.
"""
from __future__ import annotations

import re

_STEP = re.compile(r"\(([0-9A-Fa-f]{4}),([0-9A-Fa-f]{4})\)(?:\[(\d+|\*)\])?")


def parse_tag_path(text: str) -> list[tuple[int, str | None]]:
    """``'(0008,1110)[1].(0008,1155)'`` -> ``[(0x00081110, '1'), (0x00081155, None)]``.

    Raises
    ------
    ValueError
        If the text is not a tag path whose steps before the last carry an item.
    """
    steps: list[tuple[int, str | None]] = []
    for i, part in enumerate(text.strip().split(".")):
        match = _STEP.fullmatch(part.strip())
        if match is None:
            raise ValueError(f"not a tag path: {text!r}")
        steps.append((int(match.group(1) + match.group(2), 16), match.group(3)))
    if any(item is None for _, item in steps[:-1]) or steps[-1][1] is not None:
        raise ValueError(f"not a tag path ending in a tag: {text!r}")
    return steps


def format_tag_path(steps: list[tuple[int, str | None]]) -> str:
    out = []
    for tag, item in steps:
        step = f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
        out.append(step if item is None else f"{step}[{item}]")
    return ".".join(out)


def tag_path_to_json(text: str) -> dict | None:
    """The spec's ``tagPathTag`` object for a stored tag path (None if unparsable)."""
    try:
        steps = parse_tag_path(text)
    except ValueError:
        return None
    node: dict | None = None
    for tag, item in steps:
        current: dict = {"tag": tag}
        if item is not None:
            current["item"] = item
        if node is not None:
            current["previous"] = node
        node = current
    return node


def tag_path_from_json(obj: dict) -> str:
    """Inverse of :func:`tag_path_to_json`; raises ValueError on a malformed object."""
    steps: list[tuple[int, str | None]] = []
    node = obj
    leaf = True
    while node is not None:
        if not isinstance(node, dict) or not isinstance(node.get("tag"), int) or isinstance(node.get("tag"), bool):
            raise ValueError("a tag path needs an integer 'tag' at every step")
        item = node.get("item")
        if leaf and item is not None:
            raise ValueError("a tag path must end in a tag, not an item")
        if not leaf and item is None:
            raise ValueError("a tag path step before the last needs an 'item'")
        steps.append((node["tag"], None if item is None else str(item)))
        node = node.get("previous")
        leaf = False
    return format_tag_path(list(reversed(steps)))
