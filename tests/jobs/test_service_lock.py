"""One service process per database (per schema on PostgreSQL), taken over when its holder stops."""
from __future__ import annotations

import time

import pytest
from boxes.boxproc import BoxProcess, free_port, wait_for
from pg import PgSchema, require_postgres

from slicebox.db import lock_key
from slicebox.jobs import Background
from test_supervisor import Wanted


def _wait(predicate, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_one_app_runs_the_services_and_another_takes_over_when_it_stops(app_factory):
    first, second = (app_factory().extensions["slicebox"] for _ in range(2))
    wanted_a, wanted_b = Wanted("part"), Wanted("part")
    a = Background(first, (wanted_a,), retry_seconds=0.05)
    b = Background(second, (wanted_b,), retry_seconds=0.05)
    a.start()
    b.start()
    try:
        assert a.running and not b.running
        assert _wait(lambda: a.supervisor.keys() == ["part"])
        time.sleep(0.3)  # b keeps trying meanwhile and must keep failing
        assert not b.running and wanted_b.made == []
        a.stop()
        assert not a.running and not wanted_a.made[0].alive()
        assert _wait(lambda: b.running and b.supervisor.keys() == ["part"])
    finally:
        a.stop()
        b.stop()
    assert not wanted_b.made[0].alive()


def test_services_close_stops_the_background_and_releases_the_lock(app_factory):
    from slicebox import jobs

    first = app_factory().extensions["slicebox"]
    background = jobs.start(first)
    assert background.running and first.state.background is background
    worker = background.supervisor.part("box-transfers")
    assert worker is not None and worker.alive()
    first.close()
    assert not background.running and not worker.alive()
    second = app_factory().extensions["slicebox"]
    assert jobs.start(second).running
    jobs.stop(second)
    assert second.state.background is None


def test_lock_keys_differ_by_schema_and_name():
    assert lock_key("t_a", "service") != lock_key("t_b", "service")
    assert lock_key("t_a", "service") != lock_key("t_a", "migrations")
    assert lock_key("t_a", "service") == lock_key("t_a", "service")


def test_two_schemas_of_one_database_each_have_a_service_process(tmp_path, app_factory):
    require_postgres()
    schemas = [PgSchema(), PgSchema()]
    backgrounds = []
    try:
        for i, schema in enumerate(schemas):
            services = app_factory(DATABASE_URL=schema.url, DATA_DIR=str(tmp_path / f"d{i}")).extensions["slicebox"]
            background = Background(services, (Wanted("part"),), retry_seconds=0.05)
            backgrounds.append(background)
            background.start()
        assert [b.running for b in backgrounds] == [True, True]
        # and a second app in the first schema does not run them again
        services = app_factory(DATABASE_URL=schemas[0].url, DATA_DIR=str(tmp_path / "d2")).extensions["slicebox"]
        again = Background(services, (Wanted("part"),), retry_seconds=0.05)
        backgrounds.append(again)
        again.start()
        assert not again.running
    finally:
        for background in backgrounds:
            background.stop()
        for schema in schemas:
            schema.drop()


@pytest.mark.slow
def test_two_served_boxes_in_two_schemas_each_run_their_transfer_worker(tmp_path):
    """Real `slicebox serve` boxes in two schemas of one PostgreSQL database: each one's transfer
    worker tries its (unreachable) PUSH box and says so in its own log."""
    require_postgres()
    schemas = [PgSchema(), PgSchema()]
    boxes = []
    try:
        for i, schema in enumerate(schemas):
            boxes.append(BoxProcess(f"box{i}", str(tmp_path / f"box{i}"), schema.url).start())
        for box in boxes:
            box.json("POST", "/boxes/connect", {
                "name": "nowhere", "baseUrl": f"http://127.0.0.1:{free_port()}/api/transactions/" + "a" * 32})
        for box in boxes:
            wait_for(lambda box=box: [e for e in box.json("GET", "/log?subject=Box")
                                      if "'nowhere' unreachable" in e["message"]],
                     timeout=60, what=f"{box.name}'s transfer worker trying its box")
    finally:
        for box in boxes:
            box.stop()
        for schema in schemas:
            schema.drop()
