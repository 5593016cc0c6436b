"""gunicorn settings for ``slicebox serve``: sized from the CPU count, suited to large uploads.

Sizing (``SLICEBOX_WORKERS`` / ``SLICEBOX_THREADS``, 0 = automatic):

- workers = CPUs (at least 2): anonymizing, rendering and indexing are CPU
  work, a worker's Python runs on one CPU at a time, so one process per CPU;
  at least 2 so that one busy or restarting worker never stops the box.
- threads = 8 per worker: a request spends much of its time outside the
  interpreter lock (the compiled engine's copies, the disk, the database, the
  object store), and threads are cheap where processes cost ~200 MB each.

Measured on this project's 2-CPU machine, shared and busy (load average 10-14),
with bench/bench_workers.py (4 clients, anonymized copies of 0.53 MB CT images,
3 interleaved rounds, medians): PostgreSQL 2x8 = 1.00, 4x4 0.86, 4x2 0.81,
2x4 0.73 (a second run: 2x8 1.19 x 4x2); SQLite 2x8 3.0-3.6 x 4x2.  More
processes than CPUs did not help in any run, so the defaults stay 2x8 on two
CPUs and add a worker per CPU above that.  README "Production" has the table.

Timeouts are chosen so a 1 GB upload streams through: gunicorn's ``timeout``
is a worker heartbeat (threads keep it alive while they stream), not a request
deadline; the upload is spooled to disk as it arrives.  Slow or stalled
clients are the reverse proxy's job (nginx ``client_body_timeout``, see
deploy/nginx.conf).  ``SIGHUP`` to the master (``--pid FILE``) reloads
gracefully: new workers start, old ones finish their requests (up to
``SLICEBOX_GRACEFUL_TIMEOUT`` seconds) and hand over the long-running side.
"""
from __future__ import annotations

import os

from slicebox.logsetup import gunicorn_logconfig

#: gunicorn's worker heartbeat (seconds): a worker silent this long is killed and replaced.
#: Generous, because a worker's start-up (imports, numba warm-up) counts too on a busy machine.
HEARTBEAT_TIMEOUT = 120
#: Idle keep-alive connections are kept this long (longer than nginx's upstream keepalive_timeout 60 s).
KEEPALIVE = 65


def cpu_count() -> int:
    """CPUs this process may run on (affinity / container limits), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def default_workers(cpus: int) -> int:
    return max(2, cpus)


def default_threads(cpus: int) -> int:
    return 8


def sizing(config: dict, workers: int | None = None, threads: int | None = None,
           cpus: int | None = None) -> tuple[int, int]:
    """(workers, threads): explicit values win, then SLICEBOX_WORKERS/THREADS, 0 means automatic."""
    cpus = cpu_count() if cpus is None else cpus
    workers = workers or int(config["WORKERS"]) or default_workers(cpus)
    threads = threads or int(config["THREADS"]) or default_threads(cpus)
    return workers, threads


def gunicorn_settings(config: dict, host: str, port: int, workers: int, threads: int,
                      access_log: bool = False, pid_file: str = "") -> dict:
    """The gunicorn configuration for ``slicebox serve`` (names as in gunicorn's settings)."""
    settings = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": HEARTBEAT_TIMEOUT,
        "graceful_timeout": int(config["GRACEFUL_TIMEOUT"]),
        "keepalive": KEEPALIVE,
        # X-Forwarded-* are the application's business (SLICEBOX_TRUSTED_PROXIES, ProxyFix):
        # gunicorn itself trusts no one, not even 127.0.0.1 (its default).
        "forwarded_allow_ips": "",
        "accesslog": "-" if access_log else None,
        "access_log_format": '%(h)s "%(r)s" %(s)s %(B)s %(M)sms req=%({x-request-id}o)s',
        "errorlog": "-",
        "loglevel": str(config["LOG_LEVEL"]).lower(),
        "logconfig_dict": gunicorn_logconfig(str(config["LOG_LEVEL"]), access_log),
        "control_socket_disable": True,
        "proc_name": f"slicebox-{config['NAME']}",
    }
    if pid_file:
        settings["pidfile"] = pid_file
    if os.path.isdir("/dev/shm"):
        settings["worker_tmp_dir"] = "/dev/shm"  # heartbeat files off the (maybe slow) disk
    return settings
