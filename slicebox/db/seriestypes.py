"""Series types, their rules and rule attributes, rule-given labels, and the update state."""
from __future__ import annotations

from slicebox.db import Connection
from slicebox.models import SeriesType, SeriesTypeRule, SeriesTypeRuleAttribute


def _type(row: dict) -> SeriesType:
    return SeriesType(id=row["id"], name=row["name"])


def _rule(row: dict) -> SeriesTypeRule:
    return SeriesTypeRule(id=row["id"], series_type_id=row["series_type_id"])


def _attr(row: dict) -> SeriesTypeRuleAttribute:
    return SeriesTypeRuleAttribute(id=row["id"], series_type_rule_id=row["series_type_rule_id"],
                                   group=row["tag_group"], element=row["tag_element"], path=row["path"],
                                   value=row["value"])


_ATTR = "SELECT id, series_type_rule_id, tag_group, tag_element, path, value FROM series_type_rule_attributes"


# -- types --------------------------------------------------------------------------
def list_types(conn: Connection, start: int, count: int) -> list[SeriesType]:
    return [_type(r) for r in conn.all("SELECT id, name FROM series_types ORDER BY id LIMIT ? OFFSET ?",
                                       (count, start))]


def get_type(conn: Connection, type_id: int) -> SeriesType | None:
    row = conn.one("SELECT id, name FROM series_types WHERE id = ?", (type_id,))
    return None if row is None else _type(row)


def get_type_by_name(conn: Connection, name: str) -> SeriesType | None:
    row = conn.one("SELECT id, name FROM series_types WHERE name = ?", (name,))
    return None if row is None else _type(row)


def insert_type(conn: Connection, name: str) -> SeriesType:
    return _type(conn.one("INSERT INTO series_types (name) VALUES (?) RETURNING id, name", (name,)))


def rename_type(conn: Connection, type_id: int, name: str) -> None:
    conn.execute("UPDATE series_types SET name = ? WHERE id = ?", (name, type_id))


def delete_type(conn: Connection, type_id: int) -> None:
    conn.execute("DELETE FROM series_types WHERE id = ?", (type_id,))


# -- rules ----------------------------------------------------------------------------
def list_rules(conn: Connection, type_id: int | None) -> list[SeriesTypeRule]:
    if type_id is None:
        rows = conn.all("SELECT id, series_type_id FROM series_type_rules ORDER BY id")
    else:
        rows = conn.all("SELECT id, series_type_id FROM series_type_rules WHERE series_type_id = ? ORDER BY id",
                        (type_id,))
    return [_rule(r) for r in rows]


def get_rule(conn: Connection, rule_id: int) -> SeriesTypeRule | None:
    row = conn.one("SELECT id, series_type_id FROM series_type_rules WHERE id = ?", (rule_id,))
    return None if row is None else _rule(row)


def insert_rule(conn: Connection, type_id: int) -> SeriesTypeRule:
    return _rule(conn.one("INSERT INTO series_type_rules (series_type_id) VALUES (?) RETURNING id, series_type_id",
                          (type_id,)))


def delete_rule(conn: Connection, rule_id: int) -> bool:
    return conn.execute("DELETE FROM series_type_rules WHERE id = ?", (rule_id,)).rowcount > 0


# -- attributes --------------------------------------------------------------------------
def list_attributes(conn: Connection, rule_id: int) -> list[SeriesTypeRuleAttribute]:
    return [_attr(r) for r in conn.all(f"{_ATTR} WHERE series_type_rule_id = ? ORDER BY id", (rule_id,))]


def all_attributes(conn: Connection) -> list[tuple[int, SeriesTypeRuleAttribute]]:
    """(series type id, attribute) for every attribute of every rule."""
    rows = conn.all(
        "SELECT a.id, a.series_type_rule_id, a.tag_group, a.tag_element, a.path, a.value, r.series_type_id "
        "FROM series_type_rule_attributes a JOIN series_type_rules r ON r.id = a.series_type_rule_id "
        "ORDER BY r.series_type_id, a.series_type_rule_id, a.id")
    return [(r["series_type_id"], _attr(r)) for r in rows]


def has_attributes(conn: Connection) -> bool:
    return conn.one("SELECT 1 AS x FROM series_type_rule_attributes LIMIT 1") is not None


def insert_attribute(conn: Connection, rule_id: int, group: int, element: int, path: str,
                     value: str) -> SeriesTypeRuleAttribute:
    row = conn.one(
        "INSERT INTO series_type_rule_attributes (series_type_rule_id, tag_group, tag_element, path, value) "
        "VALUES (?, ?, ?, ?, ?) RETURNING id, series_type_rule_id, tag_group, tag_element, path, value",
        (rule_id, group, element, path, value))
    return _attr(row)


def delete_attribute(conn: Connection, rule_id: int, attribute_id: int) -> bool:
    return conn.execute("DELETE FROM series_type_rule_attributes WHERE id = ? AND series_type_rule_id = ?",
                        (attribute_id, rule_id)).rowcount > 0


# -- labels given by the rules -----------------------------------------------------------------
def set_rule_types(conn: Connection, series_id: int, type_ids: list[int]) -> None:
    """Make the rule-given types of a series exactly ``type_ids`` (a user's labels stay)."""
    conn.execute("DELETE FROM series_series_types WHERE series_id = ? AND by_rule = 1", (series_id,))
    for type_id in type_ids:
        conn.execute(
            "INSERT INTO series_series_types (series_id, series_type_id, by_rule) "
            "SELECT id, ?, 1 FROM series WHERE id = ? "
            "ON CONFLICT (series_id, series_type_id) DO NOTHING", (type_id, series_id))


def first_image_of_series(conn: Connection, series_id: int) -> int | None:
    """The image a series is evaluated by: its lowest id (deterministic)."""
    return conn.scalar("SELECT MIN(id) FROM images WHERE series_id = ?", (series_id,))


def series_ids_after(conn: Connection, after: int, limit: int) -> list[int]:
    return [r["id"] for r in conn.all("SELECT id FROM series WHERE id > ? ORDER BY id LIMIT ?", (after, limit))]


# -- update state ----------------------------------------------------------------------------------
def request_update(conn: Connection) -> None:
    conn.execute("UPDATE series_type_update SET requested = requested + 1 WHERE id = 1")


def update_state(conn: Connection) -> tuple[int, int]:
    row = conn.one("SELECT requested, done FROM series_type_update WHERE id = 1")
    return row["requested"], row["done"]


def mark_done(conn: Connection, generation: int) -> None:
    conn.execute("UPDATE series_type_update SET done = ? WHERE id = 1 AND done < ?", (generation, generation))
