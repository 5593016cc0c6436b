"""Outgoing bookkeeping under concurrency, on SQLite and PostgreSQL: every image counted, finished once."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from slicebox.db import boxes as repo
from slicebox.services import boxes as box_service

IMAGES = 24


def test_images_marked_sent_in_parallel_finish_the_transaction_exactly_once(services):
    with services.db.transaction() as conn:
        box_id = repo.insert_box(conn, "peer", "0b8e7a7e-6a55-4a47-9d8e-0a1c4b1e2f3a",
                                 "http://127.0.0.1:1/api/transactions/0b8e7a7e-6a55-4a47-9d8e-0a1c4b1e2f3a",
                                 "PUSH", ("BASIC_PROFILE",))
        tx_id = repo.insert_outgoing(conn, box_id, "peer", ("BASIC_PROFILE",), IMAGES, 1)
        image_ids = [repo.insert_outgoing_image(conn, tx_id, 1000 + i, i + 1) for i in range(IMAGES)]
    start = threading.Barrier(8)

    def mark(outgoing_image_id: int) -> bool:
        if outgoing_image_id in image_ids[:8]:
            start.wait()
        _tx, finished = box_service.mark_sent(services, tx_id, outgoing_image_id)
        return finished

    with ThreadPoolExecutor(max_workers=8) as pool:
        finished = list(pool.map(mark, image_ids))
    assert finished.count(True) == 1
    with services.db.connection() as conn:
        tx = repo.get_outgoing(conn, tx_id)
        assert (tx.status, tx.sent_image_count) == ("FINISHED", IMAGES)
        assert repo.unreported_finished(conn, box_id) == [tx_id]
        repo.mark_finish_reported(conn, tx_id)
        assert repo.unreported_finished(conn, box_id) == []
    # a resend after a crash changes nothing and finishes nothing again
    assert box_service.mark_sent(services, tx_id, image_ids[0])[1] is False
