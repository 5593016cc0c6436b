"""Pseudonyms stay consistent under concurrency, on SQLite and PostgreSQL.

Each simulated worker has its own Database and Services (and so its own
process-level cache), as separate gunicorn workers would; only the database
can make them agree.
"""
from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from slicebox.context import Services
from slicebox.db import Database
from slicebox.models import AnonymizationKey
from slicebox.services import anonymization as anon

THREADS = 16
WORKERS = 4


@pytest.fixture
def workers(services):
    """WORKERS independent Services on the same database as ``services``."""
    made = [Services(config=services.config, db=Database(services.db.url), storage=services.storage)
            for _ in range(WORKERS)]
    yield made
    for s in made:
        s.close()


def _run_parallel(workers, fn):
    """Call fn(services, thread_index) in THREADS threads released at the same moment."""
    barrier = threading.Barrier(THREADS)

    def task(i):
        barrier.wait()
        return fn(workers[i % len(workers)], i)

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(task, range(THREADS)))


def test_one_pseudonym_per_patient_under_concurrency(workers, services):
    results = _run_parallel(workers, lambda s, i: anon.pseudonym_for_patient(s, "Doe^John", "12345"))
    assert len(set(results)) == 1
    anon_name, anon_id = results[0]
    assert anon_name and anon_id and "Doe" not in anon_name and "12345" not in anon_id
    # padding does not make another patient; the main app agrees with the workers
    assert anon.pseudonym_for_patient(services, "Doe^John ", "12345") == results[0]
    shifts = _run_parallel(workers, lambda s, i: anon.date_shift_for_patient(s, "Doe^John", "12345"))
    assert len(set(shifts)) == 1 and shifts[0] < 0
    with services.db.connection() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM anonymization_identities WHERE kind = 'patient'") == 1


def test_one_anonymous_uid_per_uid_under_concurrency(workers, services):
    results = _run_parallel(workers, lambda s, i: anon.anon_uid(s, "1.2.826.0.1.3680043.2.1125.1"))
    assert len(set(results)) == 1
    assert results[0].startswith("2.25.") and results[0] != "1.2.826.0.1.3680043.2.1125.1"
    assert len(results[0]) <= 64
    assert anon.anon_uid(services, "1.2.826.0.1.3680043.2.1125.1\x00") == results[0]
    assert anon.anon_uid(services, "") == ""


def test_distinct_real_values_never_share_an_anonymous_value(workers, services):
    uids = [f"1.2.3.{n}" for n in range(40)]
    patients = [(f"Patient^{n}", f"ID{n}") for n in range(12)]

    def work(s, i):
        rng = random.Random(i)
        order_u, order_p = uids[:], patients[:]
        rng.shuffle(order_u)
        rng.shuffle(order_p)
        return ({u: anon.anon_uid(s, u) for u in order_u},
                {p: anon.pseudonym_for_patient(s, *p) for p in order_p})

    results = _run_parallel(workers, work)
    uid_maps = [r[0] for r in results]
    patient_maps = [r[1] for r in results]
    assert all(m == uid_maps[0] for m in uid_maps)  # every thread saw the same mapping
    assert all(m == patient_maps[0] for m in patient_maps)
    assert len(set(uid_maps[0].values())) == len(uids)  # one-to-one
    assert len({name for name, _ in patient_maps[0].values()}) == len(patients)
    assert len({pid for _, pid in patient_maps[0].values()}) == len(patients)
    with services.db.connection() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM anonymization_identities WHERE kind = 'uid'") == len(uids)


def test_an_anonymous_value_collision_is_retried(services, monkeypatch):
    first = anon.anon_uid(services, "1.2.3.100")
    candidates = iter([first, "2.25.999"])  # the first candidate is taken by 1.2.3.100
    monkeypatch.setattr(anon, "new_uid", lambda: next(candidates))
    assert anon.anon_uid(services, "1.2.3.101") == "2.25.999"


def _key(n: str, **anon_values) -> AnonymizationKey:
    base = dict(id=0, created=0, image_id=1, patient_name="Doe^John", anon_patient_name="ANON^A",
                patient_id="123", anon_patient_id="A1", study_instance_uid=f"1.1.{n}",
                anon_study_instance_uid=f"2.25.1{n}", series_instance_uid=f"1.2.{n}",
                anon_series_instance_uid=f"2.25.2{n}", sop_instance_uid=f"1.3.{n}",
                anon_sop_instance_uid=f"2.25.3{n}")
    base.update(anon_values)
    return AnonymizationKey(**base)


def test_find_key_for_anonymous_prefers_the_most_specific_level(services):
    a = anon.record_key(services, _key("1"), [("(0008,0050)", "ACC1", "")])
    b = anon.record_key(services, _key("2", anon_study_instance_uid="2.25.11"), [])
    match = anon.find_key_for_anonymous(services, "ANON^A", "A1", "2.25.11", "2.25.21", "2.25.31")
    assert match.level == "image" and match.key.id == a.id
    assert [(v.tag_path, v.value) for v in match.values] == [("(0008,0050)", "ACC1")]
    match = anon.find_key_for_anonymous(services, "ANON^A", "A1", "2.25.11", "2.25.22", "2.25.99")
    assert match.level == "series" and match.key.id == b.id
    match = anon.find_key_for_anonymous(services, "ANON^A", "A1", "2.25.11", "2.25.77", "2.25.99")
    assert match.level == "study" and match.key.id == b.id  # the newest key of the study
    match = anon.find_key_for_anonymous(services, "ANON^A ", "A1", "2.25.55")
    assert match.level == "patient"
    assert anon.find_key_for_anonymous(services, "ANON^B", "A1", "2.25.11") is None
