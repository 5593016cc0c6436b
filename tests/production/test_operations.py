"""What an operator relies on: health naming what is down, one-line logs with request ids,
X-Forwarded-* only from trusted proxies, the API document, gunicorn sizing."""
from __future__ import annotations

import io
import json
import logging
import os
import shutil
import uuid

import psycopg
import pytest
from pg import PG_URL, require_postgres
from factories import make_dicom_bytes
from helpers import ADMIN, AuthClient
from s3server import box_config

from slicebox import logsetup, serving
from slicebox.config import load_config

UA = {"User-Agent": "ops-test"}
#: what these tests look at does not depend on the database kind (PostgreSQL is used explicitly where it does)
ONE_DB = pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)


# -- /system/health -------------------------------------------------------------------
@ONE_DB
def test_health_names_a_missing_storage_folder(app, anon_client):
    services = app.extensions["slicebox"]
    assert anon_client.get("/api/system/health").get_json() == {"status": "ok", "database": "ok", "storage": "ok"}
    shutil.rmtree(services.storage.root)
    r = anon_client.get("/api/system/health")
    assert r.status_code == 503
    body = r.get_json()
    assert body["status"] == "unavailable" and body["database"] == "ok"
    assert body["storage"].startswith("unreachable: storage folder")


@ONE_DB
def test_health_names_an_unreachable_object_store(app_factory, moto_server, bucket, tmp_path):
    app = app_factory(**box_config(moto_server.url, bucket))
    client = app.test_client()
    assert client.get("/api/system/health").status_code == 200
    moto_server.client().delete_bucket(Bucket=bucket)  # the bucket is gone (what a store down looks like too)
    r = client.get("/api/system/health")
    assert r.status_code == 503
    assert r.get_json()["database"] == "ok" and "object store s3://" in r.get_json()["storage"]
    # and an upload now is a 503 naming the store, not a 500
    up = AuthClient(client, ADMIN).post("/api/images", data=make_dicom_bytes(), content_type="application/octet-stream")
    assert up.status_code == 503 and "object store" in up.get_json()["error"]
    with app.extensions["slicebox"].db.connection() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM images") == 0


@ONE_DB
def test_health_names_an_unreachable_database(app_factory, tmp_path):
    require_postgres()
    role = "sb_health_" + uuid.uuid4().hex[:8]
    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'GRANT USAGE, CREATE ON SCHEMA "{schema}" TO "{role}"')
    base = PG_URL.replace("postgres@", f"{role}@", 1)
    sep = "&" if "?" in base else "?"
    try:
        app = app_factory(DATABASE_URL=f"{base}{sep}schema={schema}")
        client = app.test_client()
        assert client.get("/api/system/health").status_code == 200
        with psycopg.connect(PG_URL, autocommit=True) as conn:  # the database refuses the box from now on
            conn.execute(f'ALTER ROLE "{role}" NOLOGIN')
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
        r = client.get("/api/system/health")
        assert r.status_code == 503
        body = r.get_json()
        assert body["status"] == "unavailable" and body["storage"] == "ok"
        assert body["database"].startswith("unreachable")
        app.extensions["slicebox"].db.close()
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')


# -- logs ------------------------------------------------------------------------------
@ONE_DB
def test_log_lines_are_one_line_with_level_logger_and_request_id(client):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logsetup.OneLineFormatter())
    handler.addFilter(logsetup.RequestIdFilter())
    logging.getLogger().addHandler(handler)
    try:
        r = client.post("/api/images", data=b"not dicom at all", content_type="application/octet-stream",
                        headers={"X-Request-ID": "abc-123"})
        assert r.status_code == 400 and r.headers["X-Request-ID"] == "abc-123"
        logging.getLogger("slicebox.test").error("two\nlines", exc_info=ValueError("boom\nbang"))
        own = client.get("/api/system/health", headers={"X-Request-ID": "bad id with spaces"})
        assert own.headers["X-Request-ID"] != "bad id with spaces" and len(own.headers["X-Request-ID"]) == 16
    finally:
        logging.getLogger().removeHandler(handler)
    lines = stream.getvalue().splitlines()
    ours = [ln for ln in lines if "slicebox.test" in ln]
    assert len(ours) == 1 and " ERROR slicebox.test [pid=" in ours[0] and "req=-]" in ours[0]
    assert "two\\nlines" in ours[0] and "ValueError: boom\\nbang" in ours[0]


