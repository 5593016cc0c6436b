"""Debian's real nginx, running deploy/nginx.conf, in front of a real `slicebox serve`.

The test starts nginx itself (its own main configuration, pid file, temp and
log folders under tmp_path, loopback ports, a throw-away certificate), with the
shipped server configuration where only ports, certificate paths and the log
path are substituted -- so the file operators install is the one tested.
Client requests come from another loopback address (127.0.0.5) than nginx's own
(127.0.0.1), which is how we see that the box binds sessions to the real
client, not to the proxy.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest
import requests
import urllib3
from bigdicom import sha256_of_file, write_big_dicom
from boxes.boxproc import BoxProcess, free_port, wait_for
from factories import make_dicom_bytes
from procs import peak_rss, worker_pids
from requests.adapters import HTTPAdapter

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY_CONF = os.path.join(ROOT, "deploy", "nginx.conf")
NGINX = "/usr/sbin/nginx"
CLIENT_ADDRESS = "127.0.0.5"
OTHER_CLIENT_ADDRESS = "127.0.0.6"
AUTH = ("admin", "secret")
MEMORY_LIMIT = 300 * 1024 * 1024

pytestmark = pytest.mark.slow


def _need(path: str) -> None:
    if not os.path.exists(path):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {path} is missing (.ci/run installs it)")
        pytest.skip(f"{path} not installed (apt-get install nginx openssl)")


class SourceAddressAdapter(HTTPAdapter):
    """requests from a chosen loopback source address."""

    def __init__(self, address: str, **kwargs):
        self.address = address
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def client_session(address: str, cert: str) -> requests.Session:
    session = requests.Session()
    session.mount("https://", SourceAddressAdapter(address))
    session.mount("http://", SourceAddressAdapter(address))
    session.trust_env = False  # REQUESTS_CA_BUNDLE & co. would override verify
    session.verify = cert
    return session


class Nginx:
    def __init__(self, base: str, upstream_port: int):
        self.base = base
        self.https_port = free_port()
        self.http_port = free_port()
        self.upstream_port = upstream_port
        self.proc: subprocess.Popen | None = None
        self.cert = os.path.join(base, "box.crt")
        self.key = os.path.join(base, "box.key")
        self.conf = os.path.join(base, "nginx.conf")
        self.pid_file = os.path.join(base, "nginx.pid")
        self.body_temp = os.path.join(base, "body")

    def write_config(self) -> None:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "1", "-subj", "/CN=box.example.org",
                        "-addext", "subjectAltName=DNS:box.example.org,IP:127.0.0.1",
                        "-keyout", self.key, "-out", self.cert], check=True, capture_output=True)
        with open(DEPLOY_CONF, encoding="utf-8") as fh:
            server_conf = fh.read()
        for old, new in [
            ("server 127.0.0.1:5000;", f"server 127.0.0.1:{self.upstream_port};"),
            ("listen 80;", f"listen 127.0.0.1:{self.http_port};"),
            ("listen 443 ssl http2;", f"listen 127.0.0.1:{self.https_port} ssl http2;"),
            ("/etc/ssl/certs/box.example.org.crt", self.cert),
            ("/etc/ssl/private/box.example.org.key", self.key),
            ("/var/log/nginx/slicebox.access.log", os.path.join(self.base, "access.log")),
        ]:
            assert server_conf.count(old) == 1, f"deploy/nginx.conf no longer has {old!r}"
            server_conf = server_conf.replace(old, new)
        temps = "\n".join(f"    {kind}_temp_path {os.path.join(self.base, kind)};"
                          for kind in ("proxy", "fastcgi", "uwsgi", "scgi"))
        user = "user root;\n" if os.geteuid() == 0 else ""
        with open(self.conf, "w", encoding="utf-8") as fh:
            fh.write(f"""{user}worker_processes 1;
