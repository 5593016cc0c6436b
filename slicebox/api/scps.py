"""SCPs: this box's DICOM listeners."""
from flask import Blueprint, jsonify

from slicebox.api._helpers import admin, json_body, page_args
from slicebox.context import get_services
from slicebox.services import scps as service

bp = Blueprint("scps", __name__, url_prefix="/api/scps")


@bp.get("")
def list_scps():
    """List the DICOM listeners (SCPs) of this box."""
    return jsonify([s.to_json() for s in service.list_scps(get_services(), page_args())])


@bp.post("")
@admin
def add_scp():
    """Add a DICOM listener; it starts listening within a few seconds."""
    body = json_body(dict)
    scp = service.add_scp(get_services(), body.get("name"), body.get("aeTitle"), body.get("port"))
    return jsonify(scp.to_json()), 201


@bp.delete("/<int:scp_id>")
@admin
def delete_scp(scp_id: int):
    """Remove a DICOM listener; it stops within a few seconds."""
    service.delete_scp(get_services(), scp_id)
    return "", 204
