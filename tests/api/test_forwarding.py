"""Forwarding rules driven in-process: batching by series, delivery to a box (the peer's side of
the token protocol played by the test), keepImages, deleting a rule, crash recovery of a dispatch,
an SCU destination that cannot be reached yet."""
from __future__ import annotations

import pytest
from factories import make_dicom_bytes

from slicebox.services import filtering, forwarding


@pytest.fixture
def peer(client):
    """A POLL box: the peer that fetches what we queue for it through the token routes."""
    r = client.post("/api/boxes/createconnection", json={"name": "peer"})
    assert r.status_code == 201
    return r.get_json()


def _admin_id(client) -> int:
    return next(u["id"] for u in client.get("/api/users").get_json() if u["user"] == "admin")


def _rule(client, destination_type, destination_id, keep_images=True, status=201) -> dict:
    r = client.post("/api/forwarding/rules", json={
        "source": {"sourceType": "user", "sourceId": _admin_id(client), "sourceName": "admin"},
        "destination": {"destinationType": destination_type, "destinationId": destination_id},
        "keepImages": keep_images})
    assert r.status_code == status, r.get_json()
    return r.get_json()


def _upload(upload, series_uid) -> int:
    r = upload(make_dicom_bytes(SeriesInstanceUID=series_uid))
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def _outgoing(client) -> list[dict]:
    return sorted(client.get("/api/boxes/outgoing").get_json(), key=lambda t: t["id"])


def _peer_fetches_all(anon_client, peer) -> int:
    """Play the remote box: poll, fetch, done, until nothing is left; returns the images fetched."""
    fetched = 0
    while True:
        r = anon_client.get(f"/api/transactions/{peer['token']}/outgoing/poll?n=100")
        if r.status_code == 404:
            return fetched
        for item in r.get_json():
            data = anon_client.get(f"/api/transactions/{peer['token']}/outgoing",
                                   query_string={"transactionid": item["transaction"]["id"],
                                                 "imageid": item["image"]["id"]})
            assert data.status_code == 200
            done = anon_client.post(f"/api/transactions/{peer['token']}/outgoing/done",
                                    json={"transaction": {"id": item["transaction"]["id"]},
                                          "image": {"id": item["image"]["id"]}})
            assert done.status_code == 204
            fetched += 1


def _queue_rows(services) -> tuple[int, int]:
    with services.db.connection() as conn:
        return (conn.scalar("SELECT COUNT(*) FROM forwarding_images"),
                conn.scalar("SELECT COUNT(*) FROM forwarding_transactions"))


def test_a_series_travels_as_one_transaction_and_keep_images_false_deletes_after_delivery(
        client, anon_client, upload, peer, services, clock):
    _rule(client, "box", peer["id"], keep_images=False)
    a = [_upload(upload, "1.2.3.80.1") for _ in range(3)]
    b = [_upload(upload, "1.2.3.80.2")]
    forwarding.run_once(services)
    assert _outgoing(client) == []  # the series are not quiet yet
    clock.advance(2)
    a.append(_upload(upload, "1.2.3.80.1"))  # series A keeps arriving
    clock.advance(2)
    forwarding.run_once(services)
    out = _outgoing(client)
    assert [t["totalImageCount"] for t in out] == [1]  # series B was quiet for 4 s, A for 2 s
    clock.advance(2)
    forwarding.run_once(services)
    forwarding.run_once(services)  # nothing twice
    out = _outgoing(client)
    assert [t["totalImageCount"] for t in out] == [1, 4]
    assert sorted(i["id"] for i in client.get(f"/api/boxes/outgoing/{out[1]['id']}/images").get_json()) == a
    # not delivered yet: everything is still here
    assert all(client.get(f"/api/images/{i}").status_code == 200 for i in a + b)
    assert _peer_fetches_all(anon_client, peer) == 5
    assert all(t["status"] == "FINISHED" for t in _outgoing(client))
    forwarding.run_once(services)
    assert all(client.get(f"/api/images/{i}").status_code == 404 for i in a + b)
    assert _queue_rows(services) == (0, 0)
    messages = [e["message"] for e in client.get("/api/log", query_string={"subject": "Forwarding"}).get_json()]
    assert any("deleted 5 forwarded image(s)" in m for m in messages)


