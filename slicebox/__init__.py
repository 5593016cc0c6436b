"""Slicebox: receive, index and safely share medical images (DICOM)."""
from __future__ import annotations

import os

__version__ = "0.1.0"


def create_app(test_config: dict | None = None):
    """Build the Flask application: config, services, errors, blueprints, jobs."""
    from flask import Flask

    from slicebox import config as config_module
    from slicebox.api import register_blueprints
    from slicebox import logsetup, serving
    from slicebox.api._helpers import (install_auth, install_id_converter, install_proxy_fix, install_request_checks,
                                       install_request_ids)
    from slicebox.context import Services
    from slicebox.db import Database
    from slicebox.db.schema import migrate
    from slicebox.dicom import tagstream
    from slicebox.errors import register_error_handlers, set_server_paths
    from slicebox.imaging import window as imaging_window
    from slicebox.services import users as users_service
    from slicebox.storage import open_storage
    from slicebox import web

    config = config_module.load_config(test_config)
    logsetup.configure(str(config["LOG_LEVEL"]))
    os.makedirs(config["DATA_DIR"], exist_ok=True)
    depth = int(config["MAX_SEQUENCE_DEPTH"])
    if not 1 <= depth <= 128:
        raise SystemExit(f"SLICEBOX_MAX_SEQUENCE_DEPTH must be between 1 and 128, got {depth}")
    # One nesting limit and one inflate cap for every reader of this process (both engines).
    tagstream.set_limits(max_depth=depth, max_inflated=int(config["INFLATE_MAX_SIZE"]))

    app = Flask(__name__)
    app.config["SLICEBOX"] = config
    app.json.sort_keys = False

    threads = int(config["THREADS"]) or serving.default_threads(serving.cpu_count())
    db = Database(config["DATABASE_URL"], pool_size=threads + 4)
    migrate(db)
    storage = open_storage(config["STORAGE_URL"], config["DATA_DIR"], config)
    services = Services(config=config, db=db, storage=storage)
    users_service.ensure_superuser(services)
    app.extensions["slicebox"] = services
    imaging_window.warm_up()  # numba kernel compiled now, never on a request; numpy if it fails

    set_server_paths(config["DATA_DIR"], getattr(storage, "root", ""), storage.temp_dir())
    register_error_handlers(app)
    install_request_ids(app)
    install_proxy_fix(app, str(config["TRUSTED_PROXIES"]))
    install_id_converter(app)
    install_request_checks(app)  # before authentication: a NUL in a user name is a 400
    install_auth(app)
    register_blueprints(app)
    web.register(app)

    if config["BACKGROUND"]:
        from slicebox import jobs

        jobs.start(services)
    return app
