"""One SQL builder for every Meta Data listing and query (patients, studies,
series, flat series, images).

Callers describe *what* they want with a :class:`ListSpec` (API property names,
operators, values, series filters, paging); this module turns it into one
``SELECT`` for any level.  API property names are looked up in each level's
whitelist and replaced by fixed column expressions, so user input never becomes
SQL text: an unknown name is a :class:`BadRequest`, values travel as bound
parameters, substring patterns are escaped by :func:`dialect.like_pattern`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from slicebox.db import Connection
from slicebox.db import rows as m
from slicebox.db.dialect import like_pattern
from slicebox.errors import BadRequest
from slicebox.models import Condition, FlatSeries, ListSpec, SeriesFilters  # noqa: F401 (re-exported)

logger = logging.getLogger(__name__)

OPERATORS = ("=", "like")

#: Case-insensitive substring test.  LOWER on both sides because SQLite's LIKE
#: is case-insensitive (ASCII only) and PostgreSQL's is case-sensitive.
_LIKE = "LOWER({expr}) LIKE ? ESCAPE '\\'"


@dataclass(frozen=True)
class Column:
    """A whitelisted property: its SQL expression and whether it holds integers."""

    sql: str
    integer: bool = False

    def text_sql(self) -> str:
        return f"CAST({self.sql} AS TEXT)" if self.integer else self.sql


@dataclass(frozen=True)
class Level:
    """One browsable level of the hierarchy."""

    name: str
    from_sql: str
    #: (alias, column names) selected, each as ``alias_column``
    select: tuple[tuple[str, tuple[str, ...]], ...]
    #: API property name -> column, for this level and every joined parent level
    columns: dict
    #: SQL expressions the free-text ``filter`` searches
    text_columns: tuple[str, ...]
    #: how series conditions attach: None = directly on alias ``se`` of from_sql;
    #: otherwise an EXISTS template with ``{conds}`` over series alias ``fse``
    series_scope: str | None
    id_sql: str
    make: Callable[[dict], object]

    def column(self, name: str, what: str = "property") -> Column:
        try:
            return self.columns[name]
        except (KeyError, TypeError):
            allowed = ", ".join(sorted(self.columns))
            shown = str(name)[:60]
            raise BadRequest(f"unknown {what} {shown!r} for {self.name}; allowed: {allowed}") from None

    def select_sql(self) -> str:
        return ", ".join(f"{alias}.{c} AS {alias}_{c}" for alias, cols in self.select for c in cols)


def _props(alias: str, pairs: tuple) -> dict:
    return {api: Column(f"{alias}.{col}", integer) for api, col, integer in pairs}


PATIENT_PROPS = (
    ("patientName", "patient_name", False),
    ("patientID", "patient_id", False),
    ("patientBirthDate", "patient_birth_date", False),
    ("patientSex", "patient_sex", False),
)
STUDY_PROPS = (
    ("patientId", "patient_id", True),
    ("studyInstanceUID", "study_instance_uid", False),
    ("studyDescription", "study_description", False),
    ("studyDate", "study_date", False),
    ("studyID", "study_id", False),
    ("accessionNumber", "accession_number", False),
    ("patientAge", "patient_age", False),
)
SERIES_PROPS = (
    ("studyId", "study_id", True),
    ("seriesInstanceUID", "series_instance_uid", False),
    ("seriesDescription", "series_description", False),
    ("seriesDate", "series_date", False),
    ("modality", "modality", False),
    ("protocolName", "protocol_name", False),
    ("bodyPartExamined", "body_part_examined", False),
    ("manufacturer", "manufacturer", False),
    ("stationName", "station_name", False),
    ("frameOfReferenceUID", "frame_of_reference_uid", False),
)
IMAGE_PROPS = (
    ("seriesId", "series_id", True),
    ("sopInstanceUID", "sop_instance_uid", False),
    ("imageType", "image_type", False),
    ("instanceNumber", "instance_number", False),
)

# Human-readable columns searched by ``filter`` (UIDs are not human-readable).
PATIENT_TEXT = ("p.patient_name", "p.patient_id", "p.patient_birth_date", "p.patient_sex")
STUDY_TEXT = ("st.study_description", "st.study_date", "st.study_id", "st.accession_number",
              "st.patient_age")
SERIES_TEXT = ("se.series_description", "se.series_date", "se.modality", "se.protocol_name",
               "se.body_part_examined", "se.manufacturer", "se.station_name")
IMAGE_TEXT = ("i.sop_instance_uid", "i.image_type", "i.instance_number")

_JOIN_STUDY = " JOIN patients p ON p.id = st.patient_id"
_JOIN_SERIES = " JOIN studies st ON st.id = se.study_id" + _JOIN_STUDY
_JOIN_IMAGE = " JOIN series se ON se.id = i.series_id" + _JOIN_SERIES


def _levels() -> dict[str, Level]:
    patient = _props("p", PATIENT_PROPS)
    study = _props("st", STUDY_PROPS)
    series = _props("se", SERIES_PROPS)
    image = _props("i", IMAGE_PROPS)
    return {
        "patients": Level(
            "patients", "patients p", (("p", m.PATIENT_COLUMNS),),
            {"id": Column("p.id", True), **patient}, PATIENT_TEXT,
            "EXISTS (SELECT 1 FROM studies fst JOIN series fse ON fse.study_id = fst.id "
            "WHERE fst.patient_id = p.id AND {conds})",
            "p.id", lambda r: m.row_to_patient(r, "p_")),
        "studies": Level(
            "studies", "studies st" + _JOIN_STUDY, (("st", m.STUDY_COLUMNS),),
            {**patient, "id": Column("st.id", True), **study}, STUDY_TEXT,
            "EXISTS (SELECT 1 FROM series fse WHERE fse.study_id = st.id AND {conds})",
            "st.id", lambda r: m.row_to_study(r, "st_")),
        "series": Level(
            "series", "series se" + _JOIN_SERIES, (("se", m.SERIES_COLUMNS),),
            {**patient, **study, "id": Column("se.id", True), **series}, SERIES_TEXT,
            None, "se.id", lambda r: m.row_to_series(r, "se_")),
        "flatseries": Level(
            "flat series", "series se" + _JOIN_SERIES,
            (("p", m.PATIENT_COLUMNS), ("st", m.STUDY_COLUMNS), ("se", m.SERIES_COLUMNS)),
            {**patient, **study, "id": Column("se.id", True), **series},
            PATIENT_TEXT + STUDY_TEXT + SERIES_TEXT,
            None, "se.id",
            lambda r: FlatSeries(m.row_to_patient(r, "p_"), m.row_to_study(r, "st_"),
                                 m.row_to_series(r, "se_"))),
        "images": Level(
            "images", "images i" + _JOIN_IMAGE, (("i", m.IMAGE_COLUMNS),),
            {**patient, **study, **series, "id": Column("i.id", True), **image}, IMAGE_TEXT,
            None, "i.id", lambda r: m.row_to_image(r, "i_")),
    }


_LEVELS: dict[str, Level] = {}


def level(name: str) -> Level:
    if not _LEVELS:
        _LEVELS.update(_levels())
    return _LEVELS[name]


def series_conditions(alias: str, filters: SeriesFilters) -> tuple[list[str], list]:
    """SQL conditions on series ``alias`` for the filters, one per kind (ANDed)."""
    conds: list[str] = []
    params: list = []
    if filters.sources:
        pairs = " OR ".join("(ss.source_type = ? AND ss.source_id = ?)" for _ in filters.sources)
        conds.append(f"EXISTS (SELECT 1 FROM series_sources ss WHERE ss.series_id = {alias}.id "
                     f"AND ({pairs}))")
        for source_type, source_id in filters.sources:
            params.extend((source_type, int(source_id)))
    if filters.series_type_ids:
        marks = ", ".join("?" for _ in filters.series_type_ids)
        conds.append(f"EXISTS (SELECT 1 FROM series_series_types sst WHERE sst.series_id = {alias}.id "
                     f"AND sst.series_type_id IN ({marks}))")
        params.extend(int(i) for i in filters.series_type_ids)
    if filters.series_tag_ids:
        marks = ", ".join("?" for _ in filters.series_tag_ids)
        conds.append(f"EXISTS (SELECT 1 FROM series_series_tags sstg WHERE sstg.series_id = {alias}.id "
                     f"AND sstg.series_tag_id IN ({marks}))")
        params.extend(int(i) for i in filters.series_tag_ids)
    return conds, params


def _condition(lvl: Level, cond: Condition) -> tuple[str, list]:
    col = lvl.column(cond.property)
    op = cond.operator.lower() if isinstance(cond.operator, str) else cond.operator
    if op == "=":
        if col.integer:
            try:
                value = int(cond.value)
            except (TypeError, ValueError):
                raise BadRequest(f"property {cond.property} needs an integer value") from None
            return f"{col.sql} = ?", [value]
        return f"{col.sql} = ?", [str(cond.value)]
    if op == "like":
        return _LIKE.format(expr=col.text_sql()), [like_pattern(str(cond.value))]
    raise BadRequest(f"unknown operator {str(cond.operator)[:20]!r}; use one of {', '.join(OPERATORS)}")


def build(lvl: Level, spec: ListSpec) -> tuple[str, list]:
    """The SELECT statement and its parameters for ``spec`` on ``lvl``."""
    where: list[str] = []
    params: list = []
    for cond in spec.conditions:
        sql, values = _condition(lvl, cond)
        where.append(sql)
        params.extend(values)
    if spec.text:
        pattern = like_pattern(spec.text)
        where.append("(" + " OR ".join(_LIKE.format(expr=c) for c in lvl.text_columns) + ")")
        params.extend(pattern for _ in lvl.text_columns)
    if spec.filters:
        if lvl.series_scope is None:
            conds, values = series_conditions("se", spec.filters)
            where.extend(conds)
        else:
            conds, values = series_conditions("fse", spec.filters)
            where.append(lvl.series_scope.format(conds=" AND ".join(conds)))
        params.extend(values)
    direction = "ASC" if spec.ascending else "DESC"
    order = f"{lvl.id_sql} {direction}"
    if spec.order_by:
        col = lvl.column(spec.order_by, "orderby property")
        if col.sql != lvl.id_sql:
            # id breaks ties so that paging is stable and equal on both databases
            order = f"{col.sql} {direction}, {order}"
    sql = f"SELECT {lvl.select_sql()} FROM {lvl.from_sql}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {order}"
    if spec.count is not None:
        sql += " LIMIT ? OFFSET ?"
        params.extend((int(spec.count), int(spec.start_index)))
    return sql, params


def fetch(conn: Connection, level_name: str, spec: ListSpec) -> list:
    """Run ``spec`` on the named level and return its models."""
    lvl = level(level_name)
    sql, params = build(lvl, spec)
    rows = conn.all(sql, params)
    if spec.count is None and spec.start_index:
        # no portable OFFSET without LIMIT (LIMIT -1 is SQLite, LIMIT ALL PostgreSQL)
        rows = rows[spec.start_index:]
    return [lvl.make(r) for r in rows]
