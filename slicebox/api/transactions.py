"""Transactions: the token routes a remote box uses to talk to this one.

No user is needed; the token in the path must belong to a POLL box (401
otherwise).  Dataset bodies are raw-deflate compressed both ways, as in
Slicebox 2.0.
"""
import json

from flask import Blueprint, jsonify, request

from slicebox.api._helpers import json_body, public, required_int_arg, stream_temp_file
from slicebox.api.shapes import outgoing_transaction_json
from slicebox.context import get_services
from slicebox.errors import BadRequest
from slicebox.services import boxes as service

bp = Blueprint("transactions", __name__, url_prefix="/api/transactions/<token>")


@bp.post("/image")
@public
def receive_image(token: str):
    """Receive one image of a remote box's transaction."""
    services = get_services()
    box = service.box_for_token(services, token)
    transaction_id = required_int_arg("transactionid")
    seq = required_int_arg("sequencenumber", minimum=1)
    total = required_int_arg("totalimagecount", minimum=1)
    path = service.inflate_to_temp(services, request.stream)
    service.receive_image(services, box, transaction_id, seq, total, path)
    return "", 204


@bp.get("/outgoing/poll")
@public
def poll(token: str):
    """The next images this box has queued for the caller; 404 when there are none."""
    services = get_services()
    box = service.box_for_token(services, token)
    n = required_int_arg("n", minimum=1) if request.args.get("n") else 1
    items = service.poll_outgoing(services, box, n)
    if not items:
        return jsonify(error="no outgoing images"), 404
    return jsonify([{"transaction": outgoing_transaction_json(tx), "image": img.to_json()} for tx, img in items])


@bp.get("/outgoing")
@public
def fetch(token: str):
    """One queued image, anonymized and raw-deflated."""
    services = get_services()
    box = service.box_for_token(services, token)
    path = service.outgoing_file(services, box, required_int_arg("transactionid"), required_int_arg("imageid"))
    return stream_temp_file(path)


@bp.post("/outgoing/done")
@public
def done(token: str):
    """The caller stored an image: mark it sent."""
    services = get_services()
    box = service.box_for_token(services, token)
    service.outgoing_done(services, box, json_body(dict))
    return "", 204


@bp.post("/outgoing/failed")
@public
def failed(token: str):
    """The caller could not store an image: mark the transaction failed."""
    services = get_services()
    box = service.box_for_token(services, token)
    service.outgoing_failed(services, box, json_body(dict))
    return "", 204


@bp.get("/status")
@public
def get_status(token: str):
    """Status of the incoming transaction for the caller's outgoing transaction id."""
    services = get_services()
    box = service.box_for_token(services, token)
    status = service.incoming_status(services, box, required_int_arg("transactionid"))
    return status, 200, {"Content-Type": "text/plain; charset=utf-8"}


@bp.put("/status")
@public
def put_status(token: str):
    """Set the status of the incoming transaction (e.g. FINISHED)."""
    services = get_services()
    box = service.box_for_token(services, token)
    transaction_id = required_int_arg("transactionid")
    raw = request.get_data(cache=False)[:1000].decode("utf-8", "replace").strip()
    try:
        status = json.loads(raw) if raw.startswith(('"', "{")) else raw
    except ValueError:
        raise BadRequest("status body must be a JSON string such as \"FINISHED\"") from None
    if isinstance(status, dict):
        status = status.get("status")
    if not isinstance(status, str):
        raise BadRequest("status body must be a string")
    service.set_incoming_status(services, box, transaction_id, status.upper())
    return "", 204
