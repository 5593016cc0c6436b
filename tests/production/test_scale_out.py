"""Two hosts, one box: two `slicebox serve` with their own data dirs, one PostgreSQL schema, one bucket.

Images stored through either host are visible and downloadable on both; one
process of the two runs the long-running side (the service lock); SIGKILL of
the host running it hands the side to the other within 15 s, and a box
transfer in flight at that moment finishes, each image delivered once.
"""
from __future__ import annotations

import os
import time

import psycopg
import pytest
from boxes.boxproc import BoxProcess, wait_for
from pg import PgSchema, require_postgres
from factories import make_dicom_bytes
from s3server import all_keys, box_config

from slicebox.db import lock_key

pytestmark = pytest.mark.slow

TAKEOVER_LIMIT = 15.0
RUNS_SIDE = "runs the long-running services"
IMAGES = 40


def service_lock_holders(schema: PgSchema) -> int:
    """Granted PostgreSQL advisory locks with this schema's service-lock key."""
    key = lock_key(schema.name, "service") & 0xFFFFFFFFFFFFFFFF
    with psycopg.connect(schema.url.split("?")[0], autocommit=True) as conn:
        rows = conn.execute("SELECT classid::bigint, objid::bigint FROM pg_locks "
                            "WHERE locktype = 'advisory' AND granted AND objsubid = 1").fetchall()
    return sum(1 for high, low in rows if (high << 32) | low == key)


def runs_side(host: BoxProcess) -> bool:
    return RUNS_SIDE in host.output()


@pytest.fixture
def hosts(tmp_path, moto_server, bucket):
    require_postgres()
    schema = PgSchema()
    started: list[BoxProcess] = []
    settings = dict(box_config(moto_server.url, bucket), NAME="hospital", SERVICE_LOCK_RETRY="1",
                    SUPERVISOR_INTERVAL="1", BOX_PARALLELISM="1", BOX_BATCH_SIZE="2", LOG_LEVEL="INFO")
    try:
        for name in ("host-a", "host-b"):
            host = BoxProcess(name, str(tmp_path / name), database_url=schema.url, **settings)
            host.env["SLICEBOX_NAME"] = "hospital"
            started.append(host.start())
            if name == "host-a":  # A first, so it is the one holding the lock
                wait_for(lambda: runs_side(started[0]), timeout=60, what="host A runs the side")
        uni = BoxProcess("uni", str(tmp_path / "uni"))
        started.append(uni.start())
        yield started[0], started[1], uni, schema
    finally:
        for box in started:
            box.stop()
        schema.drop()


def test_two_hosts_share_images_and_hand_over_the_long_running_side(hosts, moto_server, bucket):
    a, b, uni, schema = hosts

    # images stored through either host are visible and downloadable on both
    on_a = make_dicom_bytes(PatientName="Shared^One", PatientID="S1")
    on_b = make_dicom_bytes(PatientName="Shared^Two", PatientID="S2")
    id_a, id_b = a.upload(on_a)["id"], b.upload(on_b)["id"]
    for host in (a, b):
        assert host.request("GET", f"/images/{id_a}").data == on_a
        assert host.request("GET", f"/images/{id_b}").data == on_b
        names = {p["patientName"]["value"] for p in host.json("GET", "/metadata/patients")}
        assert names == {"Shared^One", "Shared^Two"}
    assert all_keys(moto_server.client(), bucket) == sorted([f"images/{id_a}", f"images/{id_b}"])
    assert os.listdir(os.path.join(b.data_dir, "tmp")) == []  # nothing stays local to a host

    # exactly one process (of both hosts' workers) runs the long-running side: A's
    assert service_lock_holders(schema) == 1
    assert runs_side(a) and not runs_side(b)
    for host in (a, b):
        assert host.json("GET", "/system/health") == {"status": "ok", "database": "ok", "storage": "ok"}

    # a transfer to another box, in flight when A is killed
    poll_box = uni.json("POST", "/boxes/createconnection", {"name": "hospital"})
    push_box = b.json("POST", "/boxes/connect", {"name": "uni", "baseUrl": poll_box["baseUrl"]})
    ids = [(a if i % 2 else b).upload(make_dicom_bytes(PatientName="Moving^Pat", PatientID="M1"))["id"]
           for i in range(IMAGES)]
    b.json("POST", f"/boxes/{push_box['id']}/send",
           {"profile": {"options": []}, "imageTagValuesSet": [{"imageId": i, "tagValues": []} for i in ids]},
           expect=201)
    wait_for(lambda: uni.count_images() >= 2, timeout=60, interval=0.02, what="the transfer under way")
    a.kill()
    killed_at = time.monotonic()
    delivered_before = uni.count_images()
    assert delivered_before < IMAGES, "the transfer finished before the kill; nothing was in flight"

    wait_for(lambda: runs_side(b), timeout=TAKEOVER_LIMIT + 5, interval=0.05, what="host B takes over")
    takeover = time.monotonic() - killed_at
    assert takeover < TAKEOVER_LIMIT, f"took {takeover:.1f} s"
    assert service_lock_holders(schema) == 1

    out = wait_for(lambda: [t for t in b.json("GET", "/boxes/outgoing") if t["status"] == "FINISHED"],
                   timeout=120, what="the outgoing transaction FINISHED")
    assert len(out) == 1 and out[0]["sentImageCount"] == IMAGES
    incoming = wait_for(lambda: [t for t in uni.json("GET", "/boxes/incoming") if t["status"] == "FINISHED"],
                        timeout=60, what="uni's incoming transaction FINISHED")
    assert len(uni.json("GET", "/boxes/incoming")) == 1
    assert incoming[0]["receivedImageCount"] == IMAGES and incoming[0]["addedImageCount"] == IMAGES
    assert uni.count_images() == IMAGES  # each image once
    # and the images stored on A before it died are still served by B
    assert b.request("GET", f"/images/{id_a}").data == on_a
