"""What a USER must not see: box tokens and real identities in anonymization keys; and the keys
CSV an administrator downloads (RFC 4180, every cell quoted, UTF-8 with BOM, formula guard)."""
from __future__ import annotations

import csv
import io
import re

from slicebox.models import AnonymizationKey
from slicebox.services import anonymization

BASE = "/api/anonymization"


def _add_key(services, image_id: int, patient_name: str = "Doe^John", values=()) -> AnonymizationKey:
    key = AnonymizationKey(id=0, created=0, image_id=image_id, patient_name=patient_name,
                           anon_patient_name="ANON^1", patient_id="PID1", anon_patient_id="ANON1",
                           study_instance_uid="1.2.3", anon_study_instance_uid="2.25.1",
                           series_instance_uid="1.2.3.4", anon_series_instance_uid="2.25.2",
                           sop_instance_uid="1.2.3.4.5", anon_sop_instance_uid="2.25.3")
    return anonymization.record_key(services, key, values)


def test_a_user_sees_no_box_tokens(client, user_client):
    passive = client.post("/api/boxes/createconnection", json={"name": "peer"}).get_json()
    token = passive["token"]
    assert token and token in passive["baseUrl"]
    admin_view = client.get("/api/boxes").get_json()
    assert admin_view[0]["token"] == token and token in admin_view[0]["baseUrl"]
    r = user_client.get("/api/boxes")
    assert r.status_code == 200
    user_view = r.get_json()
    assert [b["name"] for b in user_view] == ["peer"]
    assert token not in r.get_data(as_text=True)
    assert user_view[0]["token"] == ""
    assert user_view[0]["baseUrl"].endswith("/api/transactions/")


def test_anonymization_keys_are_for_administrators_only(client, user_client, services):
    key = _add_key(services, 1)
    for method, path, body in [
        ("GET", f"{BASE}/keys", None),
        ("POST", f"{BASE}/keys/query", {"startIndex": 0, "count": 5, "queryProperties": []}),
        ("GET", f"{BASE}/keys/{key.id}", None),
        ("GET", f"{BASE}/keys/{key.id}/keyvalues", None),
        ("DELETE", f"{BASE}/keys/{key.id}", None),
        ("GET", f"{BASE}/keys/export/csv", None),
    ]:
        r = user_client.open(path, method=method, json=body)
        assert r.status_code == 403, (method, path, r.status_code)
        assert "Doe^John" not in r.get_data(as_text=True)
    assert client.get(f"{BASE}/keys/{key.id}").get_json()["patientName"] == "Doe^John"
    assert client.get(f"{BASE}/keys").status_code == 200
    # the options (no identities) stay readable by every user
    assert user_client.get(f"{BASE}/options").status_code == 200


def test_keys_csv_quotes_every_cell_with_bom_and_comma(client, services):
    _add_key(services, 1, patient_name='Comma, "Quote"; semi\ttab\nline',
             values=[("(0008,1030)", "=cmd|' /C calc'!A0", "-2+3"), ("(0010,0030)", "@SUM(1)", "+1")])
    r = client.get(f"{BASE}/keys/export/csv")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/csv") and "utf-8" in r.headers["Content-Type"]
    raw = r.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 byte order mark
    text = raw.decode("utf-8")[1:]
    lines = text.split("\r\n")
    assert lines[0].startswith('"ID","Image ID","Created"')  # comma-separated, quoted
    rows = list(csv.reader(io.StringIO(text), delimiter=",", quotechar='"', strict=True))
    header, body = rows[0], rows[1:]
    assert len(body) == 2 and all(len(row) == len(header) for row in body)
    assert body[0][3] == 'Comma, "Quote"; semi\ttab\nline'  # quoting survives a round trip
    values = {row[13]: row[14:] for row in body}
    assert values["(0008,1030)"] == ["'=cmd|' /C calc'!A0", "'-2+3"]  # formula guard kept
    assert values["(0010,0030)"] == ["'@SUM(1)", "'+1"]
    # read with a semicolon (a spreadsheet guessing the delimiter) no cell starts a formula
    for row in csv.reader(io.StringIO(text), delimiter=";"):
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@")), cell


def test_every_cell_of_the_keys_csv_is_quoted(client, services):
    _add_key(services, 7, values=[("(0008,0050)", "", "")])
    text = client.get(f"{BASE}/keys/export/csv").get_data().decode("utf-8-sig")
    record = text.split("\r\n")[1]
    # sixteen cells, each quoted (numbers and empty cells too), none unquoted
    assert re.fullmatch(r'"[^"]*"(,"[^"]*"){15}', record), record
