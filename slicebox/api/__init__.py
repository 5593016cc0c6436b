"""One blueprint per OpenAPI tag; this table is the whole HTTP surface."""
from __future__ import annotations

from flask import Flask

from slicebox.api import (anonymization, boxes, directorywatches, images, importing, logs, metadata, system,
                          transactions, users)

BLUEPRINTS = (
    system.bp,          # General
    images.bp,          # Images
    metadata.bp,        # Meta Data
    anonymization.bp,   # Anonymization
    boxes.bp,           # Boxes
    transactions.bp,    # Transactions
    users.bp,           # Users
    directorywatches.bp,  # Directories
    importing.bp,       # Import
    logs.bp,            # Logs
)


def register_blueprints(app: Flask) -> None:
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
