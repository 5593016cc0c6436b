"""A peer that plays the original Slicebox 2.0 box on the wire (or one of our boxes before issue 10).

What it does is read from the Scala sources (slicebox/slicebox 2.0.2: TransactionRoutes,
BoxPushOps, BoxPollOps, BoxStreamOps, BoxServiceActor, BoxDAO, BoxJsonFormats) and
/work/shared/reference/slicebox-2.0-behaviour.md:

- bodies: Akka ``Compression.deflate`` = zlib (``Deflater(9, nowrap=false)``) with a SYNC_FLUSH
  after every stream element, sent chunked; read with a default ``Inflater()`` (zlib only, so
  ``zlib.decompressobj()`` here);
- ``POST image`` always answers 204 (a body it cannot inflate or store is logged and counted);
- ``PUT status`` reads ``{"status": "..."}`` only (Play JSON ``BoxTransactionStatus``), else 400;
- ``GET outgoing/poll`` offers unsent images of every transaction that is not FAILED, 404 when none;
  the JSON is what Play's ``Json.format`` writes for ``OutgoingTransactionImage``;
- ``POST outgoing/done`` counts ``min(total, sent + 1)`` and finishes at total.

``mode="old"`` plays our own boxes before issue 10 instead: raw deflate both ways (refused zlib
with a 400 naming raw deflate), Content-Length bodies, a bare-string status accepted.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field

import urllib3
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

#: Akka streams re-chunk the anonymized DICOM stream; any element size does (each is flushed).
ELEMENT = 8192


def akka_deflate_pieces(data: bytes, element: int = ELEMENT):
    """Compression.deflate over a stream of ``element``-sized ByteStrings: one flushed piece each, then the end."""
    c = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS)
    for i in range(0, len(data), element):
        yield c.compress(data[i:i + element]) + c.flush(zlib.Z_SYNC_FLUSH)
    yield c.flush()


def java_inflate(body: bytes) -> bytes:
    """java.util.zip.Inflater() (nowrap=false): zlib format only; raises zlib.error otherwise."""
    d = zlib.decompressobj()
    out = d.decompress(body)
    if not d.eof:
        raise zlib.error("incomplete zlib stream")
    return out


def old_raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


OPTIONS_20 = {  # ConfidentialityOption names and ranks of 2.0
    "BASIC_PROFILE": 10, "CLEAN_PIXEL_DATA": 20, "CLEAN_RECOGNIZABLE_VISUAL_FEATURES": 30, "CLEAN_GRAPHICS": 40,
    "CLEAN_STRUCTURED_CONTENT": 50, "CLEAN_DESCRIPTORS": 60, "RETAIN_LONGITUDINAL_TEMPORAL_INFORMATION": 70,
    "RETAIN_LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED_DATES": 80, "RETAIN_PATIENT_CHARACTERISTICS": 90,
    "RETAIN_DEVICE_IDENTITY": 100, "RETAIN_INSTITUTION_IDENTITY": 110, "RETAIN_UIDS": 120,
    "RETAIN_SAFE_PRIVATE": 130,
}
STATUSES_20 = {"PROCESSING", "WAITING", "FAILED", "FINISHED"}


def play_reads_transaction_image(item) -> None:
    """What Play's Reads[OutgoingTransactionImage] demands (a 2.0 poller fails the batch otherwise)."""
    assert set(item) >= {"transaction", "image"}, item
    tx, img = item["transaction"], item["image"]
    for key in ("id", "boxId", "sentImageCount", "totalImageCount", "created", "updated"):
        assert isinstance(tx[key], int) and not isinstance(tx[key], bool), (key, tx)
    assert isinstance(tx["boxName"], str) and tx["status"] in STATUSES_20, tx
    options = tx["profile"]["options"]
    assert all(isinstance(o, dict) and o["name"] in OPTIONS_20 for o in options), options  # withName throws
    for key in ("id", "outgoingTransactionId", "imageId", "sequenceNumber"):
        assert isinstance(img[key], int) and not isinstance(img[key], bool), (key, img)
    assert isinstance(img["sent"], bool), img


@dataclass
class Received:
    transaction_id: int
    sequence_number: int
    total: int
    body: bytes
    headers: dict
    data: bytes | None  # inflated, None when it could not be


@dataclass
class OutgoingTx:
    id: int
    total: int
    status: str = "WAITING"
    sent: int = 0
    images: list = field(default_factory=list)  # [id, seq, data, sent]


