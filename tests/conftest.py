"""Fixtures: an app on a temporary SQLite file and on PostgreSQL, a client, auth.

PostgreSQL: SLICEBOX_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test).
Each app gets its own schema, dropped afterwards.  When the server is not
reachable the PostgreSQL variants skip with the reason -- except under CI=true,
where a missing PostgreSQL fails the run.
"""
from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
TESTS = os.path.dirname(os.path.abspath(__file__))
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

from pg import PG_URL, PgSchema, postgres_available, require_postgres  # noqa: E402,F401 (shared with test modules)


@pytest.fixture(params=["sqlite", "postgres"])
def db_kind(request):
    if request.param == "postgres":
        require_postgres()
    return request.param


#: The streaming engine each database variant runs on: every API-level test runs once on
#: SQLite with the compiled engine and once on PostgreSQL with its pure-Python twin, so both
#: engines pass the whole API suite (under SLICEBOX_NO_EXTENSIONS=1 both run the twin).
ENGINE_FOR_DB = {"sqlite": "compiled", "postgres": "python"}


@pytest.fixture
def engine_impl(db_kind):
    """Select the engine for this database variant (see ENGINE_FOR_DB); restored afterwards."""
    from slicebox import _speedups
    from slicebox.dicom import tagstream

    wanted = ENGINE_FOR_DB[db_kind]
    if wanted not in tagstream.available() or _speedups.disabled():
        wanted = "python"  # not built, or switched off by SLICEBOX_NO_EXTENSIONS
    previous = tagstream.select(wanted)
    try:
        yield wanted
    finally:
        tagstream.select(previous)


@pytest.fixture
def database_url(db_kind, tmp_path, engine_impl):
    if db_kind == "sqlite":
        yield "sqlite:///" + str(tmp_path / "slicebox.db")
        return
    schema = PgSchema()
    try:
        yield schema.url
    finally:
        schema.drop()


class FakeClock:
    """A clock that moves only when told (``advance``); delayed calls run when their time comes."""

    def __init__(self, start_ms: int):
        self.ms = start_ms
        self._due: list[list] = []  # [due_ms, fn, cancelled]

    def now_ms(self) -> int:
        return self.ms

    def call_later(self, seconds: float, fn):
        entry = [self.ms + int(seconds * 1000), fn, False]
        self._due.append(entry)

        class Handle:
            def cancel(self):
                entry[2] = True

        return Handle()

    def advance(self, seconds: float = 0, ms: int = 0) -> None:
        self.set(self.ms + int(seconds * 1000) + ms)

    def set(self, value_ms: int) -> None:
        self.ms = value_ms
        for entry in sorted((e for e in self._due if e[0] <= self.ms), key=lambda e: e[0]):
            self._due.remove(entry)
            if not entry[2]:
                entry[1]()


@pytest.fixture
def clock():
    """Installs a FakeClock (starting at the real time) for slicebox.clock; move it with advance()."""
    from slicebox import clock as clock_module

    fake = FakeClock(clock_module.now_ms())
    previous = clock_module.install(fake)
    yield fake
    clock_module.install(previous)


class StopRecorder:
    """Stands in for Services.on_stop: records each call in ``calls``."""

    def __init__(self):
        self.calls: list = []

    def __call__(self):
        self.calls.append(True)


@pytest.fixture
def app_factory(tmp_path, database_url):
    """Build apps on this test's database and data dir; all are closed afterwards."""
    from slicebox import create_app

    apps = []

    def make(**overrides):
        config = {
            "DATA_DIR": str(tmp_path / "data"),
            "DATABASE_URL": database_url,
            "BACKGROUND": False,
            "SUPERUSER": "admin",
            "SUPERUSER_PASSWORD": "secret",
            "THREADS": 4,
        }
        config.update(overrides)
        app = create_app(config)
        app.config["TESTING"] = True
        app.extensions["slicebox"].on_stop = StopRecorder()
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["slicebox"].close()


@pytest.fixture
def app(app_factory):
    return app_factory()


@pytest.fixture
def services(app):
    return app.extensions["slicebox"]


from helpers import ADMIN, AuthClient, basic  # noqa: E402  (shared with test modules)


@pytest.fixture
def client(app):
    """A test client that sends the superuser's basic auth unless told otherwise."""
    return AuthClient(app.test_client(), ADMIN)


@pytest.fixture
def anon_client(app):
    return app.test_client()


@pytest.fixture
def user_client(app, client):
    """A client authenticated as a plain USER."""
    r = client.post("/api/users", json={"user": "alice", "role": "USER", "password": "pw-alice"})
    assert r.status_code == 201, r.get_data(as_text=True)
    return AuthClient(app.test_client(), basic("alice", "pw-alice"))


@pytest.fixture
def upload(client):
    """Upload DICOM bytes (or make_dicom_bytes(**tags)) and return the response."""
    from factories import make_dicom_bytes

    def do(data: bytes | None = None, **tags):
        if data is None:
            data = make_dicom_bytes(**tags)
        return client.post("/api/images", data=data, content_type="application/octet-stream")

    return do


# -- a real S3-compatible server (moto's standalone server process), one per session ---------------
@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    from s3server import MotoServer

    server = MotoServer(str(tmp_path_factory.mktemp("moto"))).start()
    yield server
    server.stop()


@pytest.fixture
def bucket(moto_server):
    """A new empty bucket on the session's moto server."""
    return moto_server.new_bucket()
