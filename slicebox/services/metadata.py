"""Meta Data: browse and query the DICOM hierarchy, series tags, series types on series.

Listings and ``/query`` bodies are validated here and turned into one
:class:`querybuild.ListSpec`; the database layer checks property names against
its whitelist.  Series filters (sources, series types, series tags) are OR
within a kind and AND across kinds, evaluated per series; a patient or study
matches when at least one of its series does.
"""
from __future__ import annotations

import logging

from slicebox.context import Services
from slicebox.db import IntegrityError
from slicebox.db import metadata as repo
from slicebox.db.querybuild import Condition, ListSpec, SeriesFilters
from slicebox.errors import BadRequest, NotFound
from slicebox.models import (SOURCE_TYPES, FlatSeries, Image, Page, Patient, Series, SeriesTag,
                             SeriesType, Source, Study)

logger = logging.getLogger(__name__)

MAX_COUNT = 10_000
MAX_TAG_NAME = 255


# -- parsing of filters and query bodies ----------------------------------------------

def parse_sources(raw: str | None) -> tuple[tuple[str, int], ...]:
    """``box:1,user:5`` -> (("box", 1), ("user", 5)); anything else is a 400."""
    if raw is None or raw.strip() == "":
        return ()
    pairs = []
    for part in raw.split(","):
        kind, sep, ident = part.strip().partition(":")
        kind = kind.strip().lower()
        if not sep or kind not in SOURCE_TYPES or not _is_int(ident.strip()):
            raise BadRequest(
                f"malformed sources {raw[:80]!r}: expected TYPE:ID pairs separated by commas, "
                f"TYPE one of {', '.join(SOURCE_TYPES)}, e.g. sources=box:1,user:5")
        pairs.append((kind, int(ident)))
    return tuple(pairs)


def parse_ids(raw: str | None, name: str) -> tuple[int, ...]:
    """``3,7,22`` -> (3, 7, 22); anything else is a 400."""
    if raw is None or raw.strip() == "":
        return ()
    parts = [p.strip() for p in raw.split(",")]
    if not all(_is_int(p) for p in parts):
        raise BadRequest(f"malformed {name} {raw[:80]!r}: expected comma-separated integer ids")
    return tuple(int(p) for p in parts)


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit() and len(text) <= 18


def series_filters(sources: str | None = None, series_types: str | None = None,
                   series_tags: str | None = None) -> SeriesFilters:
    """Filters from the ``sources``, ``seriestypes`` and ``seriestags`` query parameters."""
    return SeriesFilters(parse_sources(sources), parse_ids(series_types, "seriestypes"),
                         parse_ids(series_tags, "seriestags"))


