"""Anonymization options and keys through HTTP (keys inserted with the service)."""
from __future__ import annotations

import csv
import io

import pytest

from slicebox.models import AnonymizationKey
from slicebox.services import anonymization as anon

BASE = "/api/anonymization"


def add_key(services, n: int, patient_name: str = "Doe^John", values=(), **overrides) -> dict:
    fields = dict(id=0, created=0, image_id=100 + n, patient_name=patient_name,
                  anon_patient_name=f"ANON^{n}", patient_id=f"PID{n}", anon_patient_id=f"A{n}",
                  study_instance_uid=f"1.1.{n}", anon_study_instance_uid=f"2.25.1{n}",
                  series_instance_uid=f"1.2.{n}", anon_series_instance_uid=f"2.25.2{n}",
                  sop_instance_uid=f"1.3.{n}", anon_sop_instance_uid=f"2.25.3{n}")
    fields.update(overrides)
    return anon.record_key(services, AnonymizationKey(**fields), values).to_json()


@pytest.fixture
def keys(services):
    return [add_key(services, 1, "Doe^John", [("(0008,0050)", "ACC1", "")]),
            add_key(services, 2, "Smith^Anna"),
            add_key(services, 3, "Berg^Carl")]


def test_options_are_listed_with_name_title_description_rank(client):
    r = client.get(f"{BASE}/options")
    assert r.status_code == 200
    options = r.get_json()
    names = [o["name"] for o in options]
    assert names[0] == "BASIC_PROFILE"
    assert {"RETAIN_SAFE_PRIVATE", "RETAIN_UIDS", "RETAIN_DEVICE_IDENTITY", "RETAIN_INSTITUTION_IDENTITY",
            "RETAIN_PATIENT_CHARACTERISTICS", "RETAIN_LONGITUDINAL_TEMPORAL_INFORMATION",
            "RETAIN_LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED_DATES", "CLEAN_DESCRIPTORS",
            "CLEAN_STRUCTURED_CONTENT", "CLEAN_GRAPHICS"} <= set(names)
    for option in options:
        assert set(option) == {"name", "title", "description", "rank"}
        assert option["title"] and option["description"] and isinstance(option["rank"], int)
    assert [o["rank"] for o in options] == sorted(o["rank"] for o in options)


def test_keys_need_a_user(anon_client):
    assert anon_client.get(f"{BASE}/keys").status_code == 401
    assert anon_client.get(f"{BASE}/options").status_code == 401


def test_list_get_and_key_values(client, keys):
    r = client.get(f"{BASE}/keys")
    assert r.status_code == 200
    assert r.get_json() == keys
    first = keys[0]
    assert first["patientName"] == "Doe^John" and first["anonPatientName"] == "ANON^1"
    assert first["imageId"] == 101 and first["created"] > 0
    r = client.get(f"{BASE}/keys/{first['id']}")
    assert r.status_code == 200 and r.get_json() == first
    r = client.get(f"{BASE}/keys/{first['id']}/keyvalues")
    assert r.status_code == 200
    [value] = r.get_json()
    assert value["anonymizationKeyId"] == first["id"]
    assert value["tagPath"] == {"tag": 0x00080050}
    assert (value["value"], value["anonymizedValue"]) == ("ACC1", "")
    assert client.get(f"{BASE}/keys/{keys[1]['id']}/keyvalues").get_json() == []


def test_unknown_key_is_404(client, keys):
    assert client.get(f"{BASE}/keys/9999").status_code == 404
    r = client.get(f"{BASE}/keys/9999/keyvalues")
    assert r.status_code == 404 and "error" in r.get_json()


def test_nested_tag_path_in_key_values(client, services):
    key = add_key(services, 7, values=[("(0008,1115)[2].(0020,000E)", "1.2.3", "2.25.9")])
    [value] = client.get(f"{BASE}/keys/{key['id']}/keyvalues").get_json()
    assert value["tagPath"] == {"tag": 0x0020000E, "previous": {"tag": 0x00081115, "item": "2"}}


def test_delete_key_removes_it_and_its_values(client, services, keys):
    target = keys[0]["id"]
    assert client.delete(f"{BASE}/keys/{target}").status_code == 204
    assert client.get(f"{BASE}/keys/{target}").status_code == 404
    assert [k["id"] for k in client.get(f"{BASE}/keys").get_json()] == [keys[1]["id"], keys[2]["id"]]
    with services.db.connection() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM anonymization_key_values WHERE anonymization_key_id = ?",
                           (target,)) == 0
    assert client.delete(f"{BASE}/keys/{target}").status_code == 204  # idempotent


def test_paging_and_ordering(client, keys):
    r = client.get(f"{BASE}/keys?startindex=1&count=1")
    assert [k["id"] for k in r.get_json()] == [keys[1]["id"]]
    r = client.get(f"{BASE}/keys?orderby=patientName")
    assert [k["patientName"] for k in r.get_json()] == ["Berg^Carl", "Doe^John", "Smith^Anna"]
    r = client.get(f"{BASE}/keys?orderby=patientName&orderascending=false")
    assert [k["patientName"] for k in r.get_json()] == ["Smith^Anna", "Doe^John", "Berg^Carl"]
    r = client.get(f"{BASE}/keys?orderby=anonSOPInstanceUID&orderascending=false&count=2")
    assert [k["anonSOPInstanceUID"] for k in r.get_json()] == ["2.25.33", "2.25.32"]


