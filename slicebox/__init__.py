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
    from slicebox.api._helpers import install_auth, install_proxy_fix, install_request_ids
    from slicebox.context import Services
    from slicebox.db import Database
    from slicebox.db.schema import migrate
    from slicebox.errors import register_error_handlers
    from slicebox.imaging import window as imaging_window
    from slicebox.services import users as users_service
    from slicebox.storage import open_storage
    from slicebox import web

    config = config_module.load_config(test_config)
    logsetup.configure(str(config["LOG_LEVEL"]))
    os.makedirs(config["DATA_DIR"], exist_ok=True)

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

    register_error_handlers(app)
    install_request_ids(app)
    install_proxy_fix(app, str(config["TRUSTED_PROXIES"]))
    install_auth(app)
    register_blueprints(app)
    web.register(app)

    if config["BACKGROUND"]:
        from slicebox import jobs

        jobs.start(services)
    return app
