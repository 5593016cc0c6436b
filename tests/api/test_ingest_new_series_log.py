"""Ingest logs one "new series" line per series (not per image), decided by the series upsert,
and the upsert still updates an existing series' attributes."""
from __future__ import annotations

import threading

from factories import make_dicom_bytes
from helpers import ADMIN, AuthClient


def _new_series_messages(client) -> list[str]:
    r = client.get("/api/log", query_string={"subject": "Storage", "count": 1000})
    assert r.status_code == 200
    return sorted(e["message"] for e in r.get_json() if e["message"].startswith("new series"))


def _image(series_uid: str, sop_uid: str, **tags) -> bytes:
    return make_dicom_bytes(PatientName="Log^Pat", PatientID="LOG1", StudyInstanceUID="1.2.3.50",
                            SeriesInstanceUID=series_uid, SOPInstanceUID=sop_uid, **tags)


def test_one_log_line_per_new_series(client, upload):
    assert upload(_image("1.2.3.50.1", "1.2.3.50.1.1")).status_code == 201
    assert upload(_image("1.2.3.50.1", "1.2.3.50.1.2")).status_code == 201
    assert upload(_image("1.2.3.50.2", "1.2.3.50.2.1")).status_code == 201
    # the same image again is not stored again and logs nothing
    assert upload(_image("1.2.3.50.1", "1.2.3.50.1.1")).status_code == 200
    messages = _new_series_messages(client)
    assert len(messages) == 2
    assert any("1.2.3.50.1 " in m for m in messages) and any("1.2.3.50.2 " in m for m in messages)


def test_a_series_emptied_and_filled_again_is_new_again(client, upload):
    first = upload(_image("1.2.3.50.3", "1.2.3.50.3.1")).get_json()
    assert client.delete(f"/api/images/{first['id']}").status_code == 204
    assert upload(_image("1.2.3.50.3", "1.2.3.50.3.2")).status_code == 201
    assert len(_new_series_messages(client)) == 2


def test_existing_series_attributes_are_updated_by_a_later_image(client, upload):
    first = upload(_image("1.2.3.50.4", "1.2.3.50.4.1", SeriesDescription="first", Modality="CT")).get_json()
    upload(_image("1.2.3.50.4", "1.2.3.50.4.2", SeriesDescription="second", Modality="CT"))
    series = client.get(f"/api/metadata/series/{first['seriesId']}").get_json()
    rows = client.get("/api/metadata/series", query_string={"studyid": series["studyId"]}).get_json()
    descriptions = [r["seriesDescription"]["value"] for r in rows
                    if r["seriesInstanceUID"]["value"] == "1.2.3.50.4"]
    assert descriptions == ["second"]
    assert len(_new_series_messages(client)) == 1


def test_concurrent_first_images_of_a_series_log_it_once(app, client):
    datas = [_image("1.2.3.50.5", f"1.2.3.50.5.{i}") for i in range(6)]
    statuses = []
    barrier = threading.Barrier(len(datas))

    def post(data):
        own = AuthClient(app.test_client(), ADMIN)
        barrier.wait()
        r = own.post("/api/images", data=data, content_type="application/octet-stream")
        statuses.append(r.status_code)

    threads = [threading.Thread(target=post, args=(d,)) for d in datas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [201] * len(datas)
    assert len(_new_series_messages(client)) == 1
