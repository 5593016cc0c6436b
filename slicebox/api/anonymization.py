"""Anonymization: confidentiality options and anonymization keys.

The routes that rewrite images (/images/{id}/anonymized, /images/{id}/anonymize,
/anonymization/anonymize) come with the streaming engine.
"""
import logging

from flask import Blueprint, Response, g, jsonify, request, stream_with_context

from slicebox.api import bodies
from slicebox.api._helpers import admin, bool_arg, json_body, page_args
from slicebox.api.shapes import key_value_json
from slicebox.context import get_services
from slicebox.services import anonymization as service
from slicebox.services import image_anonymization

logger = logging.getLogger(__name__)

bp = Blueprint("anonymization", __name__, url_prefix="/api/anonymization")


@bp.get("/options")
def list_options():
    """List the supported confidentiality options (basic profile and its options)."""
    return jsonify([o.to_json() for o in service.list_options()])


@bp.get("/keys")
def list_keys():
    """List anonymization keys: paging, orderby/orderascending, substring filter."""
    keys = service.list_keys(get_services(), page_args(), request.args.get("orderby") or None,
                             bool_arg("orderascending", True), request.args.get("filter") or None)
    return jsonify([k.to_json() for k in keys])


@bp.post("/keys/query")
def query_keys():
    """Query anonymization keys by properties (anonymizationKeyQuery)."""
    keys = service.query_keys(get_services(), bodies.query(json_body(dict), allow_filters=False))
    return jsonify([k.to_json() for k in keys])


@bp.get("/keys/export/csv")
@admin
def export_keys_csv():
    """Download all anonymization keys and key values as CSV (administrators only)."""
    body = service.export_keys_csv(get_services())
    return Response(
        stream_with_context(body),
        mimetype="text/csv",
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": "attachment; filename=slicebox-anonymization-info.csv"},
    )


@bp.get("/keys/<int:key_id>")
def get_key(key_id: int):
    """Get one anonymization key."""
    return jsonify(service.get_key(get_services(), key_id).to_json())


@bp.delete("/keys/<int:key_id>")
def delete_key(key_id: int):
    """Delete an anonymization key and its key values."""
    service.delete_key(get_services(), key_id)
    return "", 204


@bp.get("/keys/<int:key_id>/keyvalues")
def key_values(key_id: int):
    """List the key values (tag path, real and anonymized value) of a key."""
    return jsonify([key_value_json(v) for v in service.key_values(get_services(), key_id)])


@bp.post("/anonymize")
def anonymize_images():
    """Anonymize many images in place; returns the new images."""
    images = image_anonymization.anonymize_images(get_services(), *bodies.anonymization_request(json_body((list, dict))), g.user)
    return jsonify([i.to_json() for i in images])
