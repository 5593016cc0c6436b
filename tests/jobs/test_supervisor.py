"""The supervisor starts, stops and restarts parts as its providers say (real threads, real database)."""
from __future__ import annotations

import threading
import time

import pytest

from slicebox.jobs.supervisor import Supervisor


class FakePart:
    """A part with a real thread; ``crash()`` makes the thread end as if by a bug."""

    def __init__(self, key: str, events: list):
        self.key = key
        self.events = events
        self._crash = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.events.append(("start", self.key))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._crash.wait(0.01):
                return

    def crash(self) -> None:
        self._crash.set()
        self._thread.join(5)

    def stop(self) -> None:
        if not self._stop.is_set():
            self.events.append(("stop", self.key))
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def running(self) -> bool:
        return self.alive() and not self._stop.is_set()


class Wanted:
    """A provider whose wanted keys the test sets."""

    def __init__(self, *keys: str):
        self.keys = list(keys)
        self.events: list = []
        self.made: list[FakePart] = []
        self.fail = False

    def __call__(self, services):
        if self.fail:
            raise RuntimeError("database gone")
        return {key: (lambda key=key: self._make(key)) for key in self.keys}

    def _make(self, key):
        part = FakePart(key, self.events)
        self.made.append(part)
        return part


def _log_messages(client) -> list[str]:
    r = client.get("/api/log?subject=System")
    assert r.status_code == 200
    return [e["message"] for e in r.get_json()]


def test_reconcile_starts_the_wanted_parts_once(services):
    wanted = Wanted("a", "b")
    sup = Supervisor(services, [wanted])
    sup.reconcile()
    sup.reconcile()
    assert sup.keys() == ["a", "b"]
    assert sorted(wanted.events) == [("start", "a"), ("start", "b")]
    assert all(p.running() for p in wanted.made)
    sup.stop()


def test_a_crashed_part_is_restarted_and_logged(services, client):
    wanted = Wanted("worker")
    sup = Supervisor(services, [wanted])
    sup.reconcile()
    first = sup.part("worker")
    first.crash()
    assert not first.alive()
    sup.reconcile()
    second = sup.part("worker")
    assert second is not first and second.running()
    assert wanted.events == [("start", "worker"), ("stop", "worker"), ("start", "worker")]
    assert any("worker stopped unexpectedly; restarting it" in m for m in _log_messages(client))
    sup.stop()


def test_a_changed_key_stops_the_old_part_and_starts_the_new(services):
    wanted = Wanted("scp:1:SLICEBOX:11112", "scp:2:OTHER:11113")
    sup = Supervisor(services, [wanted])
    sup.reconcile()
    old, untouched = sup.part("scp:1:SLICEBOX:11112"), sup.part("scp:2:OTHER:11113")
    wanted.keys[0] = "scp:1:SLICEBOX:4242"
    sup.reconcile()
    assert sup.keys() == ["scp:1:SLICEBOX:4242", "scp:2:OTHER:11113"]
    assert not old.alive()
    assert sup.part("scp:1:SLICEBOX:4242").running()
    assert sup.part("scp:2:OTHER:11113") is untouched and untouched.running()
    assert wanted.events[2:] == [("stop", "scp:1:SLICEBOX:11112"), ("start", "scp:1:SLICEBOX:4242")]
    wanted.keys = []
    sup.reconcile()
    assert sup.keys() == [] and not any(p.alive() for p in wanted.made)
    sup.stop()


def test_stop_stops_every_part_of_every_provider_and_the_loop(services):
    one, two = Wanted("a", "b"), Wanted("c")
    sup = Supervisor(services, [one, two], interval=0.05)
    sup.start()
    deadline = time.monotonic() + 10
    while sup.keys() != ["a", "b", "c"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sup.keys() == ["a", "b", "c"]
    parts = one.made + two.made
    sup.stop()
    assert sup.keys() == []
    assert not any(p.alive() for p in parts)
    sup.stop()  # idempotent
    sup.reconcile()  # a stopped supervisor starts nothing again
    assert sup.keys() == [] and len(one.made + two.made) == 3


def test_the_loop_restarts_a_crashed_part_by_itself(services):
    wanted = Wanted("worker")
    sup = Supervisor(services, [wanted], interval=0.05)
    sup.start()
    try:
        deadline = time.monotonic() + 10
        while sup.part("worker") is None and time.monotonic() < deadline:
            time.sleep(0.01)
        first = sup.part("worker")
        first.crash()
        while (sup.part("worker") in (None, first)) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sup.part("worker") is not first and sup.part("worker").running()
    finally:
        sup.stop()


def test_a_failing_provider_leaves_its_parts_and_others_work(services):
    flaky, steady = Wanted("a"), Wanted("b")
    sup = Supervisor(services, [flaky, steady])
    sup.reconcile()
    flaky.fail = True
    steady.keys = ["b", "c"]
    sup.reconcile()
    assert sup.keys() == ["a", "b", "c"]
    assert sup.part("a").running()
    sup.stop()


def test_a_part_that_cannot_start_is_tried_again(services, client):
    attempts = []

    def broken():
        attempts.append(1)
        raise OSError("port in use")

    sup = Supervisor(services, [lambda s: {"scp:1": broken}])
    sup.reconcile()
    sup.reconcile()
    assert sup.keys() == [] and len(attempts) == 2
    assert any("could not start scp:1: port in use" in m for m in _log_messages(client))
    sup.stop()


@pytest.mark.parametrize("twice", [False, True])
def test_one_key_from_two_providers_runs_once(services, twice):
    one, two = Wanted("x"), Wanted("x")
    sup = Supervisor(services, [one, two])
    sup.reconcile()
    if twice:
        sup.reconcile()
    assert sup.keys() == ["x"] and len(one.made) == 1 and two.made == []
    sup.stop()
