"""Meta Data: browse and query the DICOM hierarchy, series tags, series types on series.

Listings and queries arrive as one :class:`ListSpec` (``/query`` bodies are
parsed by slicebox/api/bodies.py); the database layer checks property names
against its whitelist.  Series filters (sources, series types, series tags) are OR
within a kind and AND across kinds, evaluated per series; a patient or study
matches when at least one of its series does.
"""
from __future__ import annotations

import logging

from slicebox.context import Services
from slicebox.db import IntegrityError
from slicebox.db import metadata as repo
from slicebox.errors import NotFound
from slicebox.models import (Condition, FlatSeries, Image, ListSpec, Page, Patient, Series, SeriesFilters,
                             SeriesTag, SeriesType, Source, Study)

logger = logging.getLogger(__name__)


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


def query(services: Services, level: str, spec: ListSpec) -> list:
    """Run a query on a level: patients, studies, series, flatseries or images."""
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


def add_series_tag(services: Services, series_id: int, name: str) -> SeriesTag:
    """Tag a series by tag name, creating the tag when no tag has that name."""
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


def series_types_of_many_series(services: Services, ids: tuple[int, ...]) -> list[tuple[int, SeriesType]]:
    """(series id, type) for each type assigned to each of ``ids``."""
    with services.db.connection() as conn:
        return repo.series_types_of_many_series(conn, list(ids))