def test_keep_images_true_keeps_them_and_only_new_images_are_forwarded(
        client, anon_client, upload, peer, services, clock):
    _rule(client, "box", peer["id"], keep_images=True)
    first = _upload(upload, "1.2.3.81.1")
    assert upload(client.get(f"/api/images/{first}").data).status_code == 200  # a duplicate: not queued again
    clock.advance(5)
    forwarding.run_once(services)
    assert _peer_fetches_all(anon_client, peer) == 1
    forwarding.run_once(services)
    assert client.get(f"/api/images/{first}").status_code == 200
    assert _queue_rows(services) == (0, 0)
    assert len(_outgoing(client)) == 1


def test_deleting_a_rule_stops_its_pending_work(client, upload, peer, services, clock):
    rule = _rule(client, "box", peer["id"], keep_images=False)
    sent = _upload(upload, "1.2.3.82.1")
    clock.advance(5)
    forwarding.run_once(services)
    assert len(_outgoing(client)) == 1  # under way to the box
    waiting = _upload(upload, "1.2.3.82.2")  # not batched yet
    assert client.delete(f"/api/forwarding/rule/{rule['id']}").status_code == 204
    assert _outgoing(client) == []  # the box transaction under way is gone
    assert _queue_rows(services) == (0, 0)
    clock.advance(5)
    forwarding.run_once(services)
    assert _outgoing(client) == []
    assert client.get(f"/api/images/{sent}").status_code == 200
    assert client.get(f"/api/images/{waiting}").status_code == 200
    assert client.get("/api/forwarding/rules").get_json() == []


def test_a_dispatch_interrupted_by_a_crash_is_adopted_not_repeated(client, upload, peer, services, clock):
    _rule(client, "box", peer["id"])
    for _ in range(2):
        _upload(upload, "1.2.3.83.1")
    clock.advance(5)
    forwarding.run_once(services)
    [out] = _outgoing(client)
    # the state a crash leaves between the box queueing the images and us recording it
    with services.db.connection() as conn:
        conn.execute("UPDATE forwarding_transactions SET status = 'DISPATCHING', outgoing_id = NULL")
    forwarding.run_once(services)
    assert [t["id"] for t in _outgoing(client)] == [out["id"]]
    with services.db.connection() as conn:
        row = conn.one("SELECT status, outgoing_id FROM forwarding_transactions")
    assert (row["status"], row["outgoing_id"]) == ("ENROUTE", out["id"])


def test_a_crash_before_the_box_queued_them_queues_them_once(client, upload, peer, services, clock):
    _rule(client, "box", peer["id"])
    _upload(upload, "1.2.3.84.1")
    clock.advance(5)
    forwarding.close_batches(services, 10 ** 15, 0)
    with services.db.connection() as conn:
        conn.execute("UPDATE forwarding_transactions SET status = 'DISPATCHING', updated = ?", (clock.ms,))
    forwarding.run_once(services)
    forwarding.run_once(services)
    assert [t["totalImageCount"] for t in _outgoing(client)] == [1]


def test_an_unreachable_scu_destination_fails_clearly_and_is_retried(client, upload, services, clock):
    with services.db.connection() as conn:
        scu_id = conn.scalar("INSERT INTO scus (name, ae_title, host, port) VALUES ('pacs', 'PACS', "
                             "'127.0.0.1', 11112) RETURNING id")
    rule = _rule(client, "scu", scu_id, keep_images=False)
    assert rule["destination"] == {"destinationType": "scu", "destinationName": "pacs", "destinationId": scu_id}
    image = _upload(upload, "1.2.3.85.1")
    clock.advance(5)
    forwarding.run_once(services)
    with services.db.connection() as conn:
        tx = conn.one("SELECT status, attempts, next_attempt FROM forwarding_transactions")
    assert tx["status"] == "PENDING" and tx["attempts"] == 1 and tx["next_attempt"] > clock.ms
    warnings = [e["message"] for e in client.get("/api/log", query_string={"subject": "Forwarding"}).get_json()
                if e["entryType"] == "WARN"]
    assert any("scu 'pacs'" in m and "retrying" in m for m in warnings)  # nothing listens on its port
    forwarding.run_once(services)  # not due yet
    with services.db.connection() as conn:
        assert conn.scalar("SELECT attempts FROM forwarding_transactions") == 1
    clock.advance(3)
    forwarding.run_once(services)
    with services.db.connection() as conn:
        assert conn.scalar("SELECT attempts FROM forwarding_transactions") == 2
    assert client.get(f"/api/images/{image}").status_code == 200  # never lost


