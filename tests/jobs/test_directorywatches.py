"""Directory watches: the API's rules and the watcher part on real folders, real files, inotify.

The watcher runs as a supervisor part (reconciled by hand here).  Settling is
measured with slicebox.clock, so these tests move a fake clock instead of
waiting out the settle delay; every wait is bounded polling.
"""
from __future__ import annotations

import os
import time

import pytest
from factories import make_dicom_bytes

from slicebox.jobs import directorywatches
from slicebox.jobs.supervisor import Supervisor

SETTLE = 1.0


@pytest.fixture
def watched(tmp_path):
    path = tmp_path / "incoming"
    path.mkdir()
    return path


@pytest.fixture
def sup(services, clock):
    config = services.config
    config["DIRECTORY_SETTLE"] = SETTLE
    config["DIRECTORY_RESCAN_INTERVAL"] = 0.5
    supervisor = Supervisor(services, [directorywatches.parts], interval=3600)
    yield supervisor
    supervisor.stop()


def add_watch(client, path, name="incoming") -> dict:
    r = client.post("/api/directorywatches", json={"name": name, "path": str(path)})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def watcher(sup: Supervisor, watch: dict) -> directorywatches.DirectoryWatcher:
    sup.reconcile()
    part = sup.part(f"directory-watch:{watch['id']}:{watch['path']}")
    assert part is not None, sup.keys()
    assert part.wait_ready(30)
    return part


