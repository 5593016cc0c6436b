"""One blueprint per OpenAPI tag; this table is the whole HTTP surface."""
from __future__ import annotations

from flask import Flask

from slicebox.api import anonymization, images, logs, metadata, system, users

BLUEPRINTS = (
    system.bp,      # General
    images.bp,      # Images
    metadata.bp,    # Meta Data
    users.bp,       # Users
    logs.bp,        # Logs
    anonymization.bp,  # Anonymization
)


def register_blueprints(app: Flask) -> None:
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
