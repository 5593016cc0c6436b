"""The ``slicebox`` command: serve the box, manage users from the shell."""
from __future__ import annotations

import argparse
import getpass
import os
import sys


def _serve(args) -> int:
    from gunicorn.app.base import BaseApplication

    from slicebox.config import load_config
    from slicebox.db import Database
    from slicebox.db.schema import migrate

    config = load_config()
    host = args.host or config["HOST"]
    port = args.port or config["PORT"]
    workers = args.workers or config["WORKERS"]
    # Migrate once in the master, before workers fork and race for it.
    db = Database(config["DATABASE_URL"])
    migrate(db)
    db.close()
    os.environ["SLICEBOX_ARBITER_PID"] = str(os.getpid())

    class SliceboxApplication(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", config["THREADS"])
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("timeout", 600)
            self.cfg.set("graceful_timeout", 30)
            self.cfg.set("accesslog", "-" if args.access_log else None)
            self.cfg.set("control_socket_disable", True)
            self.cfg.set("worker_exit", _worker_exit)

        def load(self):
            from slicebox import create_app

            return create_app()

    print(f"Slicebox serving on http://{host}:{port}/api (data in {config['DATA_DIR']})", flush=True)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="slicebox", description="Slicebox DICOM server")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the box under gunicorn (configure with SLICEBOX_* variables)")
    serve.add_argument("--host", help="override SLICEBOX_HOST")
    serve.add_argument("--port", type=int, help="override SLICEBOX_PORT")
    serve.add_argument("--workers", type=int, help="override SLICEBOX_WORKERS")
    serve.add_argument("--access-log", action="store_true", help="log every request to stdout")
    serve.set_defaults(func=_serve)

    create = sub.add_parser("create-user", help="add a user to the box's database")
    create.add_argument("name")
    create.add_argument("--role", default="USER", choices=["USER", "ADMINISTRATOR"])
    create.add_argument("--password", help="the password (prompted for when omitted)")
    create.set_defaults(func=_create_user)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
