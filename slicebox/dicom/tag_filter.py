"""Tag filters (whitelist / blacklist of tag paths) as edit plans for the streaming engine.

A **blacklist** removes every element a listed path addresses (``[*]`` matches
every item; a listed sequence goes with all its items).  A **whitelist** keeps
an element when its path leads to a listed path (the sequences and items on the
way) or lies inside one (a listed sequence keeps all its content), and removes
everything else.  Both always keep what an image needs to be stored and shown
(:data:`REQUIRED_TAGS`: file meta information, the hierarchy UIDs, the Image
Pixel module of PS3.3 C.7.6.3 and the multi-frame pointers); file meta
information (group 0002) is never touched.
"""
from __future__ import annotations

from slicebox.dicom import tagstream
from slicebox.dicom.tagpath import WILDCARD, TagPath, parse_tag_path

WHITELIST, BLACKLIST = "WHITELIST", "BLACKLIST"

#: Root attributes no filter removes: without them an image cannot be indexed, stored or rendered.
REQUIRED_TAGS = frozenset([
    0x00080005,  # Specific Character Set (decoding of what remains)
    0x00080016, 0x00080018,  # SOP Class / Instance UID
    0x0020000D, 0x0020000E,  # Study / Series Instance UID
    # Image Pixel module (PS3.3 C.7.6.3) and multi-frame pointers (C.7.6.6)
    0x00280002, 0x00280004, 0x00280006, 0x00280008, 0x00280009, 0x00280010, 0x00280011,
    0x00280034, 0x00280100, 0x00280101, 0x00280102, 0x00280103, 0x00280106, 0x00280107,
    0x00281101, 0x00281102, 0x00281103, 0x00281199, 0x00281201, 0x00281202, 0x00281203,
    0x00281221, 0x00281222, 0x00281223, 0x00282000, 0x00282002,
    0x7FE00001, 0x7FE00002, 0x7FE00008, 0x7FE00009, 0x7FE00010,
])


def _steps(path: TagPath) -> list[tuple[int, int]]:
    """The path as (tag, item) steps from the root; the leaf has item None."""
    return list(path.trunk) + [(path.tag, None)]


def _step_matches(listed: tuple[int, int | None], concrete: tuple[int, int | None]) -> bool:
    if listed[0] != concrete[0]:
        return False
    if listed[1] is None or concrete[1] is None:
        return True
    return listed[1] == WILDCARD or listed[1] == concrete[1]


def whitelist_keeps(listed: list[TagPath], element: TagPath) -> bool:
    """True if a whitelist of ``listed`` paths keeps the concrete ``element``."""
    if not element.trunk and element.tag in REQUIRED_TAGS:
        return True
    c = _steps(element)
    for path in listed:
        p = _steps(path)
        n = min(len(c), len(p))
        if all(_step_matches(p[i], c[i]) for i in range(n)):
            # c leads to p (c is an ancestor or p itself), or lies inside p
            return True
    return False


def parse_paths(texts: list[str]) -> list[TagPath]:
    return [parse_tag_path(t) for t in texts]


def filter_plan(filter_type: str, paths: list[TagPath], source) -> tagstream.EditPlan | None:
    """The edit plan applying a filter to the dataset ``source`` (a path or bytes); None = no change.

    A whitelist that names nested paths lists the dataset's elements once
    (header only, pixel data is never read) to find the nested elements to drop.
    """
    plan = tagstream.EditPlan()
    if filter_type == BLACKLIST:
        targets = [p for p in paths
                   if not (p.tag >> 16 == 0x0002 and not p.trunk)
                   and not (not p.trunk and p.tag in REQUIRED_TAGS)]
        if not targets:
            return None
        for p in targets:
            plan.remove(p)
        return plan
    if filter_type != WHITELIST:
        raise ValueError(f"unknown filter type {filter_type!r}")
    roots = {(p.trunk[0][0] if p.trunk else p.tag) for p in paths}
    plan.keep_only(sorted(roots | REQUIRED_TAGS))
    whole = {p.tag for p in paths if not p.trunk}
    nested_roots = {p.trunk[0][0] for p in paths if p.trunk} - whole
    if nested_roots:
        # only the paths under the same root sequence can keep a nested element
        by_root: dict[int, list[TagPath]] = {}
        for p in paths:
            if p.trunk:
                by_root.setdefault(p.trunk[0][0], []).append(p)
        for record in tagstream.list_elements(source):
            if record.depth == 0:
                continue
            element = parse_tag_path(record.path)
            root = element.trunk[0][0]
            if root in nested_roots and not whitelist_keeps(by_root[root], element):
                plan.remove(element)
    return plan