class Peer20:
    """One fake remote box on 127.0.0.1, serving the token routes of its POLL box ``token``."""

    def __init__(self, mode: str = "2.0"):
        assert mode in ("2.0", "old")
        self.mode = mode
        self.token = str(uuid.uuid4())
        self.paused = False  # answer 503 to everything (a box that is away)
        self.status_failures = 0  # answer this many PUT status with 503 first
        self.received: list[Received] = []
        self.statuses: list[tuple[int, bytes, str]] = []
        self.done: list[dict] = []
        self.failed: list[dict] = []
        self.requests: list[tuple[str, str]] = []
        self.outgoing: list[OutgoingTx] = []
        self.lock = threading.Lock()
        self._next_image_id = 100
        self.server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.base_url = f"{self.url}/api/transactions/{self.token}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=120),
                                        headers={"User-Agent": "slicebox"})

    def __enter__(self) -> "Peer20":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- its outgoing queue (what a box polling it gets) --------------------------
    def queue(self, datasets: list[bytes]) -> OutgoingTx:
        with self.lock:
            tx = OutgoingTx(id=len(self.outgoing) + 1, total=len(datasets))
            for seq, data in enumerate(datasets, start=1):
                self._next_image_id += 1
                tx.images.append([self._next_image_id, seq, data, False])
            self.outgoing.append(tx)
            return tx

    def _tx_json(self, tx: OutgoingTx) -> dict:
        return {"id": tx.id, "boxId": 1, "boxName": "python-box",
                "profile": {"options": [{"name": "BASIC_PROFILE", "title": "Basic Profile",
                                         "description": "", "rank": 10}]},
                "sentImageCount": tx.sent, "totalImageCount": tx.total,
                "created": 1700000000000 + tx.id, "updated": 1700000000000 + tx.id, "status": tx.status}

    def _item_json(self, tx: OutgoingTx, image: list) -> dict:
        return {"transaction": self._tx_json(tx),
                "image": {"id": image[0], "outgoingTransactionId": tx.id, "imageId": image[0] + 1000,
                          "sequenceNumber": image[1], "sent": image[3]}}

    # -- the server side ------------------------------------------------------------
    def _app(self, environ, start_response):
        request = Request(environ)
        response = self._route(request)
        return response(environ, start_response)

    def _route(self, request: Request) -> Response:
        self.requests.append((request.method, request.path))
        if self.paused:
            return Response("paused", status=503)
        prefix = f"/api/transactions/{self.token}"
        if not request.path.startswith(prefix + "/"):
            return Response(f"No box found for token", status=401)
        route = request.path[len(prefix):]
        args = request.args
        if route == "/image" and request.method == "POST":
            return self._receive(request, int(args["transactionid"]), int(args["sequencenumber"]),
                                 int(args["totalimagecount"]))
        if route == "/status" and request.method == "PUT":
            raw = request.get_data()
            with self.lock:
                self.statuses.append((int(args["transactionid"]), raw, request.content_type or ""))
                if self.status_failures > 0:
                    self.status_failures -= 1
                    return Response("busy", status=503)
            try:
                value = json.loads(raw)
            except ValueError:
                return Response("The request content was malformed", status=400)
            if self.mode == "2.0" and not (isinstance(value, dict) and "status" in value
                                           and request.mimetype == "application/json"):
                return Response("The request content was malformed", status=400)
            return Response(status=204)
        if route == "/outgoing/poll" and request.method == "GET":
            n = int(args.get("n", 1))
            with self.lock:
                items = [self._item_json(tx, img) for tx in self.outgoing if tx.status != "FAILED"
                         for img in tx.images if not img[3]][:n]
            if not items:
                return Response("The requested resource could not be found.", status=404)
            return Response(json.dumps(items), mimetype="application/json")
        if route == "/outgoing" and request.method == "GET":
            tx_id, image_id = int(args["transactionid"]), int(args["imageid"])
            with self.lock:
                found = [img for tx in self.outgoing if tx.id == tx_id for img in tx.images if img[0] == image_id]
            if not found:
                return Response("No outgoing image found", status=404)
            data = found[0][2]
            if self.mode == "old":
                return Response(old_raw_deflate(data), mimetype="application/octet-stream")
            return Response(akka_deflate_pieces(data), mimetype="application/octet-stream")  # chunked
        if route == "/outgoing/done" and request.method == "POST":
            item = json.loads(request.get_data())
            play_reads_transaction_image(item) if self.mode == "2.0" else None
            with self.lock:
                self.done.append(item)
                for tx in self.outgoing:
                    if tx.id == item["transaction"]["id"]:
                        for img in tx.images:
                            if img[0] == item["image"]["id"] and not img[3]:
                                img[3] = True
                                tx.sent = min(tx.total, tx.sent + 1)
                                tx.status = "FINISHED" if tx.sent >= tx.total else "PROCESSING"
            return Response(status=204)
        if route == "/outgoing/failed" and request.method == "POST":
            body = json.loads(request.get_data())
            with self.lock:
                self.failed.append(body)
                for tx in self.outgoing:
                    if tx.id == body["transactionImage"]["transaction"]["id"]:
                        tx.status = "FAILED"
            return Response(status=204)
        return Response("not found", status=404)

    def _receive(self, request: Request, tx_id: int, seq: int, total: int) -> Response:
        body = request.get_data()
        headers = {k.lower(): v for k, v in request.headers.items()}
        if self.mode == "old":
            try:
                data = zlib.decompress(body, -zlib.MAX_WBITS)
            except zlib.error as exc:
                return Response(json.dumps({"error": f"body is not raw-deflate compressed: {exc}"}),
                                status=400, mimetype="application/json")
        else:
            try:
                data = java_inflate(body)
            except zlib.error:
                data = None  # "Ignoring rejected image": counted, and 204 all the same
        with self.lock:
            self.received.append(Received(tx_id, seq, total, body, headers, data))
        return Response(status=204)

    # -- the client side (a 2.0 box that connected to one of our POLL boxes) -----------
    def push(self, base_url: str, transaction_id: int, datasets: list[bytes]) -> list[int]:
        """BoxPushOps: POST each image chunked and flushed per element, then PUT status FINISHED."""
        statuses = []
        total = len(datasets)
        for seq, data in enumerate(datasets, start=1):
            url = f"{base_url}/image?transactionid={transaction_id}&sequencenumber={seq}&totalimagecount={total}"
            r = self.http.request("POST", url, body=akka_deflate_pieces(data),
                                  headers={"Content-Type": "application/octet-stream"})
            statuses.append(r.status)
        self.put_status(base_url, transaction_id, "FINISHED")
        return statuses

    def put_status(self, base_url: str, transaction_id: int, status: str) -> int:
        """setRemoteOutgoingTransactionStatus: Marshal(BoxTransactionStatus(status)) as application/json."""
        r = self.http.request("PUT", f"{base_url}/status?transactionid={transaction_id}",
                              body=json.dumps({"status": status}).encode(),
                              headers={"Content-Type": "application/json"})
        return r.status

    def poll_all(self, base_url: str, rounds: int = 50) -> list[tuple[dict, bytes | None]]:
        """BoxPollOps.pullBatch until 404: poll n=200, GET each, inflate, done, PUT FINISHED at the end."""
        got = []
        for _ in range(rounds):
            r = self.http.request("GET", f"{base_url}/outgoing/poll?n=200")
            if r.status == 404:
                return got
            assert r.status == 200, (r.status, r.data[:300])
            items = json.loads(r.data)
            received_counts: dict[int, int] = {}
            for item in items:
                play_reads_transaction_image(item)
                tx, img = item["transaction"], item["image"]
                resp = self.http.request("GET", f"{base_url}/outgoing?transactionid={tx['id']}&imageid={img['id']}")
                data = None
                if resp.status == 200:
                    data = java_inflate(resp.data)
                    received_counts[tx["id"]] = received_counts.get(tx["id"], tx["sentImageCount"]) + 1
                got.append((item, data))
                done_item = {"transaction": {**tx, "sentImageCount": received_counts.get(tx["id"], 0)},
                             "image": img}
                d = self.http.request("POST", f"{base_url}/outgoing/done", body=json.dumps(done_item).encode(),
                                      headers={"Content-Type": "application/json"})
                assert d.status == 204, (d.status, d.data[:300])
                if done_item["transaction"]["sentImageCount"] >= tx["totalImageCount"]:
                    self.put_status(base_url, tx["id"], "FINISHED")  # errors ignored, as 2.0 does
        raise AssertionError("still polling after many rounds")


def wait_until(predicate, timeout: float = 120, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
