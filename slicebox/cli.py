"""The ``slicebox`` command: serve the box, manage users from the shell, import files."""
from __future__ import annotations

import argparse
import getpass
import os
import sys


SERVE_EPILOG = """\
sizing (README "Production"):
  --workers / SLICEBOX_WORKERS   processes; default one per CPU (at least 2). Anonymizing,
                                 rendering and indexing are CPU work: a worker uses one CPU
                                 at a time. Each needs ~200 MB of memory.
  --threads / SLICEBOX_THREADS   threads per worker; default 8: requests wait on the disk,
                                 the database and the object store much of the time. Each
                                 worker's PostgreSQL pool holds up to THREADS + 4
                                 connections: keep hosts x workers x (threads + 4) below
                                 the server's max_connections.
  Large uploads stream to disk (no size limit here; limit it in nginx if you want one);
  a worker is only replaced when it stops answering for 120 s. SIGTERM stops and SIGHUP
  reloads gracefully (running requests get SLICEBOX_GRACEFUL_TIMEOUT seconds); write the
  master's pid with --pid FILE for `kill -HUP $(cat FILE)`.
"""


def _serve(args) -> int:
    from gunicorn.app.base import BaseApplication

    from slicebox import logsetup, serving
    from slicebox.api._helpers import parse_trusted_proxies
    from slicebox.config import load_config
    from slicebox.db import Database
    from slicebox.db.schema import migrate

    config = load_config()
    logsetup.configure(str(config["LOG_LEVEL"]))
    try:
        parse_trusted_proxies(str(config["TRUSTED_PROXIES"]))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    host = args.host or config["HOST"]
    port = args.port or config["PORT"]
    workers, threads = serving.sizing(config, args.workers, args.threads)
    access_log = bool(args.access_log or config["ACCESS_LOG"])
    # Migrate once in the master, before workers fork and race for it.
    db = Database(config["DATABASE_URL"])
    migrate(db)
    db.close()
    os.environ["SLICEBOX_ARBITER_PID"] = str(os.getpid())
    os.environ["SLICEBOX_THREADS"] = str(threads)  # the workers size their database pools by it
    settings = serving.gunicorn_settings(config, host, port, workers, threads,
                                         access_log=access_log, pid_file=args.pid or "")
    settings["worker_exit"] = _worker_exit

    class SliceboxApplication(BaseApplication):
        def load_config(self):
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self):
            from slicebox import create_app

            return create_app()

    print(f"Slicebox serving on http://{host}:{port}/api (data in {config['DATA_DIR']}; "
          f"{workers} workers x {threads} threads)", flush=True)
    SliceboxApplication().run()
    return 0


def _worker_exit(server, worker) -> None:
    """gunicorn hook, in the exiting worker: stop its long-running side and release the lock."""
    from slicebox import jobs

    app = getattr(worker, "wsgi", None)
    services = getattr(app, "extensions", {}).get("slicebox")
    if services is not None:
        jobs.stop(services)


def _create_user(args) -> int:
    from slicebox.config import load_config
    from slicebox.context import Services
    from slicebox.db import Database
    from slicebox.db.schema import migrate
    from slicebox.errors import SliceboxError
    from slicebox.services import users
    from slicebox.storage import open_storage

    config = load_config()
    password = args.password
    if password is None:
        password = getpass.getpass(f"Password for {args.name}: ")
    db = Database(config["DATABASE_URL"])
    migrate(db)
    services = Services(config=config, db=db, storage=open_storage(config["STORAGE_URL"], config["DATA_DIR"], config))
    try:
        user, created = users.add_user(services, args.name, args.role, password)
    except SliceboxError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    finally:
        db.close()
    print(f"{'created' if created else 'exists'}: user {user.user} (id {user.id}, role {user.role})")
    return 0


def _import(args) -> int:
    import socket

    from slicebox import importer
    from slicebox.clock import now
    from slicebox.config import load_config

    config = load_config()
    url = args.url or config["PUBLIC_URL"]
    if args.user is None:
        # This box's own superuser, from the same settings `slicebox serve` reads.
        user, password = config["SUPERUSER"], config["SUPERUSER_PASSWORD"]
    else:
        user = args.user
        password = args.password if args.password is not None else getpass.getpass(f"Password for {user}: ")
    session = args.session or f"{user}@{socket.gethostname()} {now():%Y-%m-%d %H:%M:%S}"
    try:
        files = importer.collect_files(args.paths)
        if not files:
            print("error: no files to import", file=sys.stderr)
            return importer.EXIT_FAILED
        run = importer.Importer(url, user, password, session, parallel=args.parallel,
                                progress=not args.quiet)
        summary = run.run(files)
    except importer.ImportError_ as exc:
        print(f"error: {exc}", file=sys.stderr)
        return importer.EXIT_FAILED
    print(importer.format_summary(summary), flush=True)
    return summary.exit_code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="slicebox", description="Slicebox DICOM server")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the box under gunicorn (configure with SLICEBOX_* variables)",
                           description="Run the box under gunicorn (gthread workers).\nEvery setting is a "
                                       "SLICEBOX_* environment variable; these options override a few.",
                           epilog=SERVE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("--host", help="override SLICEBOX_HOST")
    serve.add_argument("--port", type=int, help="override SLICEBOX_PORT")
    serve.add_argument("--workers", type=int, help="override SLICEBOX_WORKERS (default: one per CPU, at least 2)")
    serve.add_argument("--threads", type=int, help="override SLICEBOX_THREADS (default: 8)")
    serve.add_argument("--access-log", action="store_true",
                       help="log every request (one line on stderr); also SLICEBOX_ACCESS_LOG")
    serve.add_argument("--pid", metavar="FILE", help="write the master's pid to FILE (for kill -HUP / -TERM)")
    serve.set_defaults(func=_serve)

    create = sub.add_parser("create-user", help="add a user to the box's database")
    create.add_argument("name")
    create.add_argument("--role", default="USER", choices=["USER", "ADMINISTRATOR"])
    create.add_argument("--password", help="the password (prompted for when omitted)")
    create.set_defaults(func=_create_user)

    imp = sub.add_parser("import", help="upload files and folders to a box through an import session")
    imp.add_argument("paths", nargs="+", metavar="PATH", help="DICOM files, or folders searched recursively")
    imp.add_argument("--url", help="the box, e.g. https://box.example.org (default: this box, SLICEBOX_PUBLIC_URL)")
    imp.add_argument("--user", help="user name (default: this box's superuser from SLICEBOX_SUPERUSER)")
    imp.add_argument("--password", help="password of --user (prompted for when omitted)")
    imp.add_argument("--session", help="import session name; the same name again adds to that session "
                                       "(default: user@host and the time)")
    imp.add_argument("--parallel", type=int, default=4, help="files uploaded at a time (default 4)")
    imp.add_argument("--quiet", action="store_true", help="no progress bar, only the summary")
    imp.set_defaults(func=_import)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
