"""A forwarding rule to a second real box, the sender killed (SIGKILL) while forwarding is pending:
first while the images wait in the forwarding queue, then while the box transaction waits for the
unreachable destination.  Every image arrives once and, with keepImages=false, is gone from the
sender afterwards.  The sender runs on SQLite and on PostgreSQL."""
from __future__ import annotations

import json
import os

import pytest
from boxproc import BoxProcess, wait_for
from factories import make_dicom_bytes

pytestmark = pytest.mark.slow


def _admin_id(box: BoxProcess) -> int:
    return next(u["id"] for u in box.json("GET", "/users") if u["user"] == "admin")


def test_forwarding_survives_sender_restarts_and_delivers_each_image_once(tmp_path, db_kind, database_url):
    uni = BoxProcess("uni", str(tmp_path / "uni")).start()
    hospital = BoxProcess("hospital", str(tmp_path / "hospital"),
                          database_url=database_url if db_kind == "postgres" else "",
                          FORWARDING_QUIET=4, FORWARDING_INTERVAL=0.3, SUPERVISOR_INTERVAL=1).start()
    try:
        poll_box = uni.json("POST", "/boxes/createconnection", {"name": "hospital"})
        push_box = hospital.json("POST", "/boxes/connect", {"name": "uni", "baseUrl": poll_box["baseUrl"]})
        hospital.json("POST", "/forwarding/rules", {
            "source": {"sourceType": "user", "sourceId": _admin_id(hospital)},
            "destination": {"destinationType": "box", "destinationId": push_box["id"]},
            "keepImages": False}, expect=201)
        uni.stop()  # the destination is unreachable for a while

        first = [hospital.upload(make_dicom_bytes(SeriesInstanceUID="1.2.3.90.1"))["id"] for _ in range(6)]
        second = [hospital.upload(make_dicom_bytes(SeriesInstanceUID="1.2.3.90.2"))["id"] for _ in range(2)]
        ids = first + second
        # killed while the images wait in the forwarding queue (the series are not quiet yet)
        assert hospital.json("GET", "/boxes/outgoing") == []
        hospital.kill()
        hospital.start()

        # the forwarding transactions are handed to the box service, which cannot reach uni
        out = wait_for(lambda: (lambda o: o if len(o) == 2 else None)(hospital.json("GET", "/boxes/outgoing")),
                       timeout=300, what="two outgoing box transactions (one per series)")
        assert sorted(t["totalImageCount"] for t in out) == [2, 6]
        assert all(t["sentImageCount"] == 0 for t in out)
        # killed while the forwarding transactions are under way
        hospital.kill()
        hospital.start()
        uni.start()

        wait_for(lambda: uni.count_images() == len(ids), timeout=300, what="all images on uni")
        gone = wait_for(lambda: all(hospital.request("GET", f"/images/{i}").status == 404 for i in ids),
                        timeout=300, what="forwarded images deleted from the sender")
        assert gone
        # every image arrived once: one incoming row per image, no image counted twice
        incoming = wait_for(lambda: (lambda t: t if len(t) == 2 and all(x["status"] == "FINISHED" for x in t)
                                     else None)(uni.json("GET", "/boxes/incoming")),
                            timeout=300, what="two FINISHED incoming transactions")
        assert sorted(t["receivedImageCount"] for t in incoming) == [2, 6]
        assert sorted(t["addedImageCount"] for t in incoming) == [2, 6]
        assert uni.sql("SELECT COUNT(*) FROM incoming_images")[0][0] == len(ids)
        assert uni.sql("SELECT COUNT(DISTINCT sop_instance_uid) FROM images")[0][0] == len(ids)
        assert len([f for f in os.listdir(os.path.join(uni.data_dir, "storage")) if f.isdigit()]) == len(ids)
        out = hospital.json("GET", "/boxes/outgoing")
        assert sorted((t["totalImageCount"], t["status"]) for t in out) == [(2, "FINISHED"), (6, "FINISHED")]
        log = hospital.json("GET", "/log?subject=Forwarding&count=100")
        assert any("deleted" in e["message"] and "keepImages=false" in e["message"] for e in log), json.dumps(log)
        assert hospital.json("GET", "/metadata/patients") == []
    except AssertionError:
        print("--- hospital ---\n" + hospital.output() + "\n--- uni ---\n" + uni.output())
        print(json.dumps(hospital.json("GET", "/boxes/outgoing")), json.dumps(hospital.json("GET", "/log?count=50")))
        if db_kind == "postgres":
            import psycopg

            with psycopg.connect(database_url.split("?")[0]) as conn:
                conn.execute(f"SET search_path TO {database_url.split('schema=')[1]}")
                for table in ("forwarding_transactions", "forwarding_images", "outgoing_images"):
                    print(table, conn.execute(f"SELECT * FROM {table}").fetchall())
        raise
    finally:
        uni.stop()
        hospital.stop()
