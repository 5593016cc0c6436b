"""Ingest benchmark: POST /images of generated 512x512 16-bit CT images against `slicebox serve`.

Usage (from the repository root):

    python bench/bench_ingest.py                 # 1,000 images, 1 and 4 clients, SQLite
    python bench/bench_ingest.py --count 100     # quick run
    python bench/bench_ingest.py --postgres      # the box on PostgreSQL (throw-away schema)

For each number of clients the box starts fresh (new data dir, new database), so every
upload is a first store (201).  The reference, measured in the same run with the same
bytes, clients and worker count, is a trivial gunicorn sink that reads and discards each
body: the ratio shows what Slicebox adds on top of plain HTTP.

This module doubles as the sink's WSGI module (``bench_ingest:sink_app``), so keep its
top-level imports light.
"""
from __future__ import annotations

import argparse
import base64
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.dirname(os.path.abspath(__file__))
PG_URL = os.environ.get("SLICEBOX_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
AUTH = "Basic " + base64.b64encode(b"admin:admin").decode()


# -- the reference sink ---------------------------------------------------------------
def sink_app(environ, start_response):
    """Read the request body in chunks, discard it, answer 201 with a tiny JSON body."""
    stream = environ["wsgi.input"]
    remaining = int(environ.get("CONTENT_LENGTH") or 0)
    while remaining > 0:
        chunk = stream.read(min(remaining, 1 << 16))
        if not chunk:
            break
        remaining -= len(chunk)
    body = b'{"ok":true}'
    start_response("201 Created", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


# -- data ---------------------------------------------------------------------------
def generate(directory: str, count: int, series: int) -> list[str]:
    """Write ``count`` CT images (512x512, 16 bit, distinct SOP UIDs) spread over ``series`` series."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(20240101)
    base = rng.integers(0, 4096, size=(512, 512), dtype=np.uint16)
    study_uid = generate_uid()
    series_uids = [generate_uid() for _ in range(series)]
    frame_uid = generate_uid()
    paths = []
    for i in range(count):
        ds = Dataset()
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.PatientName = "Bench^Patient"
        ds.PatientID = "BENCH001"
        ds.PatientBirthDate = "19700101"
        ds.PatientSex = "O"
        ds.StudyInstanceUID = study_uid
        ds.StudyDescription = "Ingest benchmark"
        ds.StudyDate = "20240101"
        ds.StudyID = "1"
        ds.AccessionNumber = "BENCH"
        ds.SeriesInstanceUID = series_uids[i % series]
        ds.SeriesDescription = f"Series {i % series + 1}"
        ds.SeriesNumber = i % series + 1
        ds.Modality = "CT"
        ds.FrameOfReferenceUID = frame_uid
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceNumber = i // series + 1
        ds.SliceLocation = float(i // series)
        ds.ImagePositionPatient = [0.0, 0.0, float(i // series)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [0.7, 0.7]
        ds.SliceThickness = 1.0
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = 512
        ds.Columns = 512
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.RescaleSlope = 1
        ds.RescaleIntercept = -1024
        ds.WindowCenter = 40
        ds.WindowWidth = 400
        # different pixels per image, cheaply: roll the base image
        ds.PixelData = np.roll(base, i, axis=1).tobytes()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        path = os.path.join(directory, f"ct{i:05d}.dcm")
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


# -- servers --------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, path: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it answered")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            status = conn.getresponse().status
            conn.close()
            if status < 500:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server on port {port} not ready after {timeout:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_slicebox(work: str, workers: int, database_url: str, log,
                   extra_env: dict | None = None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="data-", dir=work)
    env = dict(os.environ)
    env.update({
        "SLICEBOX_DATA_DIR": data_dir,
        "SLICEBOX_HOST": "127.0.0.1",
        "SLICEBOX_PORT": str(port),
        "SLICEBOX_WORKERS": str(workers),
        "SLICEBOX_SUPERUSER": "admin",
        "SLICEBOX_SUPERUSER_PASSWORD": "admin",
        "SLICEBOX_LOG_LEVEL": "WARNING",
        "SLICEBOX_DATABASE_URL": database_url,
        "PYTHONPATH": ROOT + os.pathsep + env.get("PYTHONPATH", ""),
    })
    env.update(extra_env or {})
    proc = subprocess.Popen([sys.executable, "-m", "slicebox.cli", "serve"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_ready(port, "/api/system/health", proc)
    return proc, port


def start_sink(workers: int, threads: int, log) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--chdir", BENCH, "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers), "--threads", str(threads), "--worker-class", "gthread",
         "--log-level", "warning", "bench_ingest:sink_app"],
        cwd=BENCH, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_ready(port, "/", proc)
    return proc, port


# -- clients ----------------------------------------------------------------------------
def upload_all(port: int, path: str, files: list[str], clients: int) -> tuple[float, dict[int, int]]:
    """POST every file once, split over ``clients`` keep-alive connections; (seconds, status counts)."""
    statuses: dict[int, int] = {}
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def work(mine: list[str]):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        local: dict[int, int] = {}
        barrier.wait()
        for f in mine:
            with open(f, "rb") as fh:
                body = fh.read()
            conn.request("POST", path, body=body, headers={
                "Authorization": AUTH, "Content-Type": "application/octet-stream",
                "Content-Length": str(len(body)), "Connection": "keep-alive"})
            response = conn.getresponse()
            payload = response.read()
            local[response.status] = local.get(response.status, 0) + 1
            if response.status >= 400 and len(errors) < 3:
                errors.append(f"{response.status}: {payload[:200]!r}")
        conn.close()
        with lock:
            for k, v in local.items():
                statuses[k] = statuses.get(k, 0) + v

    threads = [threading.Thread(target=work, args=(files[i::clients],)) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        print("  errors:", *errors, sep="\n    ", file=sys.stderr)
    return elapsed, statuses


def _pg_schema() -> tuple[str, str]:
    import uuid

    import psycopg

    name = "bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    sep = "&" if "?" in PG_URL else "?"
    return name, f"{PG_URL}{sep}schema={name}"


def _drop_pg_schema(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="images to generate and upload (default 1000)")
    parser.add_argument("--series", type=int, default=4, help="series the images are spread over (default 4)")
    parser.add_argument("--clients", default="1,4", help="comma-separated client counts (default 1,4)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of box and sink (default 2)")
    parser.add_argument("--postgres", action="store_true",
                        help=f"run the box on PostgreSQL ({PG_URL}, a throw-away schema per run)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    client_counts = [int(c) for c in args.clients.split(",") if c.strip()]
    if args.count < 1 or not client_counts or min(client_counts) < 1:
        parser.error("--count and every --clients value must be positive")

    work = tempfile.mkdtemp(prefix="sbx-bench-")
    log_path = os.path.join(work, "servers.log")
    rows = []
    try:
        files_dir = os.path.join(work, "images")
        os.makedirs(files_dir)
        t0 = time.perf_counter()
        files = generate(files_dir, args.count, max(1, min(args.series, args.count)))
        total_bytes = sum(os.path.getsize(f) for f in files)
        print(f"generated {len(files)} images, {total_bytes / 1e6:.1f} MB, in {time.perf_counter() - t0:.1f} s "
              f"(database: {'PostgreSQL' if args.postgres else 'SQLite'}, workers: {args.workers})", flush=True)
        with open(log_path, "ab") as log:
            for clients in client_counts:
                sink, port = start_sink(args.workers, 8, log)
                try:
                    ref_s, ref_status = upload_all(port, "/api/images", files, clients)
                finally:
                    stop(sink)
                schema = None
                database_url = ""
                if args.postgres:
                    schema, database_url = _pg_schema()
                box, port = start_slicebox(work, args.workers, database_url, log)
                try:
                    box_s, box_status = upload_all(port, "/api/images", files, clients)
                finally:
                    stop(box)
                    if schema:
                        _drop_pg_schema(schema)
                if box_status != {201: len(files)}:
                    print(f"  slicebox answered {box_status} (expected 201 for all {len(files)})", file=sys.stderr)
                rows.append((clients, ref_s, box_s, ref_status, box_status))
                print(f"  {clients} client(s): sink {len(files) / ref_s:.0f} img/s, "
                      f"slicebox {len(files) / box_s:.1f} img/s", flush=True)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    n, mb = len(files), total_bytes / 1e6
    print()
    print(f"{'target':<10} {'clients':>7} {'images':>7} {'seconds':>8} {'img/s':>8} {'MB/s':>8} {'vs sink':>8}")
    for clients, ref_s, box_s, _, box_status in rows:
        print(f"{'sink':<10} {clients:>7} {n:>7} {ref_s:>8.2f} {n / ref_s:>8.1f} {mb / ref_s:>8.1f} {1.0:>8.2f}")
        print(f"{'slicebox':<10} {clients:>7} {n:>7} {box_s:>8.2f} {n / box_s:>8.1f} {mb / box_s:>8.1f} "
              f"{ref_s / box_s:>8.2f}")
    ok = all(r[4] == {201: n} for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
