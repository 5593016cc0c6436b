"""Filtering: tag filters (whitelists / blacklists of tag paths) and their association with sources."""
from flask import Blueprint, jsonify

from slicebox.api import bodies
from slicebox.api._helpers import admin, json_body, page_args
from slicebox.api.shapes import tag_filter_json, tag_filter_path_json
from slicebox.context import get_services
from slicebox.services import filtering as service

bp = Blueprint("filtering", __name__, url_prefix="/api/filtering")


@bp.get("/filters")
def list_filters():
    """List tag filters with their tag paths."""
    return jsonify([tag_filter_json(f) for f in service.list_filters(get_services(), page_args())])


@bp.post("/filters")
@admin
def upsert_filter():
    """Insert a filter, or update the filter with the same name."""
    name, kind, paths = bodies.tag_filter(json_body(dict))
    return jsonify(tag_filter_json(service.upsert_filter(get_services(), name, kind, paths))), 201


@bp.delete("/filters/<int:filter_id>")
@admin
def delete_filter(filter_id: int):
    """Delete a filter, its tag paths and its associations."""
    service.delete_filter(get_services(), filter_id)
    return "", 204


@bp.get("/filters/<int:filter_id>/tagpaths")
def list_tag_paths(filter_id: int):
    """The tag paths of a filter."""
    return jsonify([tag_filter_path_json(p) for p in service.list_tag_paths(get_services(), filter_id)])


@bp.post("/filters/<int:filter_id>/tagpaths")
@admin
def add_tag_path(filter_id: int):
    """Add a tag path to a filter."""
    path = bodies.filter_tag_path(json_body(dict))
    return jsonify(tag_filter_path_json(service.add_tag_path(get_services(), filter_id, path))), 201


@bp.delete("/filters/<int:filter_id>/tagpaths/<int:tag_path_id>")
@admin
def delete_tag_path(filter_id: int, tag_path_id: int):
    """Remove a tag path from a filter."""
    service.delete_tag_path(get_services(), filter_id, tag_path_id)
    return "", 204


@bp.get("/associations")
def list_associations():
    """List the source <-> filter associations."""
    return jsonify([a.to_json() for a in service.list_associations(get_services(), page_args())])


@bp.post("/associations")
@admin
def upsert_association():
    """Associate a filter with a source (replacing the source's previous filter)."""
    source, filter_id = bodies.source_tag_filter(json_body(dict))
    return jsonify(service.upsert_association(get_services(), source, filter_id).to_json()), 201


@bp.delete("/associations/<int:assoc_id>")
@admin
def delete_association(assoc_id: int):
    """Remove a source <-> filter association."""
    service.delete_association(get_services(), assoc_id)
    return "", 204