def _int_field(body: dict, name: str, required: bool = True, default: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequest(f"query needs an integer {name}")
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadRequest(f"{name} must be a non-negative integer")
    return value


def _id_list(value, name: str) -> tuple[int, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(i, int) and not isinstance(i, bool)
                                              for i in value):
        raise BadRequest(f"{name} must be an array of integer ids")
    return tuple(value)


def parse_query(body: dict) -> ListSpec:
    """The spec's ``query`` object -> ListSpec (400 on any malformed part)."""
    if not isinstance(body, dict):
        raise BadRequest("query must be a JSON object")
    start = _int_field(body, "startIndex")
    count = _int_field(body, "count")
    if count > MAX_COUNT:
        raise BadRequest(f"count must be at most {MAX_COUNT}")
    order_by, ascending = None, True
    order = body.get("order")
    if order is not None:
        if not isinstance(order, dict):
            raise BadRequest("order must be an object {orderBy, orderAscending}")
        order_by = order.get("orderBy")
        if order_by is not None and not isinstance(order_by, str):
            raise BadRequest("order.orderBy must be a string")
        ascending = order.get("orderAscending", True)
        if not isinstance(ascending, bool):
            raise BadRequest("order.orderAscending must be true or false")
    props = body.get("queryProperties")
    if not isinstance(props, list):
        raise BadRequest("query needs queryProperties, an array of {propertyName, operator, propertyValue}")
    conditions = []
    for prop in props:
        if not isinstance(prop, dict):
            raise BadRequest("each query property must be an object {propertyName, operator, propertyValue}")
        name, op, value = prop.get("propertyName"), prop.get("operator"), prop.get("propertyValue")
        if not isinstance(name, str) or not name:
            raise BadRequest("query property needs a propertyName")
        if not isinstance(op, str) or op.lower() not in ("=", "like"):
            raise BadRequest(f"unknown operator {str(op)[:20]!r} for property {name[:60]!r}; use = or like")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise BadRequest(f"query property {name[:60]!r} needs a string propertyValue")
        conditions.append(Condition(name, op.lower(), value if isinstance(value, str) else str(value)))
    filters = SeriesFilters()
    raw_filters = body.get("filters")
    if raw_filters is not None:
        if not isinstance(raw_filters, dict):
            raise BadRequest("filters must be an object {sourceRefs, seriesTypeIds, seriesTagIds}")
        refs = raw_filters.get("sourceRefs") or []
        if not isinstance(refs, list):
            raise BadRequest("filters.sourceRefs must be an array of {sourceType, sourceId}")
        sources = []
        for ref in refs:
            kind = ref.get("sourceType") if isinstance(ref, dict) else None
            ident = ref.get("sourceId") if isinstance(ref, dict) else None
            if (not isinstance(kind, str) or kind.lower() not in SOURCE_TYPES
                    or not isinstance(ident, int) or isinstance(ident, bool)):
                raise BadRequest(f"malformed source ref {str(ref)[:80]}: expected "
                                 f"{{sourceType: one of {', '.join(SOURCE_TYPES)}, sourceId: integer}}")
            sources.append((kind.lower(), ident))
        filters = SeriesFilters(tuple(sources),
                                _id_list(raw_filters.get("seriesTypeIds"), "filters.seriesTypeIds"),
                                _id_list(raw_filters.get("seriesTagIds"), "filters.seriesTagIds"))
    return ListSpec(start_index=start, count=count, order_by=order_by, ascending=ascending,
                    conditions=tuple(conditions), filters=filters)


# -- listings -----------------------------------------------------------------------

def _list(services: Services, level: str, page: Page, parent: Condition | None, order_by: str | None,
          ascending: bool, text: str | None, filters: SeriesFilters) -> list:
    spec = ListSpec(start_index=page.start_index, count=page.count, order_by=order_by or None,
                    ascending=ascending, text=text or None,
                    conditions=(parent,) if parent is not None else (), filters=filters)
    with services.db.connection() as conn:
        return repo.list_level(conn, level, spec)


def list_patients(services: Services, page: Page, order_by: str | None = None, ascending: bool = True,
                  text: str | None = None, filters: SeriesFilters = SeriesFilters()) -> list[Patient]:
    """A page of patients."""
    return _list(services, "patients", page, None, order_by, ascending, text, filters)


def list_studies(services: Services, patient_id: int, page: Page, order_by: str | None = None,
                 ascending: bool = True, text: str | None = None,
                 filters: SeriesFilters = SeriesFilters()) -> list[Study]:
    """A page of the studies of a patient."""
    return _list(services, "studies", page, Condition("patientId", "=", patient_id), order_by,
                 ascending, text, filters)


def list_series(services: Services, study_id: int, page: Page, order_by: str | None = None,
                ascending: bool = True, text: str | None = None,
                filters: SeriesFilters = SeriesFilters()) -> list[Series]:
    """A page of the series of a study."""
    return _list(services, "series", page, Condition("studyId", "=", study_id), order_by,
                 ascending, text, filters)


def list_images(services: Services, series_id: int, page: Page, order_by: str | None = None,
                ascending: bool = True, text: str | None = None,
                filters: SeriesFilters = SeriesFilters()) -> list[Image]:
    """A page of the images of a series."""
    return _list(services, "images", page, Condition("seriesId", "=", series_id), order_by,
                 ascending, text, filters)


def list_flat_series(services: Services, page: Page, order_by: str | None = None, ascending: bool = True,
                     text: str | None = None, filters: SeriesFilters = SeriesFilters()) -> list[FlatSeries]:
    """A page of series, each with its study and patient."""
    return _list(services, "flatseries", page, None, order_by, ascending, text, filters)


def query(services: Services, level: str, body: dict) -> list:
    """Run a ``/query`` body on a level: patients, studies, series, flatseries or images."""
    spec = parse_query(body)
    with services.db.connection() as conn:
        return repo.list_level(conn, level, spec)


def images_of_patient(services: Services, patient_id: int,
                      filters: SeriesFilters = SeriesFilters()) -> list[Image]:
    """All images of a patient ([] for an unknown patient)."""
    spec = ListSpec(count=None, conditions=(Condition("patientId", "=", patient_id),), filters=filters)
    with services.db.connection() as conn:
        return repo.list_level(conn, "images", spec)


def images_of_study(services: Services, study_id: int,
                    filters: SeriesFilters = SeriesFilters()) -> list[Image]:
    """All images of a study; 404 for an unknown study (as the spec says)."""
    spec = ListSpec(count=None, conditions=(Condition("studyId", "=", study_id),), filters=filters)
    with services.db.connection() as conn:
        if repo.get_study(conn, study_id) is None:
            raise NotFound(f"study {study_id} not found")
        return repo.list_level(conn, "images", spec)


# -- single items ---------------------------------------------------------------------

def get_patient(services: Services, patient_id: int) -> Patient:
    with services.db.connection() as conn:
        found = repo.get_patient(conn, patient_id)
    if found is None:
        raise NotFound(f"patient {patient_id} not found")
    return found


def get_study(services: Services, study_id: int) -> Study:
    with services.db.connection() as conn:
        found = repo.get_study(conn, study_id)
    if found is None:
        raise NotFound(f"study {study_id} not found")
    return found


def get_series(services: Services, series_id: int) -> Series:
    with services.db.connection() as conn:
        found = repo.get_series(conn, series_id)
    if found is None:
        raise NotFound(f"series {series_id} not found")
    return found


def get_image(services: Services, image_id: int) -> Image:
    with services.db.connection() as conn:
        found = repo.get_image(conn, image_id)
    if found is None:
        raise NotFound(f"image {image_id} not found")
    return found


def get_flat_series(services: Services, series_id: int) -> FlatSeries:
    spec = ListSpec(count=1, conditions=(Condition("id", "=", series_id),))
    with services.db.connection() as conn:
        found = repo.list_level(conn, "flatseries", spec)
    if not found:
        raise NotFound(f"flat series {series_id} not found")
    return found[0]


def get_series_source(services: Services, series_id: int) -> Source:
    """Where a series came from; 404 when the series is unknown or has no recorded source."""
    with services.db.connection() as conn:
        if repo.get_series(conn, series_id) is None:
            raise NotFound(f"series {series_id} not found")
        source = repo.get_series_source(conn, series_id)
    if source is None:
        raise NotFound(f"series {series_id} has no source")
    return source


# -- series tags ------------------------------------------------------------------------

def list_series_tags(services: Services) -> list[SeriesTag]:
    """Every tag currently attached to a series."""
    with services.db.connection() as conn:
        return repo.list_series_tags_in_use(conn)


def series_tags_of_series(services: Services, series_id: int) -> list[SeriesTag]:
    with services.db.connection() as conn:
        if repo.get_series(conn, series_id) is None:
            raise NotFound(f"series {series_id} not found")
        return repo.series_tags_of_series(conn, series_id)


def add_series_tag(services: Services, series_id: int, body: dict) -> SeriesTag:
    """Tag a series by tag name, creating the tag when no tag has that name."""
    name = body.get("name") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("series tag needs a non-empty name")
    name = name.strip()
    if len(name) > MAX_TAG_NAME:
        raise BadRequest(f"series tag name longer than {MAX_TAG_NAME} characters")
    try:
        with services.db.transaction() as conn:
            if repo.get_series(conn, series_id) is None:
                raise NotFound(f"series {series_id} not found")
            return repo.tag_series(conn, series_id, name)
    except IntegrityError:
        # the series was deleted between the check and the insert
        raise NotFound(f"series {series_id} not found") from None


def remove_series_tag(services: Services, series_id: int, series_tag_id: int) -> None:
    """Detach a tag from a series (no-op when not attached)."""
    with services.db.transaction() as conn:
        repo.untag_series(conn, series_id, series_tag_id)


# -- series types on series --------------------------------------------------------------

def series_types_of_series(services: Services, series_id: int) -> list[SeriesType]:
    with services.db.connection() as conn:
        if repo.get_series(conn, series_id) is None:
            raise NotFound(f"series {series_id} not found")
        return repo.series_types_of_series(conn, series_id)


def add_series_type(services: Services, series_id: int, series_type_id: int) -> None:
    """Assign a series type to a series (assigning twice is a no-op)."""
    try:
        with services.db.transaction() as conn:
            if repo.get_series(conn, series_id) is None:
                raise NotFound(f"series {series_id} not found")
            if repo.get_series_type(conn, series_type_id) is None:
                raise NotFound(f"series type {series_type_id} not found")
            repo.add_series_type_to_series(conn, series_id, series_type_id)
    except IntegrityError:
        raise NotFound(f"series {series_id} or series type {series_type_id} not found") from None


def remove_series_type(services: Services, series_id: int, series_type_id: int) -> None:
    with services.db.transaction() as conn:
        repo.remove_series_type_from_series(conn, series_id, series_type_id)


def remove_series_types(services: Services, series_id: int) -> None:
    with services.db.transaction() as conn:
        repo.remove_series_types_from_series(conn, series_id)


def series_types_of_many_series(services: Services, body: dict) -> list[tuple[int, SeriesType]]:
    """(series id, type) for each type assigned to each of ``body['ids']``."""
    ids = body.get("ids") if isinstance(body, dict) else None
    if ids is None:
        raise BadRequest("body needs ids, an array of series ids")
    ids = _id_list(ids, "ids")
    with services.db.connection() as conn:
        return repo.series_types_of_many_series(conn, list(ids))
