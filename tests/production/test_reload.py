"""Graceful reload of `slicebox serve`: SIGHUP replaces the workers while an upload is half sent.

The upload started on an old worker finishes (201, stored whole); new workers
answer; the long-running side moves from the old worker to a new one.
"""
from __future__ import annotations

import base64
import http.client
import json
import os
import signal

import pytest
from boxes.boxproc import BoxProcess, wait_for
from factories import make_dicom_bytes
from procs import worker_pids

pytestmark = pytest.mark.slow

RUNS_SIDE = "runs the long-running services"


def test_sighup_reloads_without_failing_a_running_upload(tmp_path):
    box = BoxProcess("reload", str(tmp_path / "box"), WORKERS="2", THREADS="2", LOG_LEVEL="INFO",
                     SERVICE_LOCK_RETRY="0.5").start()
    try:
        master = box.proc.pid
        old_workers = worker_pids(master)
        assert len(old_workers) == 2
        wait_for(lambda: RUNS_SIDE in box.output(), timeout=30, what="a worker runs the side")
        data = make_dicom_bytes(PatientName="Reload^Patient", rows=256, columns=256)
        half = len(data) // 2
        conn = http.client.HTTPConnection("127.0.0.1", box.port, timeout=60)
        conn.putrequest("POST", "/api/images")
        conn.putheader("Authorization", "Basic " + base64.b64encode(b"admin:secret").decode())
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Content-Length", str(len(data)))
        conn.endheaders()
        conn.send(data[:half])

        os.kill(master, signal.SIGHUP)
        new_workers = wait_for(lambda: [p for p in worker_pids(master) if p not in old_workers][:2]
                               if len([p for p in worker_pids(master) if p not in old_workers]) >= 2 else None,
                               timeout=90, what="two new workers")
        conn.send(data[half:])
        response = conn.getresponse()
        body = response.read()
        conn.close()
        assert response.status == 201, body
        image_id = json.loads(body)["id"]

        wait_for(lambda: not set(old_workers) & set(worker_pids(master)), timeout=60,
                 what="the old workers gone")
        assert box.request("GET", f"/images/{image_id}").data == data
        assert box.request("GET", "/system/health").status == 200
        # the long-running side moved to a new worker
        wait_for(lambda: any(f"(pid {p}) {RUNS_SIDE}" in box.output() for p in new_workers), timeout=30,
                 what="a new worker runs the side")
        assert box.proc.poll() is None  # the same master all along
    finally:
        box.stop()
