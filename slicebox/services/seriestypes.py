"""Series types: labels a series gets when its attributes match a rule of the type.

A series gets a type when every attribute of at least one rule of the type
matches (see :mod:`slicebox.dicom.series_type_match`); a series is judged by
its first image (lowest id), so the result does not depend on arrival order.
New images are evaluated on arrival (ingest step 6).  Any change to types,
rules or attributes bumps a generation counter in the database; the
background updater (a supervisor part, jobs/seriestypes.py) then re-evaluates
every series from scratch and records the generation it finished, so
``GET /seriestypes/rules/updatestatus`` and a restart in the middle both
follow the database, never memory.  Types a user assigned by hand
(``PUT /metadata/series/{id}/seriestypes/{typeId}``) are kept; the rules
replace only the types they gave.
"""
from __future__ import annotations

import logging
import threading

from slicebox.context import Services
from slicebox.db import IntegrityError
from slicebox.db import seriestypes as repo
from slicebox.dicom import tagstream
from slicebox.dicom.errors import DicomStreamError
from slicebox.dicom.series_type_match import attribute_matches, parse_trunk
from slicebox.errors import BadRequest, NotFound
from slicebox.models import Page, SeriesType, SeriesTypeRule, SeriesTypeRuleAttribute, Source, StoredImage
from slicebox.storage.tempfiles import local_copy

logger = logging.getLogger(__name__)

#: Series evaluated per database round trip in a full re-evaluation.
BATCH = 200


def _changed(services: Services, conn) -> None:
    repo.request_update(conn)
    services.state.series_type_wakeup.set()


# -- types ------------------------------------------------------------------------------
def list_types(services: Services, page: Page) -> list[SeriesType]:
    with services.db.connection() as conn:
        return repo.list_types(conn, page.start_index, page.count)


def add_type(services: Services, name: str) -> SeriesType:
    try:
        with services.db.transaction() as conn:
            if repo.get_type_by_name(conn, name) is not None:
                raise BadRequest(f"A series type with name {name} already exists")
            series_type = repo.insert_type(conn, name)
            _changed(services, conn)
            return series_type
    except IntegrityError:
        raise BadRequest(f"A series type with name {name} already exists") from None


def update_type(services: Services, type_id: int, name: str | None = None) -> None:
    """Rename a type (when a name is given) and re-evaluate all series in the background."""
    try:
        with services.db.transaction() as conn:
            if repo.get_type(conn, type_id) is None:
                raise NotFound(f"series type {type_id} not found")
            if name is not None:
                other = repo.get_type_by_name(conn, name)
                if other is not None and other.id != type_id:
                    raise BadRequest(f"A series type with name {name} already exists")
                repo.rename_type(conn, type_id, name)
            _changed(services, conn)
    except IntegrityError:
        raise BadRequest(f"A series type with name {name} already exists") from None


def delete_type(services: Services, type_id: int) -> None:
    with services.db.transaction() as conn:
        repo.delete_type(conn, type_id)  # rules, attributes and labels cascade
        _changed(services, conn)


# -- rules ------------------------------------------------------------------------------
def list_rules(services: Services, type_id: int | None) -> list[SeriesTypeRule]:
    with services.db.connection() as conn:
        return repo.list_rules(conn, type_id)


def add_rule(services: Services, type_id: int) -> SeriesTypeRule:
    try:
        with services.db.transaction() as conn:
            if repo.get_type(conn, type_id) is None:
                raise NotFound(f"series type {type_id} not found")
            # A rule without attributes matches nothing: no re-evaluation needed.
            return repo.insert_rule(conn, type_id)
    except IntegrityError:
        raise NotFound(f"series type {type_id} not found") from None


def delete_rule(services: Services, rule_id: int) -> None:
    with services.db.transaction() as conn:
        if repo.delete_rule(conn, rule_id):
            _changed(services, conn)


def list_attributes(services: Services, rule_id: int) -> list[SeriesTypeRuleAttribute]:
    with services.db.connection() as conn:
        if repo.get_rule(conn, rule_id) is None:
            raise NotFound(f"series type rule {rule_id} not found")
        return repo.list_attributes(conn, rule_id)


