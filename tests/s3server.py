"""A real S3-compatible server for the tests: moto's standalone server, as its own process.

``MotoServer`` starts ``python -m moto.server -p PORT`` on 127.0.0.1 and waits
until it answers.  ``FaultyProxy`` sits between the box and that server and
forwards every request unchanged, except the ones its rule picks, which it
answers itself with an S3-style error (e.g. a 503 SlowDown for one part of a
multipart upload) -- how a real object store fails in the middle of an upload.
"""
from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import boto3
from botocore.config import Config

KEY_ID = "testing"
SECRET = "testing"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    def __init__(self, log_dir: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(log_dir, f"moto-{self.port}.log")
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "MotoServer":
        log = open(self.log_path, "ab")
        env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET)
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto server exited: {self.output()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.request("GET", "/")
                conn.getresponse().read()
                conn.close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"moto server did not start: {self.output()}")

    def output(self) -> str:
        with open(self.log_path, "rb") as fh:
            return fh.read()[-3000:].decode("utf-8", "replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def client(self):
        return client_for(self.url)

    def new_bucket(self) -> str:
        name = "sb-" + uuid.uuid4().hex[:12]
        self.client().create_bucket(Bucket=name)
        return name


def client_for(url: str):
    return boto3.session.Session().client(
        "s3", endpoint_url=url, region_name=REGION, aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET, config=Config(s3={"addressing_style": "path"},
                                                    retries={"max_attempts": 1}))


def box_config(url: str, bucket: str, prefix: str = "images") -> dict:
    """The configuration keys (without SLICEBOX_) that point a box at ``bucket`` on ``url``."""
    return {"STORAGE_URL": f"s3://{bucket}/{prefix}", "S3_ENDPOINT_URL": url, "S3_REGION": REGION,
            "S3_ACCESS_KEY_ID": KEY_ID, "S3_SECRET_ACCESS_KEY": SECRET}


def all_keys(client, bucket: str) -> list[str]:
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.extend(item["Key"] for item in page.get("Contents", ()))
    return sorted(keys)


#: A rule sees (method, path with query, headers) and returns None (forward) or (status, S3 error code).
Rule = Callable[[str, str, dict], "tuple[int, str] | None"]


class FaultyProxy:
    """An HTTP forwarder to ``target`` on a loopback port; ``rule`` decides which requests fail."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.rule: Rule = lambda method, path, headers: None
        self.seen: list[tuple[str, str, int]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items()}
                verdict = proxy.rule(self.command, self.path, headers)
                if verdict is not None:
                    status, code = verdict
                    payload = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                               f"<Message>injected by the test</Message></Error>").encode()
                    proxy.seen.append((self.command, self.path, status))
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection("127.0.0.1", proxy.target_port, timeout=120)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                    proxy.seen.append((self.command, self.path, response.status))
                    self.send_response(response.status)
                    for key, value in response.getheaders():
                        if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                            self.send_header(key, value)
                    if self.command == "HEAD":  # no body; the length is the object's
                        self.send_header("Content-Length", response.getheader("Content-Length", "0"))
                    else:
                        self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
