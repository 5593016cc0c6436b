"""The box transfer worker: pushes our outgoing images to PUSH boxes and polls theirs.

Runs in the one process holding the service lock, as a part of the supervisor
(see jobs/boxes.py).  Every step is
recorded in the database before it is acknowledged, so a process killed at
any point resumes without losing or duplicating an image:

- push: an image is marked sent only after the peer answered 2xx; a resend
  after a crash is absorbed by the peer (same anonymous SOP Instance UID is
  stored once, the same sequence number is counted once);
- poll: we store, then tell the peer ``done``; a crash in between makes the
  peer offer the image again, which our ingest absorbs the same way.

A peer answering 400 or 404 for one image makes us skip that image (logged);
any other failure stops the round for that box and retries with exponential
backoff.  A transaction whose last image was sent *or skipped* is reported
FINISHED to the peer (``PUT status`` with ``{"status": "FINISHED"}``).

On the wire we speak Slicebox 2.0's protocol (slicebox/net/box_wire.py): zlib
bodies flushed per chunk both ways; we read raw deflate too.  A peer still
running one of our versions from before issue 10 refuses zlib with a 400
naming raw deflate: we then resend that image raw, and keep sending raw to
that box until this process restarts.

A polled image we cannot store (not DICOM we accept, not inflatable, too
large) is logged, counted as received and reported ``done``, as a 2.0 poller
does: ``outgoing/failed`` would make the peer fail the whole transaction.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import urllib3

from slicebox.clock import now_ms
from slicebox.context import Services
from slicebox.db import boxes as repo
from slicebox.errors import BadRequest, InvalidDicom, NotFound
from slicebox.models import Box, OutgoingImage, OutgoingTransaction
from slicebox.net import box_wire
from slicebox.services import boxes as box_service
from slicebox.services import logs
from slicebox.storage.tempfiles import discard

logger = logging.getLogger(__name__)

_TIMEOUT = urllib3.Timeout(connect=10.0, read=600.0)
#: How a box of ours from before issue 10 refuses a zlib body (its 400 message).
_RAW_ONLY_REFUSAL = "body is not raw-deflate compressed"


class PeerError(Exception):
    """The peer could not be reached or answered with an unexpected status."""


@dataclass
class _Backoff:
    failures: int = 0
    next_attempt: float = 0.0
    logged_at: float = 0.0


class TransferWorker:
    """One per service process; a supervisor part (:meth:`start`, :meth:`stop`, :meth:`alive`)."""

    def __init__(self, services: Services):
        self.services = services
        self.http = urllib3.PoolManager(maxsize=max(4, int(services.config["BOX_PARALLELISM"]) * 2),
                                        retries=False, timeout=_TIMEOUT,
                                        headers={"User-Agent": "slicebox"})
        self.wakeup = services.state.box_wakeup
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff: dict[int, _Backoff] = {}
        self._raw_peers: set[int] = set()  # boxes that read raw deflate only (our versions before issue 10)
        self._pool = ThreadPoolExecutor(max_workers=int(services.config["BOX_PARALLELISM"]),
                                        thread_name_prefix="box-transfer")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="box-transfers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def _run(self) -> None:
        interval = float(self.services.config["BOX_POLL_INTERVAL"])
        while not self._stop.is_set():
            try:
                moved = self.run_once()
            except Exception:  # noqa: BLE001 - the worker must outlive any bug in one round
                logger.exception("box transfer round failed")
                moved = 0
            if not moved:
                self.wakeup.wait(interval)
                self.wakeup.clear()

    # -- one round ------------------------------------------------------------------
    def run_once(self) -> int:
        """Push and poll once for every PUSH box that is not backing off; images moved."""
        with self.services.db.connection() as conn:
            rows = repo.list_box_rows(conn, send_method="PUSH")
        moved = 0
        for row in rows:
            box = repo.row_to_box(row, 0)
            state = self._backoff.setdefault(box.id, _Backoff())
            if time.monotonic() < state.next_attempt:
                continue
            try:
                moved += self._push(box)
                moved += self._poll(box)
            except PeerError as exc:
                self._failed(box, state, exc)
            else:
                if state.failures:
                    logs.info(self.services, "Box", f"box {box.name!r} reachable again")
                state.failures = 0
                state.next_attempt = 0.0
                with self.services.db.connection() as conn:
                    repo.touch_box(conn, box.id, now_ms())
        return moved

    def _failed(self, box: Box, state: _Backoff, exc: Exception) -> None:
        state.failures += 1
        delay = min(float(self.services.config["BOX_MAX_BACKOFF"]), 0.5 * 2 ** min(state.failures, 10))
        state.next_attempt = time.monotonic() + delay
        with self.services.db.connection() as conn:
            repo.mark_box_offline(conn, box.id)
        # Log the first failure and then at most once a minute, not every retry.
        if state.failures == 1 or time.monotonic() - state.logged_at > 60:
            state.logged_at = time.monotonic()
            # The log is readable by every user; the peer's URL holds the box's secret token.
            reason = str(exc).replace(box.token, "<token>") if box.token else str(exc)
            logs.warn(self.services, "Box", f"box {box.name!r} unreachable ({reason}); retrying in {delay:.1f} s")

    def _parallel(self, fn, items) -> list:
        futures = [self._pool.submit(fn, *item) for item in items]
        results, error = [], None
        for future in futures:
            try:
                results.append(future.result())
            except PeerError as exc:
                error = error or exc
        if error is not None:
            raise error
        return results

    # -- push -------------------------------------------------------------------------
    def _push(self, box: Box) -> int:
        batch = int(self.services.config["BOX_BATCH_SIZE"])
        moved = 0
        while not self._stop.is_set():
            with self.services.db.connection() as conn:
                pending = repo.pending_outgoing(conn, box.id, batch)
            if not pending:
                break
            moved += sum(self._parallel(lambda tx, img: self._push_one(box, tx, img), pending))
        for transaction_id in box_service.unreported_finished(self.services, box):
            self._tell_finished(box, transaction_id)
        return moved

    def _push_one(self, box: Box, tx: OutgoingTransaction, img: OutgoingImage) -> int:
        try:
            path = box_service.prepare_outgoing(self.services, tx, img)
        except NotFound:
            self._skipped(box, tx, img, "image no longer exists")
            return 0
        except BadRequest as exc:  # the stored data cannot be anonymized: it never will be
            self._skipped(box, tx, img, f"image {img.image_id} cannot be anonymized: {exc.message}")
            return 0
        url = (f"{box.base_url}/image?transactionid={tx.id}&sequencenumber={img.sequence_number}"
               f"&totalimagecount={tx.total_image_count}")
        try:
            fmt = box_wire.RAW if box.id in self._raw_peers else box_wire.ZLIB
            status, reason = self._post_image(url, path, fmt)
            if status == 400 and fmt == box_wire.ZLIB and reason.startswith(_RAW_ONLY_REFUSAL):
                if box.id not in self._raw_peers:
                    self._raw_peers.add(box.id)
                    logs.info(self.services, "Box", f"box {box.name!r} runs an older version that reads raw "
                              "deflate only: sending it raw deflate until this box restarts (upgrade it)")
                status, reason = self._post_image(url, path, box_wire.RAW)
        finally:
            discard(path)
        if status in (400, 404):
            self._skipped(box, tx, img, f"box answered {status}: {reason}")
            return 0
        if not 200 <= status < 300:
            raise PeerError(f"POST image answered {status}")
        box_service.mark_sent(self.services, tx.id, img.id)
        return 1

    def _post_image(self, url: str, path: str, fmt: str) -> tuple[int, str]:
        """POST one dataset compressed as it is read (chunked, one flushed piece per chunk)."""
        with open(path, "rb") as src:
            response = self._request("POST", url, body=box_service.compressed(self.services, src, fmt),
                                     headers={"Content-Type": "application/octet-stream"})
        reason = _error_text(response) if response.status >= 300 else ""
        return response.status, reason

    def _skipped(self, box: Box, tx: OutgoingTransaction, img: OutgoingImage, reason: str) -> None:
        box_service.mark_sent(self.services, tx.id, img.id, skipped_reason=reason)

    def _tell_finished(self, box: Box, transaction_id: int) -> None:
        """``PUT status`` FINISHED, the object form Slicebox 2.0 reads (and our older boxes too).

        The peer counts images to finish, but skipped ones never reach it: only
        this tells it the transaction is complete.  Kept in the database until
        the peer answers (2xx, or 400/404: it has nothing to finish), so a peer
        that is away, or our own crash, only delays it.
        """
        response = self._request("PUT", f"{box.base_url}/status?transactionid={transaction_id}",
                                 body=json.dumps({"status": "FINISHED"}).encode(),
                                 headers={"Content-Type": "application/json"})
        if not (200 <= response.status < 300 or response.status in (400, 404)):
            raise PeerError(f"PUT status answered {response.status}")
        box_service.finish_reported(self.services, transaction_id)

    # -- poll ---------------------------------------------------------------------------
    def _poll(self, box: Box) -> int:
        batch = int(self.services.config["BOX_BATCH_SIZE"])
        moved = 0
        while not self._stop.is_set():
            response = self._request("GET", f"{box.base_url}/outgoing/poll?n={batch}")
            if response.status == 404:
                break
            if response.status != 200:
                raise PeerError(f"poll answered {response.status}")
            try:
                items = json.loads(response.data)
                pairs = [(item, item["transaction"], item["image"]) for item in items]
            except (ValueError, KeyError, TypeError) as exc:
                raise PeerError(f"poll answer not understood: {exc}") from None
            if not pairs:
                break
            moved += sum(self._parallel(lambda item, tx, img: self._fetch_one(box, item, tx, img), pairs))
        return moved

    def _fetch_one(self, box: Box, item: dict, tx: dict, img: dict) -> int:
        try:
            tx_id, seq, total = int(tx["id"]), int(img["sequenceNumber"]), int(tx["totalImageCount"])
            url = f"{box.base_url}/outgoing?transactionid={tx_id}&imageid={int(img['id'])}"
        except (KeyError, TypeError, ValueError) as exc:
            raise PeerError(f"poll answer not understood: {exc}") from None
        if not 1 <= seq <= total:
            self._bad_polled(box, item, tx_id, seq, total, "sequence number outside 1..totalImageCount")
            return 0
        response = self._request("GET", url, preload=False)
        if response.status in (400, 404):
            response.release_conn()
            reason = f"box could not provide it ({response.status})"
            self._bad_polled(box, item, tx_id, seq, total, reason)
            return 0
        if response.status != 200:
            response.release_conn()
            raise PeerError(f"fetch answered {response.status}")
        try:
            path = box_service.inflate_to_temp(self.services, _ResponseReader(response))
        except box_wire.WireError as exc:
            if exc.kind == "incomplete":
                raise PeerError(f"fetch interrupted: {exc.message}") from None
            self._bad_polled(box, item, tx_id, seq, total, exc.message)
            return 0
        except Exception as exc:  # noqa: BLE001 - a broken stream is the peer's failure
            raise PeerError(f"fetch interrupted: {exc}") from None
        finally:
            response.release_conn()
        try:
            box_service.receive_image(self.services, box, tx_id, seq, total, path)
        except InvalidDicom:  # logged and counted by receive_image; skip it as a 2.0 poller does
            self._post_json(box, "outgoing/done", item, allow=(404,))
            return 0
        self._post_json(box, "outgoing/done", item)
        return 1

    def _bad_polled(self, box: Box, item: dict, tx_id: int, seq: int, total: int, reason: str) -> None:
        """Skip an image we cannot store: log it, count it as received, tell the peer ``done``."""
        if 1 <= seq <= total:
            box_service.record_rejected(self.services, box, tx_id, seq, total, reason)
        else:
            logs.warn(self.services, "Box", f"rejected image {seq}/{total} of transaction {tx_id} "
                      f"from box {box.name!r}: {reason}")
        self._post_json(box, "outgoing/done", item, allow=(404,))

    def _post_json(self, box: Box, route: str, body: dict, allow: tuple = ()) -> None:
        response = self._request("POST", f"{box.base_url}/{route}", body=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
        if not 200 <= response.status < 300 and response.status not in allow:
            raise PeerError(f"{route} answered {response.status}")

    def _request(self, method: str, url: str, body=None, headers=None, preload: bool = True):
        try:
            return self.http.request(method, url, body=body, headers=headers, preload_content=preload,
                                     redirect=False)
        except urllib3.exceptions.HTTPError as exc:
            raise PeerError(str(exc)) from None


class _ResponseReader:
    """File-like ``read(n)`` over a streamed urllib3 response."""

    def __init__(self, response):
        self.response = response

    def read(self, n: int = -1) -> bytes:
        return self.response.read(n if n and n > 0 else None)


def _error_text(response) -> str:
    try:
        return str(json.loads(response.data).get("error", ""))[:300]
    except (ValueError, AttributeError):
        return response.data[:300].decode("utf-8", "replace")