def add_attribute(services: Services, rule_id: int, group: int, element: int, path: str,
                  value: str) -> SeriesTypeRuleAttribute:
    """Add an attribute (checked by the API: group/element 0..0xFFFF, a valid path) to a rule."""
    try:
        with services.db.transaction() as conn:
            if repo.get_rule(conn, rule_id) is None:
                raise NotFound(f"series type rule {rule_id} not found")
            attribute = repo.insert_attribute(conn, rule_id, group, element, path, value)
            _changed(services, conn)
            return attribute
    except IntegrityError:
        raise NotFound(f"series type rule {rule_id} not found") from None


def delete_attribute(services: Services, rule_id: int, attribute_id: int) -> None:
    with services.db.transaction() as conn:
        if repo.delete_attribute(conn, rule_id, attribute_id):
            _changed(services, conn)


def update_running(services: Services) -> bool:
    """True while a re-evaluation of all series is pending or running."""
    with services.db.connection() as conn:
        requested, done = repo.update_state(conn)
    return requested > done


# -- evaluation ------------------------------------------------------------------------------
class _Rules:
    """Every rule, compiled once per evaluation run: type id -> [[(trunk, tag, value), ...], ...]."""

    def __init__(self, pairs: list[tuple[int, SeriesTypeRuleAttribute]]):
        by_rule: dict[int, tuple[int, list]] = {}
        for type_id, attr in pairs:
            try:
                trunk = parse_trunk(attr.path)
            except (ValueError, DicomStreamError):
                trunk = None  # stored before validation existed: never matches
            by_rule.setdefault(attr.series_type_rule_id, (type_id, []))[1].append((trunk, attr.tag, attr.value))
        self.rules = list(by_rule.values())
        self.root_tags = sorted({(t[0][0] if t else tag) for _, attrs in self.rules
                                 for t, tag, _ in attrs if t is not None})

    def types_for(self, attributes: dict) -> list[int]:
        matched = set()
        for type_id, attrs in self.rules:
            if type_id in matched:
                continue
            if all(trunk is not None and attribute_matches(attributes, trunk, tag, value)
                   for trunk, tag, value in attrs):
                matched.add(type_id)
        return sorted(matched)


def _load_rules(services: Services) -> _Rules:
    with services.db.connection() as conn:
        return _Rules(repo.all_attributes(conn))


def _read(services: Services, image_id: int, tags: list[int]) -> dict | None:
    try:
        with local_copy(services.storage, image_id, in_memory_limit=1 << 20) as source:
            return tagstream.read_attributes(source, tags=tags)
    except NotFound:
        return None  # deleted meanwhile
    except (DicomStreamError, LookupError, TypeError, ValueError) as exc:
        logger.warning("series types: cannot read image %s: %s", image_id, exc)
        return {}


def evaluate_series(services: Services, series_id: int, rules: _Rules | None = None) -> None:
    """Give a series exactly the types its first image matches (a user's labels stay)."""
    rules = rules if rules is not None else _load_rules(services)
    with services.db.connection() as conn:
        image_id = repo.first_image_of_series(conn, series_id)
    types: list[int] = []
    if image_id is not None and rules.rules:
        attributes = _read(services, image_id, rules.root_tags)
        if attributes is None:
            return
        types = rules.types_for(attributes)
    with services.db.transaction() as conn:
        repo.set_rule_types(conn, series_id, types)


def on_stored(services: Services, result: StoredImage, source: Source) -> None:
    """Ingest step 6: evaluate the series when the new image is the one it is judged by."""
    if not result.created or result.series is None:
        return
    with services.db.connection() as conn:
        if not repo.has_attributes(conn):
            return
        if repo.first_image_of_series(conn, result.series.id) != result.image.id:
            return
    evaluate_series(services, result.series.id)


def run_pending_update(services: Services, stop: threading.Event | None = None) -> bool:
    """Re-evaluate every series if a change asked for it; True if a pass completed.

    The pass records the generation it started from; a change during the pass
    leaves ``requested`` ahead, so another pass follows.
    """
    with services.db.connection() as conn:
        requested, done = repo.update_state(conn)
    if requested <= done:
        return False
    rules = _load_rules(services)
    after = 0
    while True:
        if stop is not None and stop.is_set():
            return False
        with services.db.connection() as conn:
            ids = repo.series_ids_after(conn, after, BATCH)
        if not ids:
            break
        for series_id in ids:
            evaluate_series(services, series_id, rules)
        after = ids[-1]
    with services.db.transaction() as conn:
        repo.mark_done(conn, requested)
    logger.info("series types re-evaluated for all series (generation %d)", requested)
    return True
