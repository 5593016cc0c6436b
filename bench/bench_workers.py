"""Worker × thread sizing of ``slicebox serve``: anonymized copies with 4 clients, per configuration.

Usage (from the repository root):

    python bench/bench_workers.py                      # 4x2 vs 2x8 vs 2x2, 3 interleaved rounds
    python bench/bench_workers.py --configs 4x2,2x8 --count 60 --rounds 2

Starts one real ``slicebox serve`` (SQLite, or PostgreSQL with ``--postgres``) per configuration, uploads the same
``--count`` CT images (512x512x16 bit, ~0.53 MB) to each, then times
``POST /api/images/{id}/anonymized`` (basic profile) with 4 keep-alive clients,
configuration after configuration, ``--rounds`` times, interleaved so that a
noisy neighbour hits every configuration alike.  Prints images/s per round and
the median ratio against the first configuration.  All servers run at the same
time but only one is loaded at a time.  A benchmark, not a test.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)

from bench_anonymize import SLICEBOX_BODY, Target, anonymize_all, upload  # noqa: E402
from bench_ingest import AUTH, _drop_pg_schema, _pg_schema, generate, start_slicebox, stop  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default="4x2,2x8,2x2", help="WORKERSxTHREADS,... (first is the reference)")
    parser.add_argument("--count", type=int, default=80, help="images per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--postgres", action="store_true", help="each server on its own PostgreSQL schema")
    args = parser.parse_args(argv)
    configs = [tuple(int(x) for x in c.split("x")) for c in args.configs.split(",")]
    work = tempfile.mkdtemp(prefix="bench-workers-")
    os.makedirs(os.path.join(work, "in"))
    files = generate(os.path.join(work, "in"), args.count, 4)
    log = open(os.path.join(work, "servers.log"), "ab")
    servers = []
    schemas: list[str] = []
    try:
        for workers, threads in configs:
            url = ""
            if args.postgres:
                name, url = _pg_schema()
                schemas.append(name)
            proc, port = start_slicebox(work, workers, url, log, extra_env={"SLICEBOX_THREADS": str(threads)})
            target = Target(f"{workers}x{threads}", port, headers={"Authorization": AUTH})
            ids = upload(target, "/api/images", files, "id")
            paths = [f"/api/images/{i}/anonymized" for i in ids]
            anonymize_all(target, paths[:8], SLICEBOX_BODY, args.clients)  # warm-up
            servers.append((proc, target, paths))
        rates: dict[str, list[float]] = {t.name: [] for _, t, _ in servers}
        for r in range(args.rounds):
            for _, target, paths in servers:
                seconds, _, statuses = anonymize_all(target, paths, SLICEBOX_BODY, args.clients)
                rates[target.name].append(len(paths) / seconds)
                print(f"round {r + 1} {target.name:>5}: {len(paths) / seconds:6.1f} img/s {statuses}", flush=True)
        reference = statistics.median(rates[servers[0][1].name])
        print(f"load average at the end: {os.getloadavg()}")
        for name, values in rates.items():
            median = statistics.median(values)
            print(f"{name:>5}: median {median:6.1f} img/s  ratio vs {servers[0][1].name}: {median / reference:.2f}")
    finally:
        for proc, _, _ in servers:
            stop(proc)
        for name in schemas:
            _drop_pg_schema(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