daemon off;
pid {self.pid_file};
error_log {os.path.join(self.base, 'error.log')} info;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {self.body_temp};
{temps}
    access_log off;
{server_conf}
}}
""")

    def start(self) -> "Nginx":
        self.write_config()
        check = subprocess.run([NGINX, "-t", "-p", self.base, "-c", self.conf], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen([NGINX, "-p", self.base, "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: os.path.exists(self.pid_file) and self._answers(), timeout=30, interval=0.05,
                 what="nginx listening")
        return self

    def _answers(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.https_port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # the master we started (fast shutdown), by its own pid
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    _need(NGINX)
    if shutil.which("openssl") is None:
        _need("/usr/bin/openssl")
    base = str(tmp_path_factory.mktemp("nginx"))
    box = BoxProcess("edge", os.path.join(base, "box"), TRUSTED_PROXIES="127.0.0.1", ACCESS_LOG="true",
                     LOG_LEVEL="INFO", WORKERS="2", THREADS="2").start()
    nginx = Nginx(base, box.port)
    try:
        nginx.start()
        yield box, nginx
    finally:
        nginx.stop()
        box.stop()


def test_upload_query_download_and_request_ids_through_nginx(stack):
    box, nginx = stack
    http = client_session(CLIENT_ADDRESS, nginx.cert)
    data = make_dicom_bytes(PatientName="Edge^Patient", PatientID="EDGE1", Modality="MR")
    r = http.post(nginx.url + "/api/images", data=data, auth=AUTH,
                  headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    image_id = r.json()["id"]
    request_id = r.headers["X-Request-ID"]
    assert len(request_id) == 32  # nginx's $request_id reached the box and came back

    query = {"startIndex": 0, "count": 10,
             "queryProperties": [{"propertyName": "modality", "operator": "=", "propertyValue": "MR"}]}
    found = http.post(nginx.url + "/api/metadata/series/query", json=query, auth=AUTH)
    assert found.status_code == 200 and len(found.json()) == 1
    got = http.get(f"{nginx.url}/api/images/{image_id}", auth=AUTH)
    assert got.status_code == 200 and got.content == data
    assert http.get(nginx.url + "/api/openapi.json").json()["paths"]["/images/{id}"]
    health = http.get(nginx.url + "/api/system/health")
    assert health.status_code == 200 and health.json()["database"] == "ok"

    page = http.get(nginx.url + "/")  # the web interface is served through the same proxy
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]

    # plain HTTP is redirected to HTTPS
    plain = http.get(f"http://127.0.0.1:{nginx.http_port}/api/system/health", allow_redirects=False)
    assert plain.status_code == 301 and plain.headers["Location"].startswith("https://")

    # the box's log: one line per event with level, logger and nginx's request id
    lines = wait_for(lambda: [ln for ln in box.output().splitlines()
                              if request_id in ln and " gunicorn.access " in ln], timeout=10,
                     what="the access log line with the request id")
    assert " INFO gunicorn.access " in lines[0] and '"POST /api/images HTTP/1.1" 201' in lines[0]
    events = [ln for ln in box.output().splitlines() if f"req={request_id}" in ln]
    assert any(" INFO slicebox." in ln and "new series" in ln for ln in events), events


def test_sessions_bind_to_the_real_client_address(stack):
    box, nginx = stack
    http = client_session(CLIENT_ADDRESS, nginx.cert)
    # a client-chosen X-Forwarded-For is replaced by nginx with the address it sees
    r = http.post(nginx.url + "/api/users/login", json={"user": "admin", "pass": "secret"},
                  headers={"User-Agent": "edge-test", "X-Forwarded-For": "10.66.66.66"})
    assert r.status_code == 201, r.text
    ips = [row[0] for row in box.sql("SELECT ip FROM sessions")]
    assert CLIENT_ADDRESS in ips and "10.66.66.66" not in ips and "127.0.0.1" not in ips
    assert http.get(nginx.url + "/api/users/current", headers={"User-Agent": "edge-test"}).status_code == 200
    # the same cookie from another client address is refused
    thief = client_session(OTHER_CLIENT_ADDRESS, nginx.cert)
    thief.cookies.update(http.cookies)
    stolen = thief.get(nginx.url + "/api/metadata/patients", headers={"User-Agent": "edge-test"})
    assert stolen.status_code == 401
    # and directly at the box (not via a trusted proxy) the headers count for nothing
    direct = client_session(CLIENT_ADDRESS, nginx.cert)
    d = direct.post(box.url + "/api/users/login", json={"user": "admin", "pass": "secret"},
                    headers={"User-Agent": "direct", "X-Forwarded-For": "10.77.77.77"})
    assert d.status_code == 201
    assert "10.77.77.77" not in [row[0] for row in box.sql("SELECT ip FROM sessions")]


def test_200_mb_upload_and_download_stream_through_nginx(stack, tmp_path):
    box, nginx = stack
    http = client_session(CLIENT_ADDRESS, nginx.cert)
    size = 200 * 1024 * 1024
    path = write_big_dicom(str(tmp_path / "big.dcm"), size, PatientName="Big^Edge")
    workers = worker_pids(box.proc.pid)
    assert len(workers) == 2
    with open(path, "rb") as fh:
        r = http.post(nginx.url + "/api/images", data=fh, auth=AUTH,
                      headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    image_id = r.json()["id"]
    # request buffering is off: nginx kept no copy of the body on its disk
    assert not os.path.isdir(nginx.body_temp) or os.listdir(nginx.body_temp) == []

    import hashlib

    digest, total = hashlib.sha256(), 0
    with http.get(f"{nginx.url}/api/images/{image_id}", auth=AUTH, stream=True) as got:
        assert got.status_code == 200 and int(got.headers["Content-Length"]) == size
        for chunk in got.iter_content(1 << 20):
            digest.update(chunk)
            total += len(chunk)
    assert total == size and digest.hexdigest() == sha256_of_file(path)
    assert worker_pids(box.proc.pid) == workers  # no worker was replaced meanwhile
    peaks = {pid: peak_rss(pid) for pid in workers}
    print("worker peak RSS after 200 MB in and out:", {pid: f"{peak / 2**20:.0f} MB" for pid, peak in peaks.items()})
    assert all(peak < MEMORY_LIMIT for peak in peaks.values()), \
        {pid: f"{peak / 2**20:.0f} MB" for pid, peak in peaks.items()}