def test_forwarding_rule_routes(client, user_client, peer):
    rule = _rule(client, "box", peer["id"], keep_images=False)
    assert rule["source"] == {"sourceType": "user", "sourceName": "admin", "sourceId": _admin_id(client)}
    assert rule["destination"] == {"destinationType": "box", "destinationName": "peer", "destinationId": peer["id"]}
    assert rule["keepImages"] is False
    # the same source and destination again: the existing rule, unchanged
    again = _rule(client, "box", peer["id"], keep_images=True)
    assert again == rule
    assert client.get("/api/forwarding/rules").get_json() == [rule]
    assert user_client.get("/api/forwarding/rules").status_code == 200
    bad = [
        {"source": {"sourceType": "user", "sourceId": 999}, "destination": {"destinationType": "box",
                                                                           "destinationId": peer["id"]}},
        {"source": {"sourceType": "user", "sourceId": 1}, "destination": {"destinationType": "box",
                                                                         "destinationId": 999}},
    ]
    for body in bad:
        assert client.post("/api/forwarding/rules", json=body).status_code == 404
    for body in ({"source": {"sourceType": "moon", "sourceId": 1},
                  "destination": {"destinationType": "box", "destinationId": peer["id"]}},
                 {"source": {"sourceType": "user", "sourceId": 1},
                  "destination": {"destinationType": "fax", "destinationId": 1}},
                 {"source": {"sourceType": "user", "sourceId": 1},
                  "destination": {"destinationType": "box", "destinationId": peer["id"]}, "keepImages": "no"},
                 {"source": {"sourceType": "box", "sourceId": peer["id"]},
                  "destination": {"destinationType": "box", "destinationId": peer["id"]}},
                 [1, 2]):
        assert client.post("/api/forwarding/rules", json=body).status_code == 400, body
    assert user_client.post("/api/forwarding/rules", json={}).status_code == 403
    assert user_client.delete(f"/api/forwarding/rule/{rule['id']}").status_code == 403
    assert client.delete(f"/api/forwarding/rule/{rule['id']}").status_code == 204
    assert client.delete(f"/api/forwarding/rule/{rule['id']}").status_code == 204
    assert client.get("/api/forwarding/rules").get_json() == []


def test_rules_and_associations_of_deleted_sources_and_destinations_are_swept(client, upload, peer, services, clock):
    rule = _rule(client, "box", peer["id"], keep_images=False)
    image = _upload(upload, "1.2.3.86.1")
    clock.advance(5)
    forwarding.run_once(services)
    r = client.post("/api/filtering/filters", json={"name": "f", "tagFilterType": "BLACKLIST"})
    alice = client.post("/api/users", json={"user": "alice", "role": "USER", "password": "pw"}).get_json()
    assert client.post("/api/filtering/associations", json={
        "sourceType": "user", "sourceId": alice["id"], "tagFilterId": r.get_json()["id"]}).status_code == 201
    assert forwarding.purge_orphans(services) == [] and filtering.purge_orphans(services) == 0
    assert client.delete(f"/api/boxes/{peer['id']}").status_code == 204
    assert client.delete(f"/api/users/{alice['id']}").status_code == 204
    assert forwarding.purge_orphans(services) == [rule["id"]]
    assert filtering.purge_orphans(services) == 1
    assert client.get("/api/forwarding/rules").get_json() == []
    assert client.get("/api/filtering/associations").get_json() == []
    assert client.get(f"/api/images/{image}").status_code == 200  # kept although keepImages=false