def test_gunicorn_log_config_uses_the_same_format():
    config = logsetup.gunicorn_logconfig("INFO", access_log=True)
    assert config["formatters"]["oneline"]["()"] is logsetup.OneLineFormatter
    assert config["handlers"]["stderr"]["stream"] == "ext://sys.stderr"
    for name in ("gunicorn.error", "gunicorn.access"):
        assert config["loggers"][name]["handlers"] == ["stderr"]
    off = logsetup.gunicorn_logconfig("INFO", access_log=False)
    assert off["loggers"]["gunicorn.access"]["handlers"] == []


# -- X-Forwarded-* --------------------------------------------------------------------
def _login_ip(app, peer: str, forwarded: str) -> tuple[int, list[str]]:
    client = app.test_client()
    r = client.post("/api/users/login", json={"user": "admin", "pass": "secret"},
                    headers={**UA, "X-Forwarded-For": forwarded}, environ_base={"REMOTE_ADDR": peer})
    with app.extensions["slicebox"].db.connection() as conn:
        ips = [row["ip"] for row in conn.all("SELECT ip FROM sessions ORDER BY id")]
    return r.status_code, ips


@ONE_DB
def test_forwarded_headers_are_ignored_unless_trusted_proxies_is_set(app):
    status, ips = _login_ip(app, "192.0.2.10", "198.51.100.7")
    assert status == 201 and ips == ["192.0.2.10"]


@ONE_DB
def test_forwarded_for_applies_only_to_requests_from_a_trusted_proxy(app_factory):
    app = app_factory(TRUSTED_PROXIES="10.0.0.0/8, 192.0.2.1")
    assert _login_ip(app, "10.1.2.3", "198.51.100.7")[1] == ["198.51.100.7"]
    assert _login_ip(app, "192.0.2.1", "198.51.100.8")[1][-1] == "198.51.100.8"
    assert _login_ip(app, "192.0.2.99", "198.51.100.9")[1][-1] == "192.0.2.99"  # not a proxy: ignored
    # the session is bound to the forwarded client: the same cookie from another client is refused
    client = app.test_client()
    client.post("/api/users/login", json={"user": "admin", "pass": "secret"},
                headers={**UA, "X-Forwarded-For": "198.51.100.20"}, environ_base={"REMOTE_ADDR": "10.0.0.5"})
    ok = client.get("/api/users/current", headers={**UA, "X-Forwarded-For": "198.51.100.20"},
                    environ_base={"REMOTE_ADDR": "10.0.0.5"})
    assert ok.status_code == 200
    other = client.get("/api/metadata/patients", headers={**UA, "X-Forwarded-For": "198.51.100.21"},
                       environ_base={"REMOTE_ADDR": "10.0.0.5"})
    assert other.status_code == 401


@ONE_DB
def test_a_bad_trusted_proxies_value_is_refused(app_factory):
    with pytest.raises(ValueError, match="not an address"):
        app_factory(TRUSTED_PROXIES="10.0.0.0/8,nginx.local")


# -- the API document ------------------------------------------------------------------
@ONE_DB
def test_openapi_document_has_the_seed_operations_and_the_box_additions(app, anon_client):
    r = anon_client.get("/api/openapi.json")
    assert r.status_code == 200
    doc = r.get_json()
    with open(os.path.join(os.path.dirname(serving.__file__), "api", "openapi.json"), encoding="utf-8") as fh:
        seed = json.load(fh)  # the shipped copy of the shared API contract
    for path, operations in seed["paths"].items():
        for method in operations:
            assert method in doc["paths"][path], (method, path)
    # every /api route of the app is in the document, under the seed's path when it is one
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            import re

            shape = re.sub(r"<[^>]+>", "{}", rule.rule[4:])
            documented = {re.sub(r"\{[^}]*\}", "{}", p) for p in doc["paths"]}
            assert shape in documented, rule.rule
    assert doc["paths"]["/openapi.json"]["get"]["x-slicebox-added"] is True
    assert "x-slicebox-added" not in doc["paths"]["/images/{id}"]["get"]


# -- gunicorn sizing -------------------------------------------------------------------
def test_gunicorn_sizing_follows_the_cpu_count_unless_set():
    config = load_config(environ={})
    assert serving.sizing(config, cpus=1) == (2, 8)
    assert serving.sizing(config, cpus=2) == (2, 8)
    assert serving.sizing(config, cpus=8) == (8, 8)
    assert serving.sizing(load_config(environ={"SLICEBOX_WORKERS": "3", "SLICEBOX_THREADS": "5"}), cpus=8) == (3, 5)
    assert serving.sizing(config, workers=6, threads=1, cpus=2) == (6, 1)
    settings = serving.gunicorn_settings(config, "127.0.0.1", 5000, 2, 8)
    assert settings["worker_class"] == "gthread" and settings["forwarded_allow_ips"] == ""
    assert settings["timeout"] >= 120 and settings["graceful_timeout"] == 120
