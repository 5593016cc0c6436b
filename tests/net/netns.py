"""Orthanc in a private network namespace holding only loopback (it cannot bind to 127.0.0.1 only).

``unshare --net`` gives the Orthanc process a namespace of its own; code that must
talk to it (or listen where it can reach) runs in a short-lived thread that
entered that namespace with ``setns`` (a socket stays in the namespace it was
created in, so a listener started there keeps serving from any thread).
"""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import threading
import http.client as httpclient

CLONE_NEWNET = 0x40000000
ORTHANC_CANDIDATES = ("/usr/sbin/Orthanc", "/usr/bin/Orthanc")


def find_orthanc() -> str | None:
    for candidate in ORTHANC_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("Orthanc")


def netns_allowed() -> tuple[bool, str]:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False, "needs `unshare` (util-linux) and `ip` (iproute2)"
    result = subprocess.run(["unshare", "--net", "sh", "-c", "ip link set lo up"], capture_output=True, text=True)
    if result.returncode != 0:
        return False, f"network namespaces are not allowed here: {result.stderr.strip()[:200]}"
    return True, ""


def in_netns(pid: int, fn, *args, **kwargs):
    """Run ``fn`` in a thread inside the network namespace of process ``pid``; return its result."""
    out: dict = {}

    def target():
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            with open(f"/proc/{pid}/ns/net", "rb") as ns:
                if libc.setns(ns.fileno(), CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns: {os.strerror(err)}")
            out["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the caller's thread
            out["error"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out.get("value")


def start_orthanc(work: str, http_port: int, dicom_port: int, modalities: dict, log) -> subprocess.Popen:
    config = {
        "Name": "SliceboxTest", "StorageDirectory": os.path.join(work, "orthanc-db"),
        "IndexDirectory": os.path.join(work, "orthanc-db"), "StorageCompression": False,
        "HttpPort": http_port, "DicomServerEnabled": True, "DicomPort": dicom_port, "DicomAet": "ORTHANC",
        "DicomCheckCalledAet": False, "DicomModalities": modalities, "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False, "SaveJobs": False, "Plugins": [], "StableAge": 3600,
        "DicomScuTimeout": 10,
    }
    path = os.path.join(work, "orthanc.json")
    with open(path, "w") as fh:
        json.dump(config, fh)
    return subprocess.Popen(["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$0" "$1"',
                             find_orthanc(), path], cwd=work, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, "TCP_NODELAY": "1"})


def http(port: int, method: str, path: str, body: bytes = b"", timeout: float = 60) -> tuple[int, bytes]:
    """One HTTP request to 127.0.0.1:port (call it through in_netns)."""
    conn = httpclient.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Content-Length": str(len(body))})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()
