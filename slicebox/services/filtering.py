"""Tag filters: which attributes of the data from a source are kept (ingest step 2).

A filter is a WHITELIST or a BLACKLIST of tag paths (``[*]`` wildcards for
sequence items); a source (user, box, SCP, directory watch, import session)
has at most one.  :func:`filter_step` applies it with the streaming engine to
every dataset from that source before it is indexed or stored (after
re-identification, see services/ingest.py); what storage needs is always kept (see :mod:`slicebox.dicom.tag_filter`).
"""
from __future__ import annotations

import logging

from slicebox.context import Services
from slicebox.db import IntegrityError
from slicebox.db import filtering as repo
from slicebox.dicom import parsing, tagstream
from slicebox.dicom.errors import DicomStreamError
from slicebox.dicom.tag_filter import filter_plan, parse_paths
from slicebox.dicom.tagpath import TagPath, format_tag_path
from slicebox.errors import BadRequest, InvalidDicom, NotFound
from slicebox.models import DicomIdentity, Page, Source, SourceTagFilter, TagFilter, TagFilterPath
from slicebox.storage.tempfiles import discard, new_temp_path

logger = logging.getLogger(__name__)

#: Most tag paths one filter may hold (hostile input stays bounded).
MAX_TAG_PATHS = 2_000


# -- filters ----------------------------------------------------------------------------
def list_filters(services: Services, page: Page) -> list[TagFilter]:
    with services.db.connection() as conn:
        return repo.list_filters(conn, page.start_index, page.count)


def upsert_filter(services: Services, name: str, filter_type: str,
                  tag_paths: tuple[TagPath, ...] | None = None) -> TagFilter:
    """Insert a filter, or update the one with the same name (its type; its tag paths when given)."""
    if tag_paths is not None and len(tag_paths) > MAX_TAG_PATHS:
        raise BadRequest(f"a filter holds at most {MAX_TAG_PATHS} tag paths")
    texts = None if tag_paths is None else [format_tag_path(p) for p in tag_paths]
    with services.db.transaction() as conn:
        existing = repo.get_filter_by_name(conn, name)
        if existing is None:
            try:
                filter_id = repo.insert_filter(conn, name, filter_type)
            except IntegrityError:
                raise BadRequest(f"a filter named {name!r} was created at the same time") from None
        else:
            filter_id = existing.id
            repo.set_filter_type(conn, filter_id, filter_type)
            if texts is not None:
                repo.delete_tag_paths(conn, filter_id)
        for text in texts or ():
            repo.add_tag_path(conn, filter_id, text)
        return repo.get_filter(conn, filter_id)


def delete_filter(services: Services, filter_id: int) -> None:
    """Delete a filter with its tag paths and associations (unknown ids are fine)."""
    with services.db.transaction() as conn:
        repo.delete_filter(conn, filter_id)


def _filter_or_404(conn, filter_id: int) -> TagFilter:
    tag_filter = repo.get_filter(conn, filter_id)
    if tag_filter is None:
        raise NotFound(f"filter {filter_id} not found")
    return tag_filter


def list_tag_paths(services: Services, filter_id: int) -> list[TagFilterPath]:
    with services.db.connection() as conn:
        return list(_filter_or_404(conn, filter_id).tag_paths)


def add_tag_path(services: Services, filter_id: int, path: TagPath) -> TagFilterPath:
    with services.db.transaction() as conn:
        tag_filter = _filter_or_404(conn, filter_id)
        if len(tag_filter.tag_paths) >= MAX_TAG_PATHS:
            raise BadRequest(f"a filter holds at most {MAX_TAG_PATHS} tag paths")
        return repo.add_tag_path(conn, filter_id, format_tag_path(path))


def delete_tag_path(services: Services, filter_id: int, tag_path_id: int) -> None:
    with services.db.transaction() as conn:
        repo.delete_tag_path(conn, filter_id, tag_path_id)


# -- associations -------------------------------------------------------------------------
def list_associations(services: Services, page: Page) -> list[SourceTagFilter]:
    with services.db.connection() as conn:
        return repo.list_associations(conn, page.start_index, page.count)


def existing_source(conn, source_type: str, source_id: int) -> Source:
    """The source with its current name; 404 when it does not exist."""
    if source_type not in repo.SOURCE_TYPES_WITH_TABLES:
        raise BadRequest(f"sourceType must be one of {', '.join(repo.SOURCE_TYPES_WITH_TABLES)}")
    name = repo.source_name(conn, source_type, source_id)
    if name is None:
        raise NotFound(f"no {source_type} source with id {source_id}")
    return Source(type=source_type, name=name, id=source_id)


def upsert_association(services: Services, source_ref: tuple[str, int], filter_id: int) -> SourceTagFilter:
    """Associate a filter with a source, replacing the source's previous filter."""
    with services.db.transaction() as conn:
        source = existing_source(conn, *source_ref)
        _filter_or_404(conn, filter_id)
        return repo.upsert_association(conn, source, filter_id)


def delete_association(services: Services, assoc_id: int) -> None:
    with services.db.transaction() as conn:
        repo.delete_association(conn, assoc_id)


def purge_orphans(services: Services) -> int:
    """Drop associations of sources that were deleted (a periodic sweep; ids are never reused)."""
    with services.db.transaction() as conn:
        return repo.delete_orphaned_associations(conn)


# -- ingest step 2 ------------------------------------------------------------------------
def filter_step(services: Services, path: str, ident: DicomIdentity,
                source: Source) -> tuple[str, DicomIdentity]:
    """Apply the source's filter to the spooled dataset at ``path`` (consumed when replaced)."""
    with services.db.connection() as conn:
        found = repo.filter_of_source(conn, source.type, source.id)
    if found is None:
        return path, ident
    filter_type, texts = found
    try:
        plan = filter_plan(filter_type, parse_paths(texts), path)
    except DicomStreamError as exc:
        raise InvalidDicom(f"malformed DICOM: {exc}") from None
    if plan is None:
        return path, ident
    out = new_temp_path(services.storage)
    try:
        tagstream.rewrite(path, out, plan=plan)
        new_ident = parsing.read_identity(out)
    except DicomStreamError as exc:
        discard(out)
        raise InvalidDicom(f"malformed DICOM: {exc}") from None
    except BaseException:
        discard(out)
        raise
    discard(path)
    return out, new_ident