BAD_LIST_ARGUMENTS = ["orderby=nonsense", "orderby=patient_name;DROP TABLE x", "count=-1",
                      "startindex=x", "orderascending=maybe"]


def test_bad_list_arguments_are_400(client, keys):
    for query in BAD_LIST_ARGUMENTS:  # one app for all cases: setting up an app is the slow part
        r = client.get(f"{BASE}/keys?{query}")
        assert r.status_code == 400, query
        assert r.get_json()["error"]
    assert len(client.get(f"{BASE}/keys").get_json()) == 3


def test_filter_is_a_case_insensitive_substring_over_real_and_anonymous_values(client, keys):
    def names(text):
        r = client.get(f"{BASE}/keys", query_string={"filter": text})
        assert r.status_code == 200
        return sorted(k["patientName"] for k in r.get_json())

    assert names("smith") == ["Smith^Anna"]
    assert names("ANNA") == ["Smith^Anna"]
    assert names("anon^3") == ["Berg^Carl"]
    assert names("2.25.21") == ["Doe^John"]
    assert names("^") == ["Berg^Carl", "Doe^John", "Smith^Anna"]
    assert names("%") == []  # LIKE wildcards are matched literally
    assert names("_") == []


def test_query_keys(client, keys):
    def query(props, **extra):
        body = {"startIndex": 0, "count": 20, "queryProperties": props}
        body.update(extra)
        return client.post(f"{BASE}/keys/query", json=body)

    r = query([{"propertyName": "patientName", "operator": "=", "propertyValue": "Smith^Anna"}])
    assert r.status_code == 200 and [k["id"] for k in r.get_json()] == [keys[1]["id"]]
    r = query([{"propertyName": "anonPatientID", "operator": "like", "propertyValue": "a"}],
              order={"orderBy": "anonPatientID", "orderAscending": False})
    assert [k["anonPatientID"] for k in r.get_json()] == ["A3", "A2", "A1"]
    r = query([{"propertyName": "patientName", "operator": "like", "propertyValue": "o"},
               {"propertyName": "imageId", "operator": "=", "propertyValue": "101"}])
    assert [k["id"] for k in r.get_json()] == [keys[0]["id"]]
    r = query([], startIndex=2, count=5)
    assert [k["id"] for k in r.get_json()] == [keys[2]["id"]]


BAD_QUERIES = [
    {"count": 20, "queryProperties": []},
    {"startIndex": -1, "count": 20, "queryProperties": []},
    {"startIndex": 0, "count": 20, "queryProperties": "x"},
    {"startIndex": 0, "count": 20, "queryProperties": [{"propertyName": "nope", "operator": "=",
                                                        "propertyValue": "a"}]},
    {"startIndex": 0, "count": 20, "queryProperties": [{"propertyName": "patientName", "operator": "<>",
                                                        "propertyValue": "a"}]},
    {"startIndex": 0, "count": 20, "queryProperties": [], "order": {"orderBy": "password"}},
    [],
]


def test_bad_queries_are_400(client, keys):
    for body in BAD_QUERIES:
        r = client.post(f"{BASE}/keys/query", json=body)
        assert r.status_code == 400, body
        assert r.get_json()["error"]


def test_csv_export_for_administrators(client, services, keys):
    add_key(services, 4, patient_name='Semi;colon "Quoted"\nNewline',
            values=[("(0010,0030)", "19700101", ""), ("(0008,1030)", "=HYPERLINK(\"x\")", "")])
    r = client.get(f"{BASE}/keys/export/csv")
    assert r.status_code == 200
    assert r.mimetype == "text/csv"
    assert "attachment" in r.headers["Content-Disposition"]
    text = r.get_data().decode("utf-8")
    assert text.startswith("\ufeff")  # UTF-8 byte order mark for spreadsheets
    rows = list(csv.reader(io.StringIO(text[1:]), delimiter=","))
    header, body = rows[0], rows[1:]
    assert header[:3] == ["ID", "Image ID", "Created"] and header[-3:] == ["Tag Path", "Value", "Anonymized Value"]
    assert len(body) == 5  # key 1 with one value, keys 2 and 3 without, key 4 with two values
    by_key = {}
    for row in body:
        assert len(row) == len(header)
        by_key.setdefault(int(row[0]), []).append(row)
    first = by_key[keys[0]["id"]][0]
    assert first[1] == "101" and first[3] == "Doe^John" and first[13:] == ["(0008,0050)", "ACC1", ""]
    assert by_key[keys[1]["id"]][0][13:] == ["", "", ""]
    tricky = sorted(by_key[max(by_key)], key=lambda row: row[13])
    assert tricky[0][3] == 'Semi;colon "Quoted"\nNewline'  # quoting survives a round trip
    assert tricky[0][14] == "'=HYPERLINK(\"x\")"  # a formula is neutralized
    assert tricky[1][13:] == ["(0010,0030)", "19700101", ""]


def test_csv_export_streams_many_keys(client, services):
    for n in range(1, 1003):
        add_key(services, n)
    rows = list(csv.reader(io.StringIO(client.get(f"{BASE}/keys/export/csv").get_data().decode("utf-8-sig")),
                           delimiter=","))
    assert len(rows) == 1 + 1002
    assert len({row[0] for row in rows[1:]}) == 1002


def test_csv_export_is_for_administrators_only(user_client, keys):
    r = user_client.get(f"{BASE}/keys/export/csv")
    assert r.status_code == 403
