"""Hostile input against a real `slicebox serve` (gunicorn, 2 workers) on SQLite and PostgreSQL.

Each class of the hostile-input issue, as a client would send it: sequences
nested thousands deep (uploaded, and planted in storage then read every way,
also on its way to a box), decompression bombs (deflated-syntax uploads and
box transfer bodies, two at once), trailing garbage after deflated data, pixel
bombs (a JPEG claiming 65535 x 65535 at wrapping, in a DICOM header, inside a
DICOM's JPEG fragment), PNG output size, and uploads cut off by a killed
worker or box.

After every case the watch asserts: every answer was 4xx/501 within seconds,
no worker died (the gunicorn master's children are the same processes, and its
log reports no dead or timed-out worker), every worker's peak memory
(``VmHWM``) stayed under 500 MB, and the temp folder holds nothing.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "boxes"))

from boxproc import AUTH, BoxProcess, wait_for  # noqa: E402
from pg import PgSchema, require_postgres  # noqa: E402
from factories import make_dicom_bytes  # noqa: E402

import payloads  # noqa: E402

pytestmark = pytest.mark.slow

PEAK_MEMORY_LIMIT = 500 * 1024 * 1024
#: Longest an answer to hostile input may take (a loaded CI machine; they take milliseconds to ~1 s).
ANSWER_SECONDS = 10.0
DEATH_LINES = re.compile(r"(was sent SIG\w+|exited with code|WORKER TIMEOUT|Worker failed to boot)")


# -- the box and its watch ------------------------------------------------------------------
def _children(pid: int) -> set[int]:
    found = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    if int(fh.read().rsplit(b")", 1)[1].split()[1]) == pid:
                        found.add(int(name))
            except (OSError, IndexError, ValueError):
                pass
    return found


def _peak_rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Watched:
    """A running box plus what the watch compares against."""

    def __init__(self, box: BoxProcess):
        self.box = box
        self.temp_dir = os.path.join(box.data_dir, "storage", "tmp")
        self.reset()

    def reset(self) -> None:
        self.workers = wait_for(lambda: self._workers(2), timeout=60, what="2 gunicorn workers")
        self.log_offset = os.path.getsize(self.box.log_path)

    def _workers(self, n: int) -> set[int] | None:
        pids = _children(self.box.proc.pid)
        return pids if len(pids) == n else None

    def log_since(self) -> str:
        with open(self.box.log_path, "rb") as fh:
            fh.seek(self.log_offset)
            return fh.read().decode("utf-8", "replace")

    def check(self) -> None:
        log = self.log_since()
        assert not DEATH_LINES.search(log), f"a worker died:\n{log[-3000:]}"
        assert _children(self.box.proc.pid) == self.workers, f"workers changed:\n{log[-3000:]}"
        for pid in self.workers:
            assert _peak_rss(pid) < PEAK_MEMORY_LIMIT, f"worker {pid} peaked at {_peak_rss(pid) >> 20} MB"
        assert "Traceback" not in log, log[-3000:]
        wait_for(lambda: not os.listdir(self.temp_dir), timeout=10, interval=0.1,
                 what=f"an empty temp folder (left: {os.listdir(self.temp_dir)})")

    # -- requests, timed -----------------------------------------------------------------
    def call(self, method: str, path: str, body=None, raw: bytes | None = None, expect=(400,),
             content_type: str = "application/octet-stream", base: str | None = None):
        # A refused body is not read to its end, so the server closes the connection: never reuse one.
        headers = {"Authorization": AUTH, "Connection": "close"}
        if body is not None:
            import json

            raw = json.dumps(body).encode()
            content_type = "application/json"
        if raw is not None:
            headers["Content-Type"] = content_type
        url = (base or self.box.url + "/api") + path
        started = time.monotonic()
        r = self.box.http.request(method, url, body=raw, headers=headers)
        took = time.monotonic() - started
        expect = (expect,) if isinstance(expect, int) else expect
        assert r.status in expect, f"{method} {path} -> {r.status} {r.data[:300]!r}"
        assert took < ANSWER_SECONDS, f"{method} {path} took {took:.1f} s"
        return r


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def watched(request, tmp_path_factory):
    schema = None
    url = ""
    if request.param == "postgres":
        require_postgres()
        schema = PgSchema()
        url = schema.url
    box = BoxProcess(f"hostile-{request.param}", str(tmp_path_factory.mktemp(request.param)), url,
                     TEMP_SWEEP_INTERVAL=0.3, SUPERVISOR_INTERVAL=0.5, LOG_LEVEL="WARNING").start()
    try:
        yield Watched(box)
    finally:
        box.stop()
        if schema is not None:
            schema.drop()


@pytest.fixture
def w(watched):
    watched.reset()
    yield watched
    watched.check()


def _upload(w: Watched, data: bytes) -> dict:
    r = w.call("POST", "/images", raw=data, expect=(200, 201))
    import json

    return json.loads(r.data)


def _plant(w: Watched, image_id: int, data: bytes) -> None:
    """Replace a stored image's bytes behind the box's back (data stored before a limit existed)."""
    with open(os.path.join(w.box.data_dir, "storage", str(image_id)), "wb") as fh:
        fh.write(data)


# -- depth ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("defined", [True, False], ids=["defined-length", "undefined-length"])
def test_deep_nesting_is_refused_at_upload(w, defined):
    for depth in (65, 5000, 100_000):
        r = w.call("POST", "/images", raw=payloads.deep_dicom(depth, defined, PatientID="DEEP"))
        assert b"nested deeper than 64" in r.data
    # at the limit it is stored and every reader copes
    image = _upload(w, payloads.deep_dicom(64, defined, PatientID="DEEP64"))
    attrs = w.call("GET", f"/images/{image['id']}/attributes", expect=200).json()
    assert max(a["depth"] for a in attrs) == 63  # the sequence whose (empty) items are at depth 64
    w.call("POST", f"/images/{image['id']}/anonymized", body={}, expect=200)


def test_deep_stored_data_is_refused_by_every_reader_and_transfer(w):
    """Data stored before the limit (planted): clear 4xx everywhere, and a box transfer skips it."""
    deep = _upload(w, make_dicom_bytes(PatientID="PLANTED"))
    fine = _upload(w, make_dicom_bytes(PatientID="PLANTED"))
    _plant(w, deep["id"], payloads.deep_dicom(100_000, True, PatientID="PLANTED"))
    i = deep["id"]
    for method, path, body in [("GET", f"/images/{i}/attributes", None),
                               ("GET", f"/images/{i}/png", None),
                               ("POST", f"/images/{i}/anonymized", {}),
                               ("PUT", f"/images/{i}/anonymize", {}),
                               ("PUT", f"/images/{i}/modify",
                                [{"tagPath": {"tag": 0x00100010}, "value": "X"}])]:
        r = w.call(method, path, body=body, expect=(400, 501))
        assert b"nested deeper than 64" in r.data, (path, r.data)
    w.call("GET", f"/images/{i}/imageinformation", expect=(200, 400))
    w.call("GET", f"/images/{i}", expect=200)  # the bytes themselves are still there
    # queued to a box we push to: the transfer worker skips the deep image (logged), delivers the other
    with PeerBox() as peer:
        push = w.box.json("POST", "/boxes/connect", {"name": f"peer-{w.box.name}", "baseUrl": peer.base_url})
        body = {"profile": {"options": []},
                "imageTagValuesSet": [{"imageId": i, "tagValues": []}, {"imageId": fine["id"], "tagValues": []}]}
        tx = w.box.json("POST", f"/boxes/{push['id']}/send", body, expect=201)

        def finished():
            out = [t for t in w.box.json("GET", "/boxes/outgoing") if t["id"] == tx["id"]]
            return out and out[0]["status"] == "FINISHED"

        wait_for(finished, timeout=60, what="the push transaction to finish")
        assert len(peer.received) == 1 and peer.received[0][128:132] == b"DICM"
        w.box.json("DELETE", f"/boxes/{push['id']}", expect=204)
    # and a peer polling us: fetching the deep image is a 400 (skipped for good), the other one arrives
    poll = w.box.json("POST", "/boxes/createconnection", {"name": f"poller-{w.box.name}"})
    tx = w.box.json("POST", f"/boxes/{poll['id']}/send", body, expect=201)
    items = w.call("GET", "/outgoing/poll?n=10", base=poll["baseUrl"], expect=200).json()
    statuses = sorted(w.call("GET", f"/outgoing?transactionid={it['transaction']['id']}&imageid={it['image']['id']}",
                             base=poll["baseUrl"], expect=(200, 400)).status for it in items)
    assert statuses == [200, 400]
    logs = w.box.json("GET", "/log?startindex=0&count=100")
    assert sum("nested deeper than 64" in e["message"] for e in logs) >= 2, logs
    w.box.json("DELETE", f"/boxes/{poll['id']}", expect=204)


class PeerBox:
    """A minimal peer on a real socket that accepts pushed images (zlib or raw deflate, chunked) like a box does."""

    def __init__(self):
        import http.server
        import uuid
        import zlib

        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                    return self.rfile.read(int(self.headers.get("Content-Length", 0)))
                data = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        return data
                    data += self.rfile.read(size)
                    self.rfile.readline()

            def do_POST(self):  # noqa: N802
                body = self._body()
                zlib_format = len(body) > 1 and body[0] & 0x0F == 8 and ((body[0] << 8) | body[1]) % 31 == 0
                received.append(zlib.decompress(body, zlib.MAX_WBITS if zlib_format else -zlib.MAX_WBITS))
                self.send_response(204)
                self.end_headers()

            def do_PUT(self):  # noqa: N802
                self._body()
                self.send_response(204)
                self.end_headers()

            def do_GET(self):  # noqa: N802 - nothing to poll
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/api/transactions/{uuid.uuid4()}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


# -- decompression bombs ---------------------------------------------------------------------------
def test_deflated_bomb_upload_is_refused_early(w):
    bomb = payloads.deflated_bomb(2 << 30)  # 2 MB inflating to 2 GiB
    r = w.call("POST", "/images", raw=bomb, expect=413)
    assert b"inflates to more than" in r.data
    # two at once
    answers: list = []

    def one():
        answers.append(w.call("POST", "/images", raw=bomb, expect=413).status)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert answers == [413, 413]
    # a proper deflated image is stored
    _upload(w, payloads.deflated_dicom(PatientID="DFL"))


def test_deflated_upload_with_trailing_garbage_is_refused(w):
    r = w.call("POST", "/images", raw=payloads.deflated_dicom(trailing=b"GARBAGE!" * 4, PatientID="DFL2"))
    assert b"garbage after the deflated data" in r.data


def test_box_transfer_bomb_and_garbage_are_refused(w):
    poll = w.box.json("POST", "/boxes/createconnection", {"name": f"bomber-{w.box.name}"})
    base = poll["baseUrl"]
    route = "/image?transactionid=1&sequencenumber=1&totalimagecount=1"
    r = w.call("POST", route, raw=payloads.deflate_bomb_stream(2 << 30), expect=(400, 413), base=base)
    assert b"inflates past its limit" in r.data
    import zlib

    c = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = c.compress(make_dicom_bytes(PatientID="BOXG")) + c.flush()
    r = w.call("POST", route, raw=body + b"trailing", expect=400, base=base)
    assert b"data after the end" in r.data
    w.call("POST", route, raw=body, expect=204, base=base)
    w.box.json("DELETE", f"/boxes/{poll['id']}", expect=204)


# -- pixel bombs and output size -------------------------------------------------------------------
def test_jpeg_claiming_65535_squared_is_refused_at_wrapping(w):
    image = _upload(w, make_dicom_bytes(PatientID="JPG"))
    study = w.box.json("GET", f"/metadata/series/{image['seriesId']}")["studyId"]
    bomb = payloads.jpeg(claim=(65535, 65535))
    assert len(bomb) < 1000
    r = w.call("POST", f"/images/jpeg?studyid={study}", raw=bomb, content_type="image/jpeg")
    assert b"larger than this box accepts" in r.data
    w.call("POST", f"/images/jpeg?studyid={study}", raw=payloads.jpeg(), content_type="image/jpeg",
           expect=201)


def test_pixel_claims_are_refused_at_ingest_and_rendering(w):
    # compressed pixel data claiming 65535 x 65535 in the DICOM header: refused at ingest
    r = w.call("POST", "/images", raw=payloads.jpeg_dicom(65535, 65535, PatientID="PXB"))
    assert b"larger than this box accepts" in r.data
    # an 8 x 8 header whose JPEG fragment claims 65535 x 65535: stored, but never decoded
    inner = _upload(w, payloads.jpeg_dicom(8, 8, claim=(65535, 65535), PatientID="PXB"))
    r = w.call("GET", f"/images/{inner['id']}/png", expect=501)
    assert b"compressed frame claims 65535 x 65535" in r.data
    # native data claiming 65535 x 65535 (stored before the limit, or planted): 501 at rendering
    native = _upload(w, make_dicom_bytes(PatientID="PXB"))
    _plant(w, native["id"], payloads.native_claim_dicom(65535, 65535, PatientID="PXB"))
    r = w.call("GET", f"/images/{native['id']}/png", expect=501)
    assert b"larger than this box decodes" in r.data
    ok = _upload(w, payloads.jpeg_dicom(8, 8, PatientID="PXB"))
    w.call("GET", f"/images/{ok['id']}/png", expect=200)


def test_png_output_pixel_count_is_capped_whatever_the_aspect(w):
    wide = _upload(w, make_dicom_bytes(rows=10, columns=150, PatientID="WIDE"))
    r = w.call("GET", f"/images/{wide['id']}/png?imageheight=8192")
    assert b"at most 16777216 pixels" in r.data
    w.call("GET", f"/images/{wide['id']}/png?imageheight=100", expect=200)


# -- leftovers ------------------------------------------------------------------------------------
def _start_endless_upload(w: Watched) -> socket.socket:
    """A chunked upload that sends 8 MB and then waits (the spool file stays open)."""
    sock = socket.create_connection(("127.0.0.1", w.box.port))
    sock.sendall(b"POST /api/images HTTP/1.1\r\nHost: x\r\nAuthorization: " + AUTH.encode() +
                 b"\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"\0" * (1 << 20)
    for _ in range(8):
        sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
    return sock


def _spooled(w: Watched) -> list[str] | None:
    files = [f for f in os.listdir(w.temp_dir)
             if os.path.getsize(os.path.join(w.temp_dir, f)) >= 4 << 20]
    return files or None


def test_uploads_cut_off_by_killed_workers_leave_nothing(watched):
    w = watched
    w.reset()
    socks = [_start_endless_upload(w) for _ in range(2)]
    wait_for(lambda: _spooled(w), timeout=30, interval=0.05, what="spooled uploads")
    for pid in w.workers:  # kill -9 every worker mid-upload
        os.kill(pid, signal.SIGKILL)
    for s in socks:
        s.close()
    wait_for(lambda: w._workers(2) and w._workers(2).isdisjoint(w.workers), timeout=60,
             what="2 new workers")
    wait_for(lambda: not os.listdir(w.temp_dir), timeout=30, interval=0.1,
             what=f"the sweep (left: {os.listdir(w.temp_dir)})")
    # and a whole box killed mid-upload: the restart sweeps its leftovers
    sock = _start_endless_upload(w)
    wait_for(lambda: _spooled(w), timeout=30, interval=0.05, what="a spooled upload")
    w.box.kill()
    sock.close()
    assert os.listdir(w.temp_dir)
    w.box.start()
    wait_for(lambda: not os.listdir(w.temp_dir), timeout=30, interval=0.1,
             what=f"the start-up sweep (left: {os.listdir(w.temp_dir)})")
    w.reset()
    _upload(w, make_dicom_bytes(PatientID="AFTER"))
    w.check()
