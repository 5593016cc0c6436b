"""Request bodies and query strings -> typed values, with one set of checks and messages.

Views call these parsers and hand the results to services, which never see raw
JSON: a profile is an :class:`AnonymizationProfile`, custom values are
:class:`TagValue` tuples, a query is a :class:`ListSpec`.  Every rule about the
shape of a request (integer ranges, page limits, tag paths, what a custom value
may be) is written once here, so the same input gets the same 400 whichever
route it reaches, and a service such as ``boxes.queue`` can be called by
forwarding rules without a body.
"""
from __future__ import annotations

from slicebox.dicom import profiles
from slicebox.dicom.anonymization_plan import check_custom_value
from slicebox.dicom.errors import DicomStreamError
from slicebox.dicom.tagpath import TagValue, tag_path_from_json
from slicebox.errors import BadRequest
from slicebox.models import (MAX_PAGE_COUNT, SOURCE_TYPES, AnonymizationProfile, Condition, ImageTagValues,
                             ListSpec, SeriesFilters)

#: Ids and indices are 64-bit signed integers in both databases.
MAX_INT = (1 << 63) - 1
#: Longest series tag name.
MAX_TAG_NAME = 255
QUERY_OPERATORS = ("=", "like")


# -- scalars ---------------------------------------------------------------------------
def is_int(value) -> bool:
    """A JSON integer (not a boolean)."""
    return isinstance(value, int) and not isinstance(value, bool)


def integer(value, name: str, minimum: int = 0) -> int:
    """``value`` as an integer in [minimum, 2^63 - 1], else a 400 naming ``name``."""
    if not is_int(value):
        raise BadRequest(f"{name} must be an integer")
    if value < minimum:
        raise BadRequest(f"{name} must be >= {minimum}")
    if value > MAX_INT:
        raise BadRequest(f"{name} must be at most {MAX_INT}")
    return value


def integer_text(raw: str, name: str, minimum: int | None = 0) -> int:
    """A query-string integer (e.g. ``startindex``), range-checked like JSON integers."""
    text = raw.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not digits.isdigit() or len(digits) > 19:
        raise BadRequest(f"{name} must be an integer, got {raw[:40]!r}")
    value = int(text)
    if minimum is not None and value < minimum:
        raise BadRequest(f"{name} must be >= {minimum}")
    if not -MAX_INT - 1 <= value <= MAX_INT:
        raise BadRequest(f"{name} must be a 64-bit integer")
    return value


def page_count(value: int, name: str = "count") -> int:
    if value > MAX_PAGE_COUNT:
        raise BadRequest(f"{name} must be at most {MAX_PAGE_COUNT}")
    return value


def text(value, name: str, max_length: int = 255) -> str:
    """A non-empty string of at most ``max_length`` characters, trimmed."""
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{name} must be a non-empty string")
    value = value.strip()
    if len(value) > max_length:
        raise BadRequest(f"{name} must be at most {max_length} characters")
    return value


def id_list(value, name: str = "request body") -> tuple[int, ...]:
    """A JSON array of ids (each a non-negative 64-bit integer)."""
    if not isinstance(value, list):
        raise BadRequest(f"{name} must be a JSON array of integer ids")
    return tuple(integer(i, f"{name} entries") for i in value)


