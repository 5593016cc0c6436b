"""Anonymization benchmark: Slicebox's API against Orthanc 1.10's on the same files, same run.

Usage (from the repository root):

    python bench/bench_anonymize.py                          # 1,000 CT + 3 multi-frame, 1 and 4 clients
    python bench/bench_anonymize.py --count 200 --mf-count 2 # quick run
    python bench/bench_anonymize.py --no-netns               # Orthanc on its default bind (see below)

Generates N CT images (512x512, 16 bit, about 0.53 MB) and M multi-frame files of at least
50 MB (100 frames of 512x512x16 bit), starts a real ``slicebox serve`` (SQLite, 2 gunicorn
workers) and an Orthanc (Debian's ``orthanc`` package, a temporary configuration and storage),
uploads the same files to both, then times anonymization through each REST API with 1 and 4
concurrent keep-alive clients:

* Slicebox: ``POST /api/images/{id}/anonymized`` with the basic profile
  (``{"profile": {"options": []}, "tagValues": []}``): the anonymized bytes come back and a
  key is recorded;
* Orthanc: ``POST /instances/{id}/anonymize`` with ``{}`` (its basic profile, private tags
  removed): the anonymized bytes come back, nothing is stored.

Each client reads every response body completely. Before timing, a few requests warm both
servers up (not counted), and one response of each is parsed to check it really is anonymized.
The table gives images/s, MB/s (of source DICOM) and the ratio Slicebox/Orthanc; the target of
issue 4 is at least 1.5.  The exit code is 0 unless the servers could not be set up: this is a
benchmark, not a test.

Orthanc 1.10 cannot bind to 127.0.0.1 only.  By default it runs in its own network namespace
(``unshare --net``, needs root or CAP_SYS_ADMIN) with only a loopback interface; the benchmark's
client sockets are created inside that namespace (``setns`` in a short-lived thread).  With
``--no-netns`` it binds its HTTP port on every interface for the few minutes of the run, with
remote access refused (``RemoteAccessAllowed: false``) and its DICOM server disabled.
"""
from __future__ import annotations

import argparse
import ctypes
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

from bench_ingest import AUTH, free_port, generate, start_slicebox, stop  # noqa: E402

ORTHANC_CANDIDATES = ("/usr/sbin/Orthanc", "/usr/bin/Orthanc")
SLICEBOX_BODY = json.dumps({"profile": {"options": []}, "tagValues": []}).encode()
ORTHANC_BODY = b"{}"
WARMUP = 5
_CHUNK = 1 << 20
CLONE_NEWNET = 0x40000000


class SetupError(RuntimeError):
    """The benchmark cannot run (missing Orthanc, a server that does not start, a failed upload)."""


