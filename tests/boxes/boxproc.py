"""Real boxes as separate `slicebox serve` processes on loopback ports."""
from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time

import urllib3

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AUTH = "Basic " + base64.b64encode(b"admin:secret").decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BoxProcess:
    """One box: its own data dir, port and database, run as `python -m slicebox.cli serve`."""

    def __init__(self, name: str, data_dir: str, database_url: str = "", **config):
        self.name = name
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ)
        self.env.update({
            "SLICEBOX_NAME": name,
            "SLICEBOX_DATA_DIR": data_dir,
            "SLICEBOX_PORT": str(self.port),
            "SLICEBOX_HOST": "127.0.0.1",
            "SLICEBOX_WORKERS": "2",
            "SLICEBOX_THREADS": "4",
            "SLICEBOX_SUPERUSER": "admin",
            "SLICEBOX_SUPERUSER_PASSWORD": "secret",
            "SLICEBOX_BOX_POLL_INTERVAL": "0.3",
            "SLICEBOX_BOX_MAX_BACKOFF": "1.0",
            "SLICEBOX_LOG_LEVEL": "WARNING",
            "PYTHONPATH": ROOT + os.pathsep + self.env.get("PYTHONPATH", ""),
        })
        if database_url:
            self.env["SLICEBOX_DATABASE_URL"] = database_url
        for key, value in config.items():
            self.env[f"SLICEBOX_{key}"] = str(value)
        self.proc: subprocess.Popen | None = None
        self.http = urllib3.PoolManager(headers={"Authorization": AUTH}, retries=False,
                                        timeout=urllib3.Timeout(connect=5, read=120))
        self.log_path = os.path.join(data_dir, f"{name}.out")

    def start(self, timeout: float = 90) -> "BoxProcess":
        os.makedirs(self.data_dir, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "slicebox.cli", "serve"], env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"box {self.name} exited: {self.output()}")
            try:
                if self.http.request("GET", self.url + "/api/system/health", timeout=1).status == 200:
                    return self
            except urllib3.exceptions.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"box {self.name} did not start: {self.output()}")

    def output(self) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                return fh.read()[-4000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL the whole box (gunicorn master and workers) at once."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    # -- API helpers --------------------------------------------------------------
    def request(self, method: str, path: str, body=None, raw: bytes | None = None):
        headers = {"Authorization": AUTH}
        if body is not None:
            raw = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif raw is not None:
            headers["Content-Type"] = "application/octet-stream"
        return self.http.request(method, self.url + "/api" + path, body=raw, headers=headers)

    def json(self, method: str, path: str, body=None, expect: int | tuple = (200, 201)):
        r = self.request(method, path, body)
        expect = (expect,) if isinstance(expect, int) else expect
        assert r.status in expect, f"{method} {path} -> {r.status} {r.data[:500]!r}"
        return json.loads(r.data) if r.data else None

    def upload(self, data: bytes) -> dict:
        r = self.request("POST", "/images", raw=data)
        assert r.status in (200, 201), r.data
        return json.loads(r.data)

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        """Read this box's SQLite database directly (what it really stored)."""
        import sqlite3

        conn = sqlite3.connect(os.path.join(self.data_dir, "slicebox.db"), timeout=30)
        try:
            return conn.execute(query, params).fetchall()
        finally:
            conn.close()

    def sql_write(self, query: str, params: tuple = ()) -> None:
        """Change this box's SQLite database directly (test set-up of states the API cannot make)."""
        import sqlite3

        conn = sqlite3.connect(os.path.join(self.data_dir, "slicebox.db"), timeout=30)
        try:
            with conn:
                conn.execute(query, params)
        finally:
            conn.close()

    def count_images(self) -> int:
        return self.sql("SELECT COUNT(*) FROM images")[0][0]


def wait_for(predicate, timeout: float = 180, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")
