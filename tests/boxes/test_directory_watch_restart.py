"""A directory watch in a real `slicebox serve`, killed mid-import and started again: nothing twice."""
from __future__ import annotations

import os
import sqlite3
import time
from urllib.parse import parse_qs, urlparse

import pytest
from boxproc import BoxProcess, wait_for
from factories import make_dicom_bytes

pytestmark = pytest.mark.slow

FILES_BEFORE, FILES_WHILE_DOWN = 300, 60


def query(database_url: str, sql: str) -> list[tuple]:
    """What the box really stored, read from its database (SQLite file or PostgreSQL schema)."""
    if database_url.startswith("sqlite:///"):
        conn = sqlite3.connect(database_url[len("sqlite:///"):], timeout=30)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()
    import psycopg

    parsed = urlparse(database_url)
    schema = parse_qs(parsed.query)["schema"][0]
    with psycopg.connect(parsed._replace(query="").geturl()) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        return conn.execute(sql).fetchall()


def test_box_killed_mid_watch_imports_every_file_exactly_once(tmp_path, database_url):
    watched = tmp_path / "incoming"
    watched.mkdir()
    box = BoxProcess("watcher", str(tmp_path / "box"), database_url, SUPERVISOR_INTERVAL=0.5,
                     DIRECTORY_SETTLE=0.3, DIRECTORY_RESCAN_INTERVAL=1.0, DIRECTORY_PARALLELISM=2)
    box.start()
    try:
        box.json("POST", "/directorywatches", {"name": "incoming", "path": str(watched)}, expect=201)
        images = lambda: query(database_url, "SELECT COUNT(*) FROM images")[0][0]  # noqa: E731
        staging = tmp_path / "staging"
        staging.mkdir()
        for i in range(FILES_BEFORE):
            (staging / f"a{i:03d}.dcm").write_bytes(make_dicom_bytes(rows=64, columns=64, PatientID=f"R{i % 5}"))
        for name in sorted(os.listdir(staging)):  # dropped in at once (a rename each)
            os.rename(staging / name, watched / name)
        wait_for(lambda: images() >= 20, timeout=120, interval=0.05, what="the first imports")
        box.kill()  # SIGKILL: no clean shutdown, imports in flight die with it
        at_kill = images()
        assert at_kill < FILES_BEFORE, "the import finished before the kill; the test proves nothing"
        for i in range(FILES_WHILE_DOWN):
            (watched / "later").mkdir(exist_ok=True)
            (watched / "later" / f"b{i:03d}.dcm").write_bytes(make_dicom_bytes(PatientID="LATER"))
        box.start()
        total = FILES_BEFORE + FILES_WHILE_DOWN
        wait_for(lambda: images() == total, timeout=240, what=f"{total} images")
        # two rescan intervals later (observing that nothing more happens takes some time)
        time.sleep(2.5)
        ledger = query(database_url, "SELECT COUNT(*), MIN(imports), MAX(imports) FROM directory_watch_files")
        assert tuple(ledger[0]) == (total, 1, 1), ledger
        assert images() == total
        assert query(database_url, "SELECT COUNT(DISTINCT image_id) FROM directory_watch_files")[0][0] == total
        sources = query(database_url, "SELECT DISTINCT source_type, source_name FROM series_sources")
        assert [tuple(s) for s in sources] == [("directory", "incoming")]
        warnings = box.json("GET", "/log?subject=Directory&type=WARN")
        assert warnings == [], warnings
    finally:
        box.stop()
