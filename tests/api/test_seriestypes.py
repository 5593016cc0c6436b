"""Series types: rules evaluated on arrival and re-evaluated (from scratch) after any change."""
from __future__ import annotations

import time

from factories import make_dicom_bytes
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from slicebox.jobs.seriestypes import SeriesTypeUpdater
from slicebox.services import seriestypes as service


def _post(client, path, body, status=201):
    r = client.post(path, json=body)
    assert r.status_code == status, r.get_json()
    return r.get_json()


def _type_with_rule(client, name, *attrs) -> tuple[dict, dict]:
    t = _post(client, "/api/seriestypes", {"name": name})
    rule = _post(client, "/api/seriestypes/rules", {"seriesTypeId": t["id"]})
    for group, element, value, *path in attrs:
        body = {"id": 0, "seriesTypeRuleId": rule["id"], "group": group, "element": element, "value": value}
        if path:
            body["path"] = path[0]
        _post(client, f"/api/seriestypes/rules/{rule['id']}/attributes", body)
    return t, rule


def _types(client, series_id) -> list[str]:
    r = client.get(f"/api/metadata/series/{series_id}/seriestypes")
    assert r.status_code == 200
    return [t["name"] for t in r.get_json()]


def _running(client) -> bool:
    return client.get("/api/seriestypes/rules/updatestatus").get_json()["running"]


def _series(upload, series_uid, **tags) -> int:
    r = upload(make_dicom_bytes(SeriesInstanceUID=series_uid, **tags))
    assert r.status_code == 201, r.get_json()
    return r.get_json()["seriesId"]


def _snapshot(services) -> dict:
    with services.db.connection() as conn:
        return {(r["series_id"], r["series_type_id"]) for r in conn.all(
            "SELECT series_id, series_type_id FROM series_series_types")}


def test_types_on_arrival_and_after_a_rule_change(client, upload, services):
    head_ct, rule = _type_with_rule(client, "Head CT", (0x0008, 0x0060, "CT"), (0x0018, 0x0015, "HEAD"))
    assert _running(client)  # the change asks for a re-evaluation
    assert service.run_pending_update(services)
    assert not _running(client)

    ct_head = _series(upload, "1.2.3.70.1", Modality="CT", BodyPartExamined="HEAD")
    mr_head = _series(upload, "1.2.3.70.2", Modality="MR", BodyPartExamined="HEAD")
    ct_chest = _series(upload, "1.2.3.70.3", Modality="CT", BodyPartExamined="CHEST")
    # evaluated on arrival: every attribute of the rule must match
    assert _types(client, ct_head) == ["Head CT"]
    assert _types(client, mr_head) == [] and _types(client, ct_chest) == []
    assert not _running(client)
    listed = client.get("/api/metadata/flatseries", query_string={"seriestypes": str(head_ct["id"])}).get_json()
    assert [s["id"] for s in listed] == [ct_head]

    # change the rule: Modality must now be MR
    attrs = client.get(f"/api/seriestypes/rules/{rule['id']}/attributes").get_json()
    modality = next(a for a in attrs if a["element"] == 0x0060)
    assert client.delete(f"/api/seriestypes/rules/{rule['id']}/attributes/{modality['id']}").status_code == 204
    _post(client, f"/api/seriestypes/rules/{rule['id']}/attributes",
          {"id": 0, "seriesTypeRuleId": rule["id"], "group": 0x0008, "element": 0x0060, "value": "MR"})
    assert _running(client)
    assert _types(client, ct_head) == ["Head CT"]  # not yet: the background pass does it
    assert service.run_pending_update(services)
    assert not _running(client)
    assert _types(client, ct_head) == [] and _types(client, mr_head) == ["Head CT"]
    assert [s["id"] for s in client.get("/api/metadata/flatseries",
                                        query_string={"seriestypes": str(head_ct["id"])}).get_json()] == [mr_head]

    # a second rule of the same type: any rule matching is enough
    _type_rule2 = _post(client, "/api/seriestypes/rules", {"seriesTypeId": head_ct["id"]})
    _post(client, f"/api/seriestypes/rules/{_type_rule2['id']}/attributes",
          {"id": 0, "seriesTypeRuleId": _type_rule2["id"], "group": 0x0018, "element": 0x0015, "value": "CHEST"})
    service.run_pending_update(services)
    assert _types(client, ct_chest) == ["Head CT"] and _types(client, mr_head) == ["Head CT"]
    assert _types(client, ct_head) == []

    # the incremental result equals evaluating from scratch
    incremental = _snapshot(services)
    with services.db.connection() as conn:
        conn.execute("DELETE FROM series_series_types")
        conn.execute("UPDATE series_type_update SET requested = requested + 1")
    service.run_pending_update(services)
    assert _snapshot(services) == incremental

    # deleting the rule / the type removes what they gave
    assert client.delete(f"/api/seriestypes/rules/{_type_rule2['id']}").status_code == 204
    service.run_pending_update(services)
    assert _types(client, ct_chest) == []
    assert client.delete(f"/api/seriestypes/{head_ct['id']}").status_code == 204
    service.run_pending_update(services)
    assert _types(client, mr_head) == []
    assert client.get("/api/seriestypes/rules", query_string={"seriestypeid": head_ct["id"]}).get_json() == []


