"""Integers no row can have: ids >= 2^63 in URL paths (every route, every method) and in
query parameters are a 4xx, never a 500, on SQLite and PostgreSQL."""
from __future__ import annotations

import re

import pytest

HUGE = str(2 ** 63)          # one past the largest 64-bit id
HUGER = "3" + "0" * 40       # far past it
LARGEST = str(2 ** 63 - 1)   # the largest id a row could have


def _fill(rule, value: str) -> str:
    path = rule.rule
    for arg in rule.arguments:
        conv = rule._converters[arg]
        replacement = value if type(conv).__name__ == "IdConverter" else "x"
        path = re.sub(r"<(?:[^:<>]+:)?" + re.escape(arg) + r">", replacement, path)
    return path


def _id_rules(app):
    rules = [r for r in app.url_map.iter_rules()
             if r.rule.startswith("/api") and any(type(c).__name__ == "IdConverter"
                                                  for c in r._converters.values())]
    assert len(rules) >= 30  # every <int:...> route uses the bounded converter
    return rules


@pytest.mark.parametrize("value", [HUGE, HUGER])
def test_ids_past_64_bits_in_any_path_and_method_are_404(app, client, value):
    checked = 0
    for rule in _id_rules(app):
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            r = client.open(_fill(rule, value), method=method, json={})
            assert r.status_code == 404, f"{method} {rule.rule} -> {r.status_code} {r.get_data()[:200]!r}"
            assert r.get_json()["error"]
            checked += 1
    assert checked >= 30


def test_the_largest_64_bit_id_is_an_ordinary_unknown_id(app, client):
    """2^63-1 passes the converter and reaches the database, which finds nothing (both kinds)."""
    for path in ("/api/images/{}", "/api/metadata/patients/{}", "/api/anonymization/keys/{}",
                 "/api/metadata/series/{}/seriestags"):
        r = client.get(path.format(LARGEST))
        assert r.status_code == 404, (path, r.get_data())
    assert client.delete(f"/api/images/{LARGEST}").status_code == 204


@pytest.mark.parametrize("query", [
    f"/api/metadata/studies?patientid={HUGE}",
    f"/api/metadata/series?studyid={HUGE}",
    f"/api/metadata/images?seriesid=-{HUGE}1",
    f"/api/images/export?id={HUGER}",
    f"/api/images/jpeg?studyid={HUGE}",
    f"/api/metadata/patients?seriestypes={HUGE}",
    f"/api/metadata/patients?sources=user:{HUGE}",
    "/api/metadata/studies?patientid=" + "9" * 5000,
])
def test_integer_query_values_past_64_bits_are_400(client, query):
    method = "POST" if "jpeg" in query else "GET"
    r = client.open(query, method=method, data=b"")
    assert r.status_code == 400, r.get_data()
    assert r.get_json()["error"]


@pytest.mark.parametrize("path,body", [
    ("/api/images/delete", [2 ** 63]),
    ("/api/images/export", [2 ** 64]),
    ("/api/seriestypes/series/query", {"ids": [2 ** 63]}),
    ("/api/metadata/images/query", {"startIndex": 0, "count": 5, "queryProperties": [
        {"propertyName": "seriesId", "operator": "=", "propertyValue": HUGE}]}),
])
def test_the_database_layer_refuses_integers_past_64_bits_from_any_body(client, path, body):
    """The db layer's check stands behind every parser: an oversized integer is a 400."""
    r = client.post(path, json=body)
    assert r.status_code == 400, r.get_data()
