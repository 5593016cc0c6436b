"""DICOM C-STORE ingest benchmark: dcmtk storescu into a box SCP, dcmtk's storescp and Orthanc, same run.

Usage (from the repository root, as root for Orthanc's network namespace):

    python bench/bench_dicom.py                    # 1,000 CT images, 1 and 4 associations
    python bench/bench_dicom.py --count 100        # quick run
    python bench/bench_dicom.py --no-orthanc       # without Orthanc

Generates N CT images (512x512, 16 bit, about 0.53 MB, Explicit VR Little Endian) and, for
each number of associations, starts every target fresh (empty storage) and sends all files
with that many concurrent ``/usr/bin/storescu`` processes (each one association, ``-R``: the
files' own syntax), timing the wall clock from the first association to the last answer:

* slicebox: ``slicebox serve`` (SQLite, 2 gunicorn workers) with one SCP added through the
  API, so every image goes through the box's whole ingest path (indexed, stored, logged);
* storescp: dcmtk's own SCP writing each file to a folder (``-od``): this machine's limit for
  the same transfer;
* orthanc: Debian's Orthanc 1.10 with a temporary storage, in a private network namespace
  holding only loopback (``unshare --net``; its storescu runs there with ``nsenter``).

dcmtk leaves Nagle on unless ``TCP_NODELAY=1`` is in its environment; every storescu and
storescp here gets it, and so does Orthanc (its DICOM side is dcmtk: without it, about 15 img/s).  CPU per image is the user+system time of the target's whole process
tree (its session) during the timed run, divided by the images.  Targets of issue 11: one
association at least 1.0x Orthanc, four at least 1.5x Orthanc.  The exit code is 0 unless a
target could not be set up; this is a benchmark, not a test.
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)

from bench_anonymize import find_orthanc  # noqa: E402
from bench_ingest import free_port, generate, start_slicebox, stop  # noqa: E402

DCMTK = "/usr/bin"
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}
AUTH = "Basic " + base64.b64encode(b"admin:admin").decode()
CLK_TCK = os.sysconf("SC_CLK_TCK")


class SetupError(RuntimeError):
    pass


def session_cpu(sid: int) -> float:
    """User + system CPU seconds of every live process in session ``sid``."""
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # fields after ')': state ppid pgrp session ...
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def wait_echo(port: int, ae: str, prefix: list[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = subprocess.run(prefix + [f"{DCMTK}/echoscu", "-aec", ae, "127.0.0.1", str(port)],
                                capture_output=True, env=DCMTK_ENV)
        if result.returncode == 0:
            return
        time.sleep(0.2)
    raise SetupError(f"no C-ECHO answer from {ae} on port {port} after {timeout:.0f} s")


def store_all(files: list[str], port: int, ae: str, associations: int, prefix: list[str]) -> tuple[float, int]:
    """Send ``files`` over ``associations`` concurrent storescu processes: (seconds, failed processes)."""
    chunks = [files[i::associations] for i in range(associations)]
    failures = []

    def run(chunk):
        result = subprocess.run(prefix + [f"{DCMTK}/storescu", "-R", "-aec", ae, "127.0.0.1", str(port), *chunk],
                                capture_output=True, text=True, env=DCMTK_ENV)
        if result.returncode != 0:
            failures.append(result.stderr[-500:])

    threads = [threading.Thread(target=run, args=(c,)) for c in chunks if c]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    for f in failures[:2]:
        print("  storescu failed:", f, file=sys.stderr)
    return elapsed, len(failures)


# -- targets ----------------------------------------------------------------------------
class Target:
    name = ""
    ae = ""
    prefix: list[str] = []

    def start(self, work: str, log) -> None: ...
    def stop(self) -> None: ...
    def stored(self) -> int: ...


class Slicebox(Target):
    name, ae = "slicebox", "SLICEBOX"

    def start(self, work, log):
        self.proc, self.http_port = start_slicebox(work, 2, "", log, extra_env={
            "SLICEBOX_SCP_HOST": "127.0.0.1", "SLICEBOX_SUPERVISOR_INTERVAL": "0.5"})
        self.sid = self.proc.pid
        self.port = free_port()
        status, body = self._request("POST", "/api/scps", {"name": "bench", "aeTitle": self.ae, "port": self.port})
        if status != 201:
            raise SetupError(f"POST /api/scps answered {status}: {body[:200]!r}")
        wait_echo(self.port, self.ae, self.prefix)

    def _request(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=60)
        data = b"" if body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers={"Authorization": AUTH, "Content-Type": "application/json"})
        response = conn.getresponse()
        result = response.status, response.read()
        conn.close()
        return result

    def stored(self):
        _, body = self._request("POST", "/api/metadata/images/query",
                                {"startIndex": 0, "count": 10000, "queryProperties": []})
        return len(json.loads(body))

    def stop(self):
        stop(self.proc)


class Storescp(Target):
    name, ae = "storescp", "STORESCP"

    def start(self, work, log):
        self.out = tempfile.mkdtemp(prefix="storescp-", dir=work)
        self.port = free_port()
        self.proc = subprocess.Popen([f"{DCMTK}/storescp", "-aet", self.ae, "-od", self.out, str(self.port)],
                                     stdout=log, stderr=subprocess.STDOUT, env=DCMTK_ENV, start_new_session=True)
        self.sid = self.proc.pid
        wait_echo(self.port, self.ae, self.prefix)

    def stored(self):
        return len(os.listdir(self.out))

    def stop(self):
        stop(self.proc)


class Orthanc(Target):
    name, ae = "orthanc", "ORTHANC"

    def start(self, work, log):
        storage = tempfile.mkdtemp(prefix="orthanc-", dir=work)
        self.port, self.http_port = 4242, 8042  # its own namespace: nothing else there
        config = {"Name": "SliceboxBench", "StorageDirectory": storage, "IndexDirectory": storage,
                  "StorageCompression": False, "HttpPort": self.http_port, "DicomServerEnabled": True,
                  "DicomPort": self.port, "DicomAet": self.ae, "DicomCheckCalledAet": False,
                  "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "SaveJobs": False,
                  "Plugins": [], "StableAge": 3600}
        path = os.path.join(storage, "orthanc.json")
        with open(path, "w") as fh:
            json.dump(config, fh)
        self.proc = subprocess.Popen(["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$0" "$1"',
                                      find_orthanc(), path], stdout=log, stderr=subprocess.STDOUT,
                                     env=DCMTK_ENV, start_new_session=True)  # Orthanc's DICOM side is dcmtk
        self.sid = self.proc.pid
        self.prefix = ["nsenter", f"--net=/proc/{self.proc.pid}/ns/net"]
        wait_echo(self.port, self.ae, self.prefix)

    def stored(self):
        result = subprocess.run(self.prefix + ["python3", "-c",
                                "import urllib.request;print(urllib.request.urlopen("
                                f"'http://127.0.0.1:{self.http_port}/statistics').read().decode())"],
                                capture_output=True, text=True)
        try:
            return int(json.loads(result.stdout)["CountInstances"])
        except (ValueError, KeyError):
            return -1

    def stop(self):
        stop(self.proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="CT images (default 1000)")
    parser.add_argument("--associations", default="1,4", help="comma-separated association counts (default 1,4)")
    parser.add_argument("--no-orthanc", dest="orthanc", action="store_false", help="leave Orthanc out")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (files, logs)")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.associations.split(",") if c.strip()]
    if args.count < 1 or not counts or min(counts) < 1:
        parser.error("--count and --associations must be positive")
    if not os.access(f"{DCMTK}/storescu", os.X_OK):
        print("error: dcmtk is not installed (apt-get install dcmtk)", file=sys.stderr)
        return 2
    kinds = [Storescp, Slicebox] + ([Orthanc] if args.orthanc else [])
    if args.orthanc:
        try:
            find_orthanc()
        except Exception as exc:  # noqa: BLE001
            print(f"error: {exc}", file=sys.stderr)
            return 2

    work = tempfile.mkdtemp(prefix="sbx-dicombench-")
    log_path = os.path.join(work, "servers.log")
    rows = []
    status = 0
    try:
        t0 = time.perf_counter()
        os.makedirs(os.path.join(work, "ct"))
        files = generate(os.path.join(work, "ct"), args.count, 4)
        size_mb = sum(os.path.getsize(f) for f in files) / 1e6
        print(f"generated {len(files)} CT files, {size_mb:.1f} MB, in {time.perf_counter() - t0:.1f} s", flush=True)
        with open(log_path, "ab") as log:
            for associations in counts:
                result = {}
                for kind in kinds:
                    target = kind()
                    target.start(work, log)
                    try:
                        cpu0 = session_cpu(target.sid)
                        seconds, failed = store_all(files, target.port, target.ae, associations, target.prefix)
                        cpu = session_cpu(target.sid) - cpu0
                        stored = target.stored()
                    finally:
                        target.stop()
                    result[target.name] = (seconds, cpu, stored, failed)
                    print(f"  {associations} association(s), {target.name}: {len(files) / seconds:.1f} img/s, "
                          f"{1000 * cpu / len(files):.1f} ms CPU/img, stored {stored}, failed storescu {failed}",
                          flush=True)
                rows.append((associations, result))
    except SetupError as exc:
        print(f"error: {exc} (server log: {log_path})", file=sys.stderr)
        args.keep = True
        status = 2
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    if rows:
        n = args.count
        print()
        print(f"{'assoc':>5} {'target':<9} {'img/s':>8} {'MB/s':>7} {'CPU ms/img':>10} {'stored':>6} "
              f"{'vs orthanc':>10} {'vs storescp':>11}")
        for associations, result in rows:
            for name, (seconds, cpu, stored, _) in result.items():
                vs_o = result["orthanc"][0] / seconds if "orthanc" in result else float("nan")
                vs_s = result["storescp"][0] / seconds
                print(f"{associations:>5} {name:<9} {n / seconds:>8.1f} {size_mb / seconds:>7.1f} "
                      f"{1000 * cpu / n:>10.2f} {stored:>6} {vs_o:>10.2f} {vs_s:>11.2f}")
        print("vs = throughput ratio (higher is faster); targets of issue 11: slicebox vs orthanc >= 1.0 with")
        print("one association and >= 1.5 with four.  storescp only writes files: this machine's ceiling.")
    return status


if __name__ == "__main__":
    sys.exit(main())