def settle_until(clock, predicate, timeout: float = 60, what: str = "condition"):
    """Move the fake clock past the settle delay and poll (bounded) until ``predicate()``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        clock.advance(SETTLE + 0.1)
        last = predicate()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def count_images(services) -> int:
    with services.db.connection() as conn:
        return conn.scalar("SELECT COUNT(*) FROM images")


def ledger(services) -> list[dict]:
    with services.db.connection() as conn:
        return conn.all("SELECT path, status, image_id, imports FROM directory_watch_files ORDER BY path")


def log_entries(client, subject="Directory", entry_type=None) -> list[dict]:
    url = f"/api/log?subject={subject}&count=1000" + (f"&type={entry_type}" if entry_type else "")
    return client.get(url).get_json()


# -- the API ------------------------------------------------------------------------
def test_add_list_delete(client, watched):
    w = add_watch(client, watched)
    assert w == {"id": w["id"], "name": "incoming", "path": str(watched.resolve())}
    assert client.get("/api/directorywatches").get_json() == [w]
    # the same name and path again is the same watch
    assert add_watch(client, watched)["id"] == w["id"]
    assert client.delete(f"/api/directorywatches/{w['id']}").status_code == 204
    assert client.get("/api/directorywatches").get_json() == []
    assert client.delete(f"/api/directorywatches/{w['id']}").status_code == 204
    assert os.path.isdir(watched)


def test_path_rules_are_400(client, watched, tmp_path):
    add_watch(client, watched)
    (watched / "sub").mkdir()
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "other").mkdir()
    cases = {
        "missing": {"name": "a", "path": str(tmp_path / "nope")},
        "a file": {"name": "a", "path": str(tmp_path / "file.txt")},
        "relative": {"name": "a", "path": "incoming"},
        "inside": {"name": "a", "path": str(watched / "sub")},
        "around": {"name": "a", "path": str(tmp_path)},
        "same path, other name": {"name": "a", "path": str(watched)},
        "same name, other path": {"name": "incoming", "path": str(tmp_path / "other")},
        "no name": {"path": str(tmp_path / "other")},
        "path not a string": {"name": "a", "path": 5},
    }
    for why, body in cases.items():
        r = client.post("/api/directorywatches", json=body)
        assert r.status_code == 400, (why, r.get_json())
        assert r.get_json()["error"]
    assert len(client.get("/api/directorywatches").get_json()) == 1
    # a sibling is fine
    add_watch(client, tmp_path / "other", name="other")


def test_symlink_to_a_watched_directory_is_inside_it(client, watched, tmp_path):
    add_watch(client, watched)
    link = tmp_path / "link"
    link.symlink_to(watched)
    assert client.post("/api/directorywatches", json={"name": "b", "path": str(link)}).status_code == 400


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every directory: unreadable cannot be made here")
def test_unreadable_directory_is_400(client, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o000)
    try:
        assert client.post("/api/directorywatches", json={"name": "l", "path": str(locked)}).status_code == 400
    finally:
        locked.chmod(0o700)


def test_only_administrators_change_watches(user_client, watched):
    assert user_client.post("/api/directorywatches", json={"name": "x", "path": str(watched)}).status_code == 403
    assert user_client.get("/api/directorywatches").status_code == 200


# -- the watcher ---------------------------------------------------------------------
def test_existing_then_new_files_with_sub_folders_are_imported_once(client, services, sup, watched, clock):
    before = make_dicom_bytes(PatientID="BEFORE")
    (watched / "a.dcm").write_bytes(before)
    w = add_watch(client, watched)
    part = watcher(sup, w)
    settle_until(clock, lambda: count_images(services) == 1, what="the file already there")
    (watched / "deep" / "er").mkdir(parents=True)
    after = make_dicom_bytes(PatientID="AFTER")
    (watched / "deep" / "er" / "b").write_bytes(after)
    settle_until(clock, lambda: count_images(services) == 2, what="the new file in a new sub-folder")
    # several rescans later nothing moved
    scans = part.stats["scans"]
    settle_until(clock, lambda: part.stats["scans"] >= scans + 3, what="three rescans")
    assert count_images(services) == 2 and part.stats["added"] == 2
    assert [e["imports"] for e in ledger(services)] == [1, 1]
    with services.db.connection() as conn:
        sources = conn.all("SELECT DISTINCT source_type, source_name, source_id FROM series_sources")
        ids = [r["id"] for r in conn.all("SELECT id FROM images ORDER BY id")]
    assert sources == [{"source_type": "directory", "source_name": "incoming", "source_id": w["id"]}]
    assert sorted(client.get(f"/api/images/{i}").data for i in ids) == sorted([before, after])
    assert (watched / "a.dcm").read_bytes() == before  # the files stay


def test_500_files_dropped_at_once_are_each_imported_once(client, services, sup, watched, clock):
    w = add_watch(client, watched)
    part = watcher(sup, w)
    datas = [make_dicom_bytes(PatientID=f"P{i % 7}") for i in range(500)]
    for i, data in enumerate(datas):
        (watched / f"img{i:03d}.dcm").write_bytes(data)
    settle_until(clock, lambda: count_images(services) == 500, timeout=180, what="500 images")
    scans = part.stats["scans"]
    settle_until(clock, lambda: part.stats["scans"] >= scans + 2 and part.pending() == 0, what="rescans")
    assert count_images(services) == 500
    assert part.stats["added"] == 500 and part.stats["duplicate"] == 0
    rows = ledger(services)
    assert len(rows) == 500 and {r["imports"] for r in rows} == {1} and {r["status"] for r in rows} == {"imported"}
    assert len({r["image_id"] for r in rows}) == 500
    assert log_entries(client, entry_type="WARN") == []


def test_a_file_written_slowly_is_read_only_when_complete(client, services, sup, watched, clock):
    w = add_watch(client, watched)
    part = watcher(sup, w)
    data = make_dicom_bytes(rows=64, columns=64)
    target = watched / "slow.dcm"
    chunks = [data[i:i + 1000] for i in range(0, len(data), 1000)]
    assert len(chunks) > 5
    for chunk in chunks:
        with open(target, "ab") as fh:  # opened and closed per chunk, as a slow copier might
            fh.write(chunk)
        # the clock moves a bit, never a whole settle delay while the size is unchanged
        clock.advance(SETTLE * 0.9)
        deadline = time.monotonic() + 10
        while part.pending() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        assert count_images(services) == 0
    settle_until(clock, lambda: count_images(services) == 1, what="the complete file")
    with services.db.connection() as conn:
        image_id = conn.scalar("SELECT id FROM images")
    assert client.get(f"/api/images/{image_id}").data == data
    assert part.stats["rejected"] == 0 and log_entries(client, entry_type="WARN") == []


def test_non_dicom_is_warned_about_once_and_left_alone(client, services, sup, watched, clock):
    (watched / "notes.txt").write_text("not DICOM")
    w = add_watch(client, watched)
    part = watcher(sup, w)
    settle_until(clock, lambda: part.stats["rejected"] == 1, what="the rejection")
    scans = part.stats["scans"]
    settle_until(clock, lambda: part.stats["scans"] >= scans + 3, what="three rescans")
    warnings = log_entries(client, entry_type="WARN")
    assert len(warnings) == 1 and "notes.txt" in warnings[0]["message"]
    assert (watched / "notes.txt").read_text() == "not DICOM"
    # after a restart of the watcher too
    sup.stop()
    again = Supervisor(services, [directorywatches.parts], interval=3600)
    try:
        part = watcher(again, w)
        settle_until(clock, lambda: part.stats["scans"] >= 3, what="three scans")
        assert part.stats["rejected"] == 0 and len(log_entries(client, entry_type="WARN")) == 1
        assert part.stats["known"] == 0  # known from the ledger read at start, not file by file
    finally:
        again.stop()


def test_a_vanished_file_is_no_error(client, services, sup, watched, clock):
    w = add_watch(client, watched)
    part = watcher(sup, w)
    gone = watched / "gone.dcm"
    gone.write_bytes(make_dicom_bytes()[:500])
    deadline = time.monotonic() + 10
    while part.pending() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    gone.unlink()
    (watched / "stays.dcm").write_bytes(make_dicom_bytes())
    settle_until(clock, lambda: count_images(services) == 1, what="the other file")
    assert part.stats["errors"] == 0 and part.stats["rejected"] == 0 and part.alive()
    assert log_entries(client, entry_type="WARN") == [] and log_entries(client, entry_type="ERROR") == []
    # the import step itself, handed a file that is gone by then
    from slicebox.models import DirectoryWatch
    from slicebox.services import directorywatches as service

    watch = DirectoryWatch(id=w["id"], name=w["name"], path=w["path"])
    assert service.import_file(services, watch, str(gone), (500, 1)) is service.Outcome.VANISHED


def test_deleted_and_created_again_imports_nothing_twice(client, services, sup, watched, clock):
    (watched / "a.dcm").write_bytes(make_dicom_bytes())
    w = add_watch(client, watched)
    watcher(sup, w)
    settle_until(clock, lambda: count_images(services) == 1, what="first import")
    assert client.delete(f"/api/directorywatches/{w['id']}").status_code == 204
    sup.reconcile()
    assert sup.keys() == []
    (watched / "b.dcm").write_bytes(make_dicom_bytes())  # arrives while nobody watches
    w2 = add_watch(client, watched)
    assert w2["id"] != w["id"]
    part = watcher(sup, w2)
    settle_until(clock, lambda: count_images(services) == 2, what="the file that came meanwhile")
    scans = part.stats["scans"]
    settle_until(clock, lambda: part.stats["scans"] >= scans + 2, what="rescans")
    assert part.stats["added"] == 1 and part.stats["known"] == 0
    assert [r["imports"] for r in ledger(services)] == [1, 1]


def test_a_changed_file_is_a_new_version(client, services, sup, watched, clock):
    w = add_watch(client, watched)
    part = watcher(sup, w)
    target = watched / "a.dcm"
    target.write_bytes(make_dicom_bytes(PatientID="V1"))
    settle_until(clock, lambda: count_images(services) == 1, what="first version")
    replacement = watched / "tmp-replacement"
    os.makedirs(watched / ".staging")
    staged = watched / ".staging" / "a.dcm"  # hidden folders are ignored until the file moves out
    staged.write_bytes(make_dicom_bytes(PatientID="V2"))
    os.replace(staged, target)
    settle_until(clock, lambda: count_images(services) == 2, what="second version")
    assert part.stats["added"] == 2
    assert not replacement.exists()
    assert [r["imports"] for r in ledger(services)] == [2]


def test_a_watched_directory_that_is_gone_is_waited_for(client, services, sup, watched, clock):
    w = add_watch(client, watched)
    watched.rmdir()
    sup.reconcile()
    part = sup.part(f"directory-watch:{w['id']}:{w['path']}")
    deadline = time.monotonic() + 30
    while not log_entries(client, entry_type="WARN") and time.monotonic() < deadline:
        time.sleep(0.05)
    warnings = log_entries(client, entry_type="WARN")
    assert len(warnings) == 1 and "does not exist" in warnings[0]["message"]
    assert part.alive()
    sup.reconcile()
    assert sup.part(f"directory-watch:{w['id']}:{w['path']}") is part  # not restarted, no log spam
    watched.mkdir()
    (watched / "a.dcm").write_bytes(make_dicom_bytes())
    assert part.wait_ready(30)
    settle_until(clock, lambda: count_images(services) == 1, what="the file in the directory that came back")
    assert len(log_entries(client, entry_type="WARN")) == 1


def test_fifos_symlinks_and_hidden_files_are_left_alone(client, services, sup, watched, clock, tmp_path):
    outside = tmp_path / "outside.dcm"
    outside.write_bytes(make_dicom_bytes(PatientID="OUTSIDE"))
    (watched / "link.dcm").symlink_to(outside)
    os.mkfifo(watched / "pipe.dcm")
    (watched / ".hidden.dcm").write_bytes(make_dicom_bytes(PatientID="HIDDEN"))
    (watched / "real.dcm").write_bytes(make_dicom_bytes(PatientID="REAL"))
    w = add_watch(client, watched)
    part = watcher(sup, w)
    settle_until(clock, lambda: count_images(services) == 1, what="the regular file")
    scans = part.stats["scans"]
    settle_until(clock, lambda: part.stats["scans"] >= scans + 2, what="rescans")
    with services.db.connection() as conn:
        assert conn.all("SELECT patient_id FROM patients") == [{"patient_id": "REAL"}]
    assert part.alive() and log_entries(client, entry_type="WARN") == []


def test_the_watched_directory_removed_while_watching_is_waited_for(client, services, sup, watched, clock):
    w = add_watch(client, watched)
    key = f"directory-watch:{w['id']}:{w['path']}"
    part = watcher(sup, w)
    watched.rmdir()
    deadline = time.monotonic() + 30
    while part.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not part.alive()
    sup.reconcile()  # restarts it; the new part waits for the directory
    assert sup.part(key) is not part
    watched.mkdir()
    (watched / "a.dcm").write_bytes(make_dicom_bytes())
    assert sup.part(key).wait_ready(30)
    settle_until(clock, lambda: count_images(services) == 1, what="the file in the directory that came back")
