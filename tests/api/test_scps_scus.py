"""SCP and SCU registries through the API (validation as in Slicebox 2.0), on SQLite and PostgreSQL."""
from __future__ import annotations


def test_scp_add_list_delete(client):
    r = client.post("/api/scps", json={"name": "pacs", "aeTitle": "SLICEBOX", "port": 11112})
    assert r.status_code == 201
    scp = r.get_json()
    assert scp == {"id": scp["id"], "name": "pacs", "aeTitle": "SLICEBOX", "port": 11112}
    assert client.get("/api/scps").get_json() == [scp]
    assert client.delete(f"/api/scps/{scp['id']}").status_code == 204
    assert client.get("/api/scps").get_json() == []
    assert client.delete(f"/api/scps/{scp['id']}").status_code == 204  # gone already: still 204


def test_scp_validation(client):
    def post(**body):
        return client.post("/api/scps", json={"name": "x", "aeTitle": "AE", "port": 104, **body})

    assert post(aeTitle="A" * 17).status_code == 400
    assert post(aeTitle="   ").status_code == 400
    assert post(aeTitle="BAD\\AE").status_code == 400
    assert post(port=70000).status_code == 400
    assert post(port=0).status_code == 400
    assert post(port="104").status_code == 400
    assert post(name="").status_code == 400
    r = post(aeTitle=" SIXTEEN-CHARS-AE ")  # 17 with spaces, 16 after trimming
    assert r.status_code == 201 and r.get_json()["aeTitle"] == "SIXTEEN-CHARS-AE"
    r = client.post("/api/scps", json={"name": "other", "aeTitle": "AE", "port": 104})
    assert r.status_code == 400 and "port 104" in r.get_json()["error"]
    # the same name returns the existing SCP unchanged
    again = client.post("/api/scps", json={"name": "x", "aeTitle": "ELSE", "port": 105})
    assert again.status_code == 201 and again.get_json()["aeTitle"] == "SIXTEEN-CHARS-AE"
    assert client.post("/api/scps", data="nope", content_type="application/json").status_code == 400


def test_scp_and_scu_changes_need_an_administrator(client, user_client):
    assert user_client.post("/api/scps", json={"name": "x", "aeTitle": "AE", "port": 104}).status_code == 403
    assert user_client.post("/api/scus", json={"name": "x", "aeTitle": "AE", "host": "h",
                                               "port": 104}).status_code == 403
    scu = client.post("/api/scus", json={"name": "x", "aeTitle": "AE", "host": "h", "port": 104}).get_json()
    assert user_client.delete(f"/api/scus/{scu['id']}").status_code == 403
    assert user_client.get("/api/scus").status_code == 200
    assert user_client.get("/api/scps").status_code == 200


def test_scu_add_list_delete_and_validation(client):
    r = client.post("/api/scus", json={"name": "pacs", "aeTitle": "ORTHANC", "host": "pacs.example.org",
                                       "port": 4242})
    assert r.status_code == 201
    scu = r.get_json()
    assert scu == {"id": scu["id"], "name": "pacs", "aeTitle": "ORTHANC", "host": "pacs.example.org",
                   "port": 4242}
    assert client.get("/api/scus?startindex=0&count=5").get_json() == [scu]
    r = client.post("/api/scus", json={"name": "dup", "aeTitle": "X", "host": "pacs.example.org", "port": 4242})
    assert r.status_code == 400 and "4242" in r.get_json()["error"]
    for bad in ({"aeTitle": "A" * 17}, {"port": 65536}, {"host": ""}, {"host": "a b"}):
        body = {"name": "n", "aeTitle": "AE", "host": "h", "port": 1, **bad}
        assert client.post("/api/scus", json=body).status_code == 400, bad
    assert client.delete(f"/api/scus/{scu['id']}").status_code == 204
    assert client.get("/api/scus").get_json() == []


def test_scps_and_scus_are_sources_and_destinations(client):
    scp = client.post("/api/scps", json={"name": "in", "aeTitle": "AE", "port": 104}).get_json()
    scu = client.post("/api/scus", json={"name": "out", "aeTitle": "AE", "host": "h", "port": 104}).get_json()
    assert {"sourceType": "scp", "sourceName": "in", "sourceId": scp["id"]} in client.get("/api/sources").get_json()
    assert {"destinationType": "scu", "destinationName": "out", "destinationId": scu["id"]} \
        in client.get("/api/destinations").get_json()


def test_send_body_must_be_a_list_of_ids(client):
    scu = client.post("/api/scus", json={"name": "x", "aeTitle": "AE", "host": "h", "port": 104}).get_json()
    assert client.post(f"/api/scus/{scu['id']}/send", json={"ids": [1]}).status_code == 400
    assert client.post(f"/api/scus/{scu['id']}/send", json=["1"]).status_code == 400
    assert client.post(f"/api/scus/{scu['id']}/send", json=[]).status_code == 204
