"""Against a real `slicebox serve` (gunicorn) on SQLite and PostgreSQL: malformed chunked
bodies are a 400, and schemathesis over the seed spec finds no server error.

The schemathesis run uses a fixed seed and a time bound (SCHEMATHESIS_SECONDS per database)
and checks only ``not_a_server_error``; the box's log must show no unhandled error and no
worker death afterwards.
"""
from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys

import pytest

from boxes.boxproc import BoxProcess

HERE = os.path.dirname(os.path.abspath(__file__))
#: the seed spec (a copy of the shared slicebox-openapi.json kept with the tests)
SPEC = os.path.join(HERE, "slicebox-openapi.json")
SCHEMATHESIS_SECONDS = int(os.environ.get("SLICEBOX_TEST_SCHEMATHESIS_SECONDS", "40"))
SEED = 20261203
AUTH = "Basic " + base64.b64encode(b"admin:secret").decode()
DEATHS = ("WORKER TIMEOUT", "was sent SIGKILL", "was sent SIGSEGV", "Worker exiting", "exited with code")


@pytest.fixture
def box(tmp_path, database_url):
    # The fuzzer sends wrong passwords to /users/login from this address; the throttle
    # (tested on its own) would answer the rest of the run 429.
    b = BoxProcess("hostile", str(tmp_path / "box"), database_url, LOG_LEVEL="INFO",
                   LOGIN_FREE_ATTEMPTS=0)
    b.start()
    try:
        yield b
    finally:
        b.stop()


def _raw(box: BoxProcess, head: str, body: bytes, timeout: float = 15) -> bytes:
    with socket.create_connection(("127.0.0.1", box.port), timeout=timeout) as s:
        s.sendall(head.encode() + body)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            data += chunk
    return data


def _log_problems(box: BoxProcess) -> list[str]:
    with open(box.log_path, encoding="utf-8", errors="replace") as fh:
        log = fh.read()
    return [line for line in log.splitlines()
            if "unhandled error" in line or "Traceback" in line or any(d in line for d in DEATHS)]


#: (path, chunked body) a client might send: every one is a 400
MALFORMED_CHUNKED = [
    ("/api/images", b"zz\r\nabc\r\n0\r\n\r\n"),                 # chunk size not hex
    ("/api/images", b"4\r\nDICMxx\r\n0\r\n\r\n"),               # chunk longer than its size
    ("/api/users/login", b"-5\r\n{}\r\n0\r\n\r\n"),             # negative size
    ("/api/metadata/patients/query", b"3\r\n{\"a"),             # body ends inside a chunk
]


def test_real_server_refuses_hostile_framing_and_schemathesis_finds_no_server_error(box, tmp_path):
    """One box per database (starting one costs seconds): framing first, then the fuzzer."""
    for path, body in MALFORMED_CHUNKED:
        head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH}\r\nUser-Agent: t\r\n"
                "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        answer = _raw(box, head, body)
        status = answer.split(b"\r\n", 1)[0]
        assert status.startswith(b"HTTP/1.1 400"), (path, body, answer[:300])
    assert box.request("GET", "/system/health").status == 200
    assert box.json("GET", "/metadata/patients") == []  # no partial upload stored
    assert os.listdir(os.path.join(box.data_dir, "storage", "tmp")) == []

    token = base64.b64encode(b"ad\x00min:secret").decode()
    r = box.http.request("GET", box.url + "/api/users", headers={"Authorization": f"Basic {token}"})
    assert r.status == 400
    assert _log_problems(box) == []

    st = os.path.join(os.path.dirname(sys.executable), "st")
    cmd = [st, "run", SPEC, "--url", box.url + "/api", "--auth", "admin:secret",
           "--checks", "not_a_server_error", "--seed", str(SEED), "--max-time", str(SCHEMATHESIS_SECONDS),
           "--exclude-path", "/system/stop",  # it would stop the box under test
           "--workers", "2", "--request-timeout", "30", "--no-color"]
    run = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True,
                         timeout=SCHEMATHESIS_SECONDS + 240)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    assert " passed" in output and "Server error" not in output, output[-3000:]
    assert box.proc.poll() is None, "the box died"
    assert box.request("GET", "/system/health").status == 200
    assert _log_problems(box) == [], box.output()