def _object(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return value


# -- anonymization ---------------------------------------------------------------------
def profile(raw) -> AnonymizationProfile:
    """A spec ``anonymizationProfile`` ({options: [names or {name}]}); missing means the basic profile."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict) or not isinstance(raw.get("options", []), list):
        raise BadRequest("profile must be an object with an 'options' array")
    return AnonymizationProfile(tuple(o.name for o in profiles.parse_options(raw.get("options", []))))


def profile_from_names(names) -> AnonymizationProfile:
    """A profile from stored option names (always valid: they were checked when stored)."""
    return AnonymizationProfile(tuple(o.name for o in profiles.parse_options(names)))


def tag_path(raw, where: str = "tagPath"):
    try:
        return tag_path_from_json(raw)
    except DicomStreamError as exc:
        raise BadRequest(f"{where}: invalid tagPath: {exc}") from None


def tag_values(raw, where: str = "tagValues") -> tuple[TagValue, ...]:
    """Custom anonymization values ``[{tagPath, value}]``: each must be a text attribute the engine can write."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise BadRequest(f"{where} must be an array of {{tagPath, value}}")
    values = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            raise BadRequest(f"{where}[{i}] needs a tagPath object and a string value")
        path = tag_path(item.get("tagPath"), f"{where}[{i}]")
        check_custom_value(path, item["value"])
        values.append(TagValue(path, item["value"]))
    return tuple(values)


def anonymization_data(body) -> tuple[AnonymizationProfile, tuple[TagValue, ...]]:
    """The spec's ``anonymizationData`` {profile, tagValues}."""
    body = _object(body, "body (anonymizationData {profile, tagValues})")
    return profile(body.get("profile")), tag_values(body.get("tagValues"))


def image_tag_values_set(entries, where: str = "imageTagValuesSet") -> tuple[ImageTagValues, ...]:
    """``[{imageId, tagValues}]``."""
    if not isinstance(entries, list):
        raise BadRequest(f"{where} must be an array of {{imageId, tagValues}}")
    parsed = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise BadRequest(f"{where}[{i}] must be an object {{imageId, tagValues}}")
        image_id = integer(entry.get("imageId"), f"{where}[{i}].imageId")
        parsed.append(ImageTagValues(image_id, tag_values(entry.get("tagValues"), f"{where}[{i}].tagValues")))
    return tuple(parsed)


def anonymization_request(body) -> tuple[AnonymizationProfile, tuple[ImageTagValues, ...]]:
    """A bulk anonymization or box send: the spec's array of imageTagValues (basic profile),
    or Slicebox 2.0's object {profile, imageTagValuesSet}."""
    if isinstance(body, list):
        return profile(None), image_tag_values_set(body, "body")
    body = _object(body, "body ({profile, imageTagValuesSet} or an array of {imageId, tagValues})")
    entries = body.get("imageTagValuesSet", [])
    return profile(body.get("profile")), image_tag_values_set(entries)


def tag_mappings(body) -> tuple[TagValue, ...]:
    """Modification: a non-empty array of ``{tagPath, value}`` (any attribute; the engine checks the VR)."""
    if not isinstance(body, list):
        raise BadRequest("request body must be a JSON array of tag mappings")
    if not body:
        raise BadRequest("no tag mappings given: the array is empty")
    mappings = []
    for i, entry in enumerate(body):
        if not isinstance(entry, dict) or "tagPath" not in entry or "value" not in entry:
            raise BadRequest(f"tag mapping {i} must be an object with 'tagPath' and 'value'")
        if not isinstance(entry["value"], str):
            raise BadRequest(f"tag mapping {i}: 'value' must be a string")
        mappings.append(TagValue(tag_path(entry["tagPath"], f"tag mapping {i}"), entry["value"]))
    return tuple(mappings)


# -- queries ---------------------------------------------------------------------------
def sources(raw: str | None) -> tuple[tuple[str, int], ...]:
    """``box:1,user:5`` -> (("box", 1), ("user", 5)); anything else is a 400."""
    if raw is None or raw.strip() == "":
        return ()
    pairs = []
    for part in raw.split(","):
        kind, sep, ident = part.strip().partition(":")
        kind = kind.strip().lower()
        if not sep or kind not in SOURCE_TYPES or not _is_id_text(ident.strip()):
            raise BadRequest(
                f"malformed sources {raw[:80]!r}: expected TYPE:ID pairs separated by commas, "
                f"TYPE one of {', '.join(SOURCE_TYPES)}, e.g. sources=box:1,user:5")
        pairs.append((kind, int(ident)))
    return tuple(pairs)


def ids_text(raw: str | None, name: str) -> tuple[int, ...]:
    """``3,7,22`` -> (3, 7, 22); anything else is a 400."""
    if raw is None or raw.strip() == "":
        return ()
    parts = [p.strip() for p in raw.split(",")]
    if not all(_is_id_text(p) for p in parts):
        raise BadRequest(f"malformed {name} {raw[:80]!r}: expected comma-separated integer ids")
    return tuple(int(p) for p in parts)


def _is_id_text(text_: str) -> bool:
    return text_.isdigit() and int(text_) <= MAX_INT


def series_filters(sources_: str | None = None, series_types: str | None = None,
                   series_tags: str | None = None) -> SeriesFilters:
    """Filters from the ``sources``, ``seriestypes`` and ``seriestags`` query parameters."""
    return SeriesFilters(sources(sources_), ids_text(series_types, "seriestypes"),
                         ids_text(series_tags, "seriestags"))


def _query_filters(raw) -> SeriesFilters:
    if raw is None:
        return SeriesFilters()
    raw = _object(raw, "filters ({sourceRefs, seriesTypeIds, seriesTagIds})")
    refs = raw.get("sourceRefs") or []
    if not isinstance(refs, list):
        raise BadRequest("filters.sourceRefs must be an array of {sourceType, sourceId}")
    pairs = []
    for ref in refs:
        kind = ref.get("sourceType") if isinstance(ref, dict) else None
        ident = ref.get("sourceId") if isinstance(ref, dict) else None
        if not isinstance(kind, str) or kind.lower() not in SOURCE_TYPES or not is_int(ident):
            raise BadRequest(f"malformed source ref {str(ref)[:80]}: expected "
                             f"{{sourceType: one of {', '.join(SOURCE_TYPES)}, sourceId: integer}}")
        pairs.append((kind.lower(), integer(ident, "filters.sourceRefs.sourceId")))
    types = raw.get("seriesTypeIds")
    tags = raw.get("seriesTagIds")
    return SeriesFilters(tuple(pairs),
                         id_list(types, "filters.seriesTypeIds") if types is not None else (),
                         id_list(tags, "filters.seriesTagIds") if tags is not None else ())


def query(body, allow_filters: bool = True) -> ListSpec:
    """The spec's ``query`` / ``anonymizationKeyQuery`` object -> ListSpec.

    Property names are not checked here: each listing knows its own columns and
    answers an unknown name with a 400 that lists the allowed ones.
    """
    body = _object(body, "query")
    if body.get("startIndex") is None:
        raise BadRequest("query needs an integer startIndex")
    if body.get("count") is None:
        raise BadRequest("query needs an integer count")
    start = integer(body.get("startIndex"), "startIndex")
    count = page_count(integer(body.get("count"), "count"))
    order_by, ascending = None, True
    order = body.get("order")
    if order is not None:
        order = _object(order, "order ({orderBy, orderAscending})")
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
        name, op, value = prop.get("propertyName"), prop.get("operator", "="), prop.get("propertyValue")
        if not isinstance(name, str) or not name:
            raise BadRequest("query property needs a propertyName")
        if not isinstance(op, str) or op.strip().lower() not in QUERY_OPERATORS:
            raise BadRequest(f"unknown operator {str(op)[:20]!r} for property {name[:60]!r}; use = or like")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise BadRequest(f"query property {name[:60]!r} needs a string propertyValue")
        if is_int(value) and not -MAX_INT - 1 <= value <= MAX_INT:
            raise BadRequest(f"query property {name[:60]!r}: integer value out of range")
        conditions.append(Condition(name, op.strip().lower(), value if isinstance(value, str) else str(value)))
    filters = _query_filters(body.get("filters")) if allow_filters else SeriesFilters()
    return ListSpec(start_index=start, count=count, order_by=order_by or None, ascending=ascending,
                    conditions=tuple(conditions), filters=filters)


# -- small bodies ----------------------------------------------------------------------
def series_tag_name(body) -> str:
    body = body if isinstance(body, dict) else {}
    return text(body.get("name"), "series tag name", MAX_TAG_NAME)


def series_ids(body) -> tuple[int, ...]:
    """``{ids: [...]}`` (series types of many series)."""
    body = body if isinstance(body, dict) else {}
    if body.get("ids") is None:
        raise BadRequest("body needs ids, an array of series ids")
    return id_list(body["ids"], "ids")