# -- data ---------------------------------------------------------------------------
def generate_multiframe(directory: str, count: int, frames: int) -> list[str]:
    """Write ``count`` multi-frame CT files of ``frames`` 512x512x16-bit frames (52 MB at 100 frames)."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    enhanced_ct = "1.2.840.10008.5.1.4.1.1.2.1"
    rng = np.random.default_rng(20240202)
    frame = rng.integers(0, 4096, size=(512, 512), dtype=np.uint16)
    paths = []
    for i in range(count):
        ds = Dataset()
        ds.SOPClassUID = enhanced_ct
        ds.SOPInstanceUID = generate_uid()
        ds.PatientName = f"Bench^Multiframe{i}"
        ds.PatientID = f"BENCHMF{i:03d}"
        ds.PatientBirthDate = "19600101"
        ds.PatientSex = "O"
        ds.StudyInstanceUID = generate_uid()
        ds.StudyDate = "20240202"
        ds.StudyTime = "101010"
        ds.StudyID = "1"
        ds.AccessionNumber = f"MF{i}"
        ds.ReferringPhysicianName = "Referring^Doctor"
        ds.InstitutionName = "Bench Hospital"
        ds.StudyDescription = "Anonymization benchmark"
        ds.SeriesInstanceUID = generate_uid()
        ds.SeriesNumber = 1
        ds.Modality = "CT"
        ds.FrameOfReferenceUID = generate_uid()
        ds.InstanceNumber = 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
        ds.ContentDate = "20240202"
        ds.ContentTime = "101010"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = 512
        ds.Columns = 512
        ds.NumberOfFrames = frames
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.PixelData = b"".join(np.roll(frame, f + i, axis=0).tobytes() for f in range(frames))
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        path = os.path.join(directory, f"mf{i:03d}.dcm")
        ds.save_as(path, enforce_file_format=True)
        del ds
        paths.append(path)
    return paths


# -- connections (optionally inside Orthanc's network namespace) ---------------------
class NamespacedConnection(http.client.HTTPConnection):
    """An HTTP connection whose socket is created in the network namespace of process ``netns_pid``.

    setns() switches only the calling thread, and a socket stays in the namespace it
    was created in: connect from a throw-away thread.  Overriding connect() also
    covers http.client's silent reconnects after a closed keep-alive connection.
    """

    def __init__(self, host, port, netns_pid: int, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.netns_pid = netns_pid

    def connect(self):
        failure: list[BaseException] = []

        def enter_and_connect():
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                with open(f"/proc/{self.netns_pid}/ns/net", "rb") as ns:
                    if libc.setns(ns.fileno(), CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, f"setns: {os.strerror(err)}")
                http.client.HTTPConnection.connect(self)
            except BaseException as exc:  # re-raised in the caller's thread
                failure.append(exc)

        t = threading.Thread(target=enter_and_connect)
        t.start()
        t.join()
        if failure:
            raise failure[0]


class Target:
    """One server under test: how to connect to it and what headers to send."""

    def __init__(self, name: str, port: int, netns_pid: int | None = None, headers: dict | None = None):
        self.name = name
        self.port = port
        self.netns_pid = netns_pid
        self.headers = headers or {}

    def connect(self, timeout: float = 600) -> http.client.HTTPConnection:
        """An open keep-alive connection (inside the target's namespace if it has one)."""
        if self.netns_pid is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        else:
            conn = NamespacedConnection("127.0.0.1", self.port, self.netns_pid, timeout)
        conn.connect()
        return conn

    def request(self, conn, method: str, path: str, body: bytes = b"", content_type: str = "application/json"):
        """Send a request and read the whole answer: (status, body bytes)."""
        headers = dict(self.headers)
        headers.update({"Content-Type": content_type, "Content-Length": str(len(body)),
                        "Connection": "keep-alive"})
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()


def _ready(target: Target, path: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SetupError(f"{target.name} exited with {proc.returncode} before it answered")
        try:
            conn = target.connect(timeout=2)
            status, _ = target.request(conn, "GET", path)
            conn.close()
            if status < 500:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SetupError(f"{target.name} on port {target.port} not ready after {timeout:.0f} s")


# -- Orthanc --------------------------------------------------------------------------
def find_orthanc() -> str:
    for candidate in ORTHANC_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("Orthanc")
    if found:
        return found
    raise SetupError("Orthanc is not installed. On Debian/Ubuntu: `apt-get install -y orthanc` "
                     "(then `systemctl disable --now orthanc` if the package started its service; "
                     "this benchmark runs its own instance with a temporary configuration).")


def start_orthanc(work: str, use_netns: bool, log) -> tuple[subprocess.Popen, Target]:
    """Orthanc with its own storage, a free HTTP port, no DICOM server, loopback clients only."""
    binary = find_orthanc()
    storage = tempfile.mkdtemp(prefix="orthanc-", dir=work)
    port = free_port()
    config = {
        "Name": "SliceboxBench",
        "StorageDirectory": storage,
        "IndexDirectory": storage,
        "StorageCompression": False,
        "HttpServerEnabled": True,
        "HttpPort": port,
        "DicomServerEnabled": False,
        "DicomPort": free_port(),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "HttpCompressionEnabled": False,
        "SaveJobs": False,
        "Plugins": [],
        "StableAge": 3600,
    }
    config_path = os.path.join(work, "orthanc.json")
    with open(config_path, "w") as fh:
        json.dump(config, fh, indent=2)
    if use_netns:
        if shutil.which("unshare") is None or shutil.which("ip") is None:
            raise SetupError("--netns needs `unshare` (util-linux) and `ip` (iproute2); try --no-netns")
        # exec keeps the pid: it is both Orthanc's and the namespace's handle.
        argv = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$0" "$1"', binary, config_path]
    else:
        argv = [binary, config_path]
    proc = subprocess.Popen(argv, cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    target = Target("orthanc", port, netns_pid=proc.pid if use_netns else None)
    try:
        _ready(target, "/system", proc)
    except BaseException:
        stop(proc)
        raise
    return proc, target


# -- work ------------------------------------------------------------------------------
def upload(target: Target, path: str, files: list[str], id_field: str, clients: int = 2) -> list:
    """POST every file; the server's ids in file order."""
    ids: list = [None] * len(files)
    errors: list[str] = []

    def work(indices):
        conn = target.connect()
        for i in indices:
            with open(files[i], "rb") as fh:
                body = fh.read()
            status, payload = target.request(conn, "POST", path, body, "application/dicom")
            if status >= 300:
                errors.append(f"{files[i]}: {status} {payload[:200]!r}")
                return
            ids[i] = json.loads(payload)[id_field]
        conn.close()

    indices = list(range(len(files)))
    threads = [threading.Thread(target=work, args=(indices[c::clients],)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors or any(i is None for i in ids):
        raise SetupError(f"upload to {target.name} failed: {errors[:3]}")
    return ids


def anonymize_all(target: Target, paths: list[str], body: bytes | None, clients: int) -> tuple[float, int, dict]:
    """POST ``body`` to every path (GET when None) over ``clients`` connections.

    Returns (seconds, response bytes, status counts).
    """
    statuses: dict[int, int] = {}
    received = [0]
    errors: list[str] = []
    lock = threading.Lock()
    conns = [target.connect() for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)
    buffer_size = _CHUNK

    def work(conn, mine):
        buf = bytearray(buffer_size)
        view = memoryview(buf)
        local: dict[int, int] = {}
        got = 0
        barrier.wait()
        for path in mine:
            if body is None:
                conn.request("GET", path, headers={**target.headers, "Connection": "keep-alive"})
            else:
                conn.request("POST", path, body=body, headers={
                    **target.headers, "Content-Type": "application/json", "Content-Length": str(len(body)),
                    "Connection": "keep-alive"})
            response = conn.getresponse()
            while True:  # read the whole body, without keeping it
                n = response.readinto(view)
                if not n:
                    break
                got += n
            local[response.status] = local.get(response.status, 0) + 1
            if response.status >= 400 and len(errors) < 3:
                errors.append(f"{path}: {response.status}")
        conn.close()
        with lock:
            received[0] += got
            for k, v in local.items():
                statuses[k] = statuses.get(k, 0) + v

    threads = [threading.Thread(target=work, args=(conns[c], paths[c::clients])) for c in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        print(f"  {target.name} errors:", *errors, sep="\n    ", file=sys.stderr)
    return elapsed, received[0], statuses


def check_anonymized(target: Target, path: str, body: bytes, original: str) -> str:
    """Fetch one anonymized copy and say whether the real identity is gone (a sanity check)."""
    import io

    import pydicom

    conn = target.connect()
    status, payload = target.request(conn, "POST", path, body)
    conn.close()
    if status != 200:
        return f"HTTP {status}"
    real = pydicom.dcmread(original, stop_before_pixels=True)
    anon = pydicom.dcmread(io.BytesIO(payload), stop_before_pixels=True)
    problems = []
    if str(anon.get("PatientName", "")) == str(real.PatientName):
        problems.append("patient name kept")
    if anon.get("SOPInstanceUID") == real.SOPInstanceUID:
        problems.append("SOP instance UID kept")
    if anon.get("PatientIdentityRemoved") != "YES":
        problems.append("no Patient Identity Removed = YES")
    return "; ".join(problems) or f"ok ({len(payload) / 1e6:.2f} MB)"


# -- main ------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="CT images (default 1000)")
    parser.add_argument("--mf-count", type=int, default=3, help="multi-frame files of >= 50 MB (default 3)")
    parser.add_argument("--frames", type=int, default=100, help="frames per multi-frame file (default 100: 52 MB)")
    parser.add_argument("--clients", default="1,4", help="comma-separated client counts (default 1,4)")
    parser.add_argument("--workers", type=int, default=2, help="slicebox gunicorn workers (default 2)")
    parser.add_argument("--no-netns", dest="netns", action="store_false",
                        help="run Orthanc on its default bind instead of a private network namespace")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (files, logs)")
    args = parser.parse_args(argv)
    try:
        client_counts = [int(c) for c in args.clients.split(",") if c.strip()]
    except ValueError:
        parser.error("--clients must be comma-separated integers")
    if args.count < 0 or args.mf_count < 0 or args.count + args.mf_count == 0:
        parser.error("--count and --mf-count must be non-negative and not both 0")
    if not client_counts or min(client_counts) < 1 or args.frames < 1:
        parser.error("--clients values and --frames must be positive")
    try:
        find_orthanc()
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    work = tempfile.mkdtemp(prefix="sbx-anonbench-")
    log_path = os.path.join(work, "servers.log")
    procs: list[subprocess.Popen] = []
    rows = []
    status = 0
    try:
        t0 = time.perf_counter()
        sets = []
        if args.count:
            ct_dir = os.path.join(work, "ct")
            os.makedirs(ct_dir)
            sets.append(("CT", generate(ct_dir, args.count, 4)))
        if args.mf_count:
            mf_dir = os.path.join(work, "mf")
            os.makedirs(mf_dir)
            sets.append(("multi-frame", generate_multiframe(mf_dir, args.mf_count, args.frames)))
        for label, files in sets:
            size = sum(os.path.getsize(f) for f in files)
            print(f"generated {len(files)} {label} files, {size / 1e6:.1f} MB", flush=True)
        print(f"  in {time.perf_counter() - t0:.1f} s; slicebox workers: {args.workers}, "
              f"orthanc in {'a private network namespace' if args.netns else 'its default bind'}", flush=True)

        with open(log_path, "ab") as log:
            box, box_port = start_slicebox(work, args.workers, "", log)
            procs.append(box)
            orthanc, orthanc_target = start_orthanc(work, args.netns, log)
            procs.append(orthanc)
            box_target = Target("slicebox", box_port, headers={"Authorization": AUTH})
            conn = orthanc_target.connect()
            print("orthanc:", json.loads(orthanc_target.request(conn, "GET", "/system")[1]).get("Version"))
            conn.close()

            for label, files in sets:
                size_mb = sum(os.path.getsize(f) for f in files) / 1e6
                t0 = time.perf_counter()
                box_ids = upload(box_target, "/api/images", files, "id")
                orthanc_ids = upload(orthanc_target, "/instances", files, "ID")
                print(f"uploaded the {label} set to both in {time.perf_counter() - t0:.1f} s", flush=True)
                box_paths = [f"/api/images/{i}/anonymized" for i in box_ids]
                orthanc_paths = [f"/instances/{i}/anonymize" for i in orthanc_ids]
                print(f"  check slicebox: {check_anonymized(box_target, box_paths[0], SLICEBOX_BODY, files[0])}")
                print(f"  check orthanc:  {check_anonymized(orthanc_target, orthanc_paths[0], ORTHANC_BODY, files[0])}")
                # warm-up, not timed: first requests pay imports, caches, profile loading
                warm = min(WARMUP, len(files))
                anonymize_all(box_target, box_paths[:warm], SLICEBOX_BODY, 1)
                anonymize_all(orthanc_target, orthanc_paths[:warm], ORTHANC_BODY, 1)
                get_paths = [f"/api/images/{i}" for i in box_ids]
                for clients in client_counts:
                    result = {}
                    for name, target, paths, body in (("orthanc", orthanc_target, orthanc_paths, ORTHANC_BODY),
                                                      ("slicebox", box_target, box_paths, SLICEBOX_BODY),
                                                      ("get", box_target, get_paths, None)):
                        seconds, received, statuses = anonymize_all(target, paths, body, clients)
                        if statuses != {200: len(paths)}:
                            print(f"  {name} answered {statuses}", file=sys.stderr)
                        result[name] = seconds
                    o_s, b_s, g_s = result["orthanc"], result["slicebox"], result["get"]
                    rows.append((label, clients, len(files), size_mb, o_s, b_s, g_s))
                    print(f"  {label}, {clients} client(s): orthanc {len(files) / o_s:.1f} img/s, "
                          f"slicebox {len(files) / b_s:.1f} img/s, ratio {o_s / b_s:.2f}", flush=True)
    except SetupError as exc:
        print(f"error: {exc} (server log: {log_path})", file=sys.stderr)
        args.keep = True
        status = 2
    finally:
        for proc in reversed(procs):
            stop(proc)
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    if rows:
        print()
        print(f"{'set':<12} {'clients':>7} {'images':>6} {'MB':>7} "
              f"{'orthanc img/s':>13} {'MB/s':>7} {'slicebox img/s':>14} {'MB/s':>7} {'ratio':>6} "
              f"{'sbx GET img/s':>13} {'GET/orthanc':>11}")
        for label, clients, n, mb, o_s, b_s, g_s in rows:
            print(f"{label:<12} {clients:>7} {n:>6} {mb:>7.1f} {n / o_s:>13.1f} {mb / o_s:>7.1f} "
                  f"{n / b_s:>14.1f} {mb / b_s:>7.1f} {o_s / b_s:>6.2f} {n / g_s:>13.1f} {o_s / g_s:>11.2f}")
        print("ratio = slicebox / orthanc anonymization throughput; target of issue 4: >= 1.5")
        print("sbx GET = plain GET /api/images/{id} of the same files from the same box: the ceiling of")
        print("the HTTP layer (gunicorn + Flask + auth + file streaming) with no anonymization at all")
    return status


if __name__ == "__main__":
    sys.exit(main())