def test_manual_labels_survive_re_evaluation(client, upload, services):
    manual = _post(client, "/api/seriestypes", {"name": "Reviewed"})
    by_rule, _ = _type_with_rule(client, "CT", (0x0008, 0x0060, "CT"))
    series = _series(upload, "1.2.3.71.1", Modality="CT")
    assert client.put(f"/api/metadata/series/{series}/seriestypes/{manual['id']}").status_code == 204
    assert client.put(f"/api/seriestypes/{by_rule['id']}").status_code == 204  # ask for a re-evaluation
    assert _running(client)
    service.run_pending_update(services)
    assert sorted(_types(client, series)) == ["CT", "Reviewed"]
    q = client.post("/api/seriestypes/series/query", json={"ids": [series]}).get_json()
    assert sorted(x["seriestype"]["name"] for x in q["seriesidseriestypes"]) == ["CT", "Reviewed"]
    assert client.delete(f"/api/metadata/series/{series}/seriestypes").status_code == 204
    assert _types(client, series) == []


def test_multi_valued_and_nested_attributes(client, upload):
    _type_with_rule(client, "Original", (0x0008, 0x0008, "ORIGINAL\\PRIMARY\\AXIAL"))
    _type_with_rule(client, "Original (2.0 commas)", (0x0008, 0x0008, "ORIGINAL,PRIMARY,AXIAL"))
    _type_with_rule(client, "Nested", (0x0008, 0x0100, "C2", "(0008,1115)[*]"))
    _type_with_rule(client, "Nested first", (0x0008, 0x0100, "C2", "(0008,1115)[1]"))
    _type_with_rule(client, "Rows", (0x0028, 0x0010, "8"))
    first, second = Dataset(), Dataset()
    first.CodeValue, second.CodeValue = "C1", "C2"
    from factories import make_dataset

    ds = make_dataset(SeriesInstanceUID="1.2.3.72.1")
    ds.ReferencedSeriesSequence = Sequence([first, second])
    r = upload(make_dicom_bytes(ds))
    assert sorted(_types(client, r.get_json()["seriesId"])) == ["Nested", "Original", "Original (2.0 commas)", "Rows"]


def test_series_type_routes_refuse_bad_input(client, user_client):
    t = _post(client, "/api/seriestypes", {"name": "T"})
    assert client.post("/api/seriestypes", json={"name": "T"}).status_code == 400
    assert client.post("/api/seriestypes", json={"name": ""}).status_code == 400
    assert client.post("/api/seriestypes/rules", json={"seriesTypeId": 999}).status_code == 404
    rule = _post(client, "/api/seriestypes/rules", {"seriesTypeId": t["id"]})
    base = {"id": 0, "seriesTypeRuleId": rule["id"], "group": 8, "element": 0x60, "value": "CT"}
    for bad in ({"group": 0x10000}, {"element": "x"}, {"value": 5}, {"path": "(0008,1115)[0]"}, {"path": "nope["}):
        assert client.post(f"/api/seriestypes/rules/{rule['id']}/attributes", json={**base, **bad}).status_code == 400
    assert client.post("/api/seriestypes/rules/999/attributes", json=base).status_code == 404
    assert client.put("/api/seriestypes/999").status_code == 404
    assert client.put(f"/api/seriestypes/{t['id']}", json={"name": "Renamed"}).status_code == 204
    assert [x["name"] for x in client.get("/api/seriestypes").get_json()] == ["Renamed"]
    assert user_client.get("/api/seriestypes").status_code == 200
    assert user_client.get("/api/seriestypes/rules/updatestatus").status_code == 200
    assert user_client.post("/api/seriestypes", json={"name": "U"}).status_code == 403
    assert user_client.delete(f"/api/seriestypes/{t['id']}").status_code == 403


def test_the_background_updater_follows_the_database(client, upload, services):
    series = _series(upload, "1.2.3.73.1", Modality="US")
    _type_with_rule(client, "Ultrasound", (0x0008, 0x0060, "US"))
    assert _running(client) and _types(client, series) == []
    updater = SeriesTypeUpdater(services)
    updater.start()
    try:
        deadline = time.monotonic() + 30
        while _running(client) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(client)
        assert _types(client, series) == ["Ultrasound"]
        assert updater.alive()
    finally:
        updater.stop()
    assert not updater.alive()
