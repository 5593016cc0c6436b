"""SCUs: remote DICOM listeners (PACS) this box sends to."""
from flask import Blueprint, jsonify

from slicebox.api._helpers import admin, id_list_body, json_body, page_args
from slicebox.context import get_services
from slicebox.services import scus as service

bp = Blueprint("scus", __name__, url_prefix="/api/scus")


@bp.get("")
def list_scus():
    """List the remote SCPs this box can send to."""
    return jsonify([s.to_json() for s in service.list_scus(get_services(), page_args())])


@bp.post("")
@admin
def add_scu():
    """Register a remote SCP (name, AE title, host, port)."""
    body = json_body(dict)
    scu = service.add_scu(get_services(), body.get("name"), body.get("aeTitle"), body.get("host"),
                          body.get("port"))
    return jsonify(scu.to_json()), 201


@bp.delete("/<int:scu_id>")
@admin
def delete_scu(scu_id: int):
    """Remove a remote SCP."""
    service.delete_scu(get_services(), scu_id)
    return "", 204


@bp.post("/<int:scu_id>/send")
def send(scu_id: int):
    """Send images over one association; 204 once the peer stored them all."""
    service.send_images(get_services(), scu_id, id_list_body())
    return "", 204
