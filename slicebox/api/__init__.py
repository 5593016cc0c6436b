"""One blueprint per OpenAPI tag; this table is the whole HTTP surface."""
from __future__ import annotations

from flask import Flask

from slicebox.api import (anonymization, boxes, directorywatches, filtering, forwarding, images, importing, logs,
                          metadata, scps, scus, seriestypes, system, transactions, users)

BLUEPRINTS = (
    system.bp,          # General
    images.bp,          # Images
    metadata.bp,        # Meta Data
    anonymization.bp,   # Anonymization
    boxes.bp,           # Boxes
    transactions.bp,    # Transactions
    scps.bp,            # SCPs
    scus.bp,            # SCUs
    users.bp,           # Users
    directorywatches.bp,  # Directories
    importing.bp,       # Import
    logs.bp,            # Logs
    filtering.bp,       # Filtering
    forwarding.bp,      # Forwarding
    seriestypes.bp,     # Series Types
)


def register_blueprints(app: Flask) -> None:
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
