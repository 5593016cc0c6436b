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
backoff.
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
from slicebox.errors import BadRequest, InvalidDicom, NotFound, PayloadTooLarge
from slicebox.models import Box, OutgoingImage, OutgoingTransaction
from slicebox.services import boxes as box_service
from slicebox.services import logs
from slicebox.storage.tempfiles import discard

logger = logging.getLogger(__name__)

_TIMEOUT = urllib3.Timeout(connect=10.0, read=600.0)


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
            logs.warn(self.services, "Box", f"box {box.name!r} unreachable ({exc}); retrying in {delay:.1f} s")

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
        return moved

    def _push_one(self, box: Box, tx: OutgoingTransaction, img: OutgoingImage) -> int:
        try:
            path = box_service.prepare_outgoing(self.services, tx, img)
        except NotFound:
            box_service.mark_sent(self.services, tx.id, img.id, skipped_reason="image no longer exists")
            return 0
        except BadRequest as exc:  # the stored data cannot be anonymized: it never will be
            box_service.mark_sent(self.services, tx.id, img.id,
                                  skipped_reason=f"image {img.image_id} cannot be anonymized: {exc.message}")
            return 0
        try:
            url = (f"{box.base_url}/image?transactionid={tx.id}&sequencenumber={img.sequence_number}"
                   f"&totalimagecount={tx.total_image_count}")
            with open(path, "rb") as body:
                import os

                size = os.fstat(body.fileno()).st_size
                response = self._request("POST", url, body=body, headers={
                    "Content-Type": "application/octet-stream", "Content-Length": str(size)})
        finally:
            discard(path)
        if response.status in (400, 404):
            reason = _error_text(response)
            box_service.mark_sent(self.services, tx.id, img.id,
                                  skipped_reason=f"box answered {response.status}: {reason}")
            return 0
        if not 200 <= response.status < 300:
            raise PeerError(f"POST image answered {response.status}")
        done = box_service.mark_sent(self.services, tx.id, img.id)
        if done is not None and done.status == "FINISHED":
            self._tell_finished(box, tx.id)
        return 1

    def _tell_finished(self, box: Box, transaction_id: int) -> None:
        try:
            self._request("PUT", f"{box.base_url}/status?transactionid={transaction_id}",
                          body=json.dumps("FINISHED").encode(), headers={"Content-Type": "application/json"})
        except PeerError:
            pass  # the peer also finishes by count; the status is a courtesy

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
        url = f"{box.base_url}/outgoing?transactionid={tx['id']}&imageid={img['id']}"
        response = self._request("GET", url, preload=False)
        if response.status in (400, 404):
            response.release_conn()
            logs.warn(self.services, "Box", f"box {box.name!r} could not provide image {img['id']} of its "
                      f"transaction {tx['id']} ({response.status}); skipped")
            self._post_json(box, "outgoing/done", item, allow=(404,))
            return 0
        if response.status != 200:
            response.release_conn()
            raise PeerError(f"fetch answered {response.status}")
        try:
            path = box_service.inflate_to_temp(self.services, _ResponseReader(response))
        except PayloadTooLarge as exc:
            # A decompression bomb is refused for good (retrying would inflate it again).
            response.release_conn()
            logs.warn(self.services, "Box", f"refused image {img['id']} of box {box.name!r}: {exc.message}")
            self._post_json(box, "outgoing/failed", {"transactionImage": item, "message": exc.message})
            return 0
        except Exception as exc:  # noqa: BLE001 - a broken stream is the peer's failure
            raise PeerError(f"fetch interrupted: {exc}") from None
        finally:
            response.release_conn()
        try:
            box_service.receive_image(self.services, box, int(tx["id"]), int(img["sequenceNumber"]),
                                      int(tx["totalImageCount"]), path)
        except InvalidDicom as exc:
            self._post_json(box, "outgoing/failed", {"transactionImage": item, "message": exc.message})
            return 0
        self._post_json(box, "outgoing/done", item)
        return 1

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
