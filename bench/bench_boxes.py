"""Box-to-box benchmark: two real boxes on this machine, 1,000 CT images pushed one way and polled back.

Usage (from the repository root):

    python bench/bench_boxes.py                # 1,000 images of 512x512x16 bit
    python bench/bench_boxes.py --count 200    # quick run

Two `slicebox serve` processes (SQLite, 2 workers each) are connected as in production: "uni" creates
the connection, "hospital" connects and does all the talking.  Printed, all in the same run:

- reference: plain HTTP upload of the same files to the hospital box (POST /api/images, 4 clients);
- push: hospital sends every image to uni (anonymized with the basic profile on the way out,
  zlib on the wire, stored through uni's ingest), from POST /boxes/{id}/send until uni's
  incoming transaction is FINISHED;
- poll: uni sends the anonymous images back; hospital polls, fetches, re-identifies them onto the
  original rows.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)

from bench_ingest import generate, start_slicebox, stop, upload_all  # noqa: E402

AUTH = "Basic " + base64.b64encode(b"admin:admin").decode()


def start_box(work: str, name: str, log, level: int) -> tuple[subprocess.Popen, int]:
    return start_slicebox(work, 2, "", log, extra_env={
        "SLICEBOX_NAME": name,
        "SLICEBOX_BOX_POLL_INTERVAL": "0.2",
        "SLICEBOX_BOX_COMPRESSION_LEVEL": str(level),
    })


def call(port: int, method: str, path: str, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api{path}", data=data, method=method,
                                     headers={"Authorization": AUTH, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def wait_incoming_finished(port: int, total: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        incoming = call(port, "GET", "/boxes/incoming?count=1000")
        if any(t["status"] == "FINISHED" and t["totalImageCount"] == total for t in incoming):
            return
        time.sleep(0.05)
    raise RuntimeError(f"transfer of {total} images not finished after {timeout:.0f} s")


def send(port: int, box_id: int, image_ids: list[int]) -> None:
    call(port, "POST", f"/boxes/{box_id}/send", {
        "profile": {"options": []},
        "imageTagValuesSet": [{"imageId": i, "tagValues": []} for i in image_ids]})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000, help="number of images (default 1000)")
    parser.add_argument("--level", type=int, default=1, help="SLICEBOX_BOX_COMPRESSION_LEVEL of both boxes")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)

    work = tempfile.mkdtemp(prefix="sbx-bench-boxes-")
    log = open(os.path.join(work, "servers.log"), "ab")
    procs = []
    try:
        print(f"generating {args.count} CT images in {work} ...", flush=True)
        os.makedirs(os.path.join(work, "files"))
        files = generate(os.path.join(work, "files"), args.count, series=4)
        mb = sum(os.path.getsize(f) for f in files) / 1e6
        uni, uni_port = start_box(work, "uni", log, args.level)
        procs.append(uni)
        hospital, hospital_port = start_box(work, "hospital", log, args.level)
        procs.append(hospital)
        poll_box = call(uni_port, "POST", "/boxes/createconnection", {"name": "hospital"})
        push_box = call(hospital_port, "POST", "/boxes/connect", {"name": "uni", "baseUrl": poll_box["baseUrl"]})

        rows = []
        seconds, statuses = upload_all(hospital_port, "/api/images", files, 4)
        if statuses.get(201) != len(files):
            raise RuntimeError(f"upload answered {statuses}")
        rows.append(("reference: HTTP upload to a box (4 clients)", seconds))
        ids = sorted(p["id"] for p in call(hospital_port, "POST", "/metadata/images/query",
                                           {"startIndex": 0, "count": args.count, "queryProperties": []}))

        start = time.perf_counter()
        send(hospital_port, push_box["id"], ids)
        wait_incoming_finished(uni_port, len(ids), timeout=60 + args.count)
        rows.append(("push hospital -> uni (anonymize, deflate, store)", time.perf_counter() - start))

        back = sorted(p["id"] for p in call(uni_port, "POST", "/metadata/images/query",
                                            {"startIndex": 0, "count": args.count, "queryProperties": []}))
        start = time.perf_counter()
        send(uni_port, poll_box["id"], back)
        wait_incoming_finished(hospital_port, len(back), timeout=60 + args.count)
        rows.append(("poll uni -> hospital (re-identify onto originals)", time.perf_counter() - start))

        print(f"\n{args.count} images, {mb:.0f} MB, deflate level {args.level}; "
              f"load average {os.getloadavg()[0]:.1f}")
        print(f"{'what':52} {'img/s':>8} {'MB/s':>8} {'vs upload':>10}")
        reference = rows[0][1]
        for label, secs in rows:
            print(f"{label:52} {args.count / secs:8.1f} {mb / secs:8.1f} {reference / secs:10.2f}")
        return 0
    finally:
        for proc in procs:
            stop(proc)
        log.close()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
