"""Directories: watched folders whose DICOM files are imported as they arrive."""
from flask import Blueprint, jsonify

from slicebox.api import bodies
from slicebox.api._helpers import admin, json_body, page_args
from slicebox.context import get_services
from slicebox.services import directorywatches as service

bp = Blueprint("directorywatches", __name__, url_prefix="/api/directorywatches")


@bp.get("")
def list_watches():
    """List watched directories."""
    return jsonify([w.to_json() for w in service.list_watches(get_services(), page_args())])


@bp.post("")
@admin
def add_watch():
    """Watch a directory (sub-directories included): 201 with the watch."""
    body = json_body(dict)
    name = bodies.text(body.get("name"), "directory watch name", service.MAX_NAME)
    path = bodies.text(body.get("path"), "directory watch path", service.MAX_PATH)
    watch, _created = service.add_watch(get_services(), name, path)
    return jsonify(watch.to_json()), 201


@bp.delete("/<int:watch_id>")
@admin
def delete_watch(watch_id: int):
    """Stop watching a directory; its files stay."""
    service.delete_watch(get_services(), watch_id)
    return "", 204
