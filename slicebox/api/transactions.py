"""Transactions: the token routes a remote box uses to talk to this one.

No user is needed; the token in the path must belong to a POLL box (401
otherwise).  Dataset bodies are zlib-compressed both ways, as Slicebox 2.0 does
(raw deflate from our older boxes is read too; see slicebox/net/box_wire.py);
statuses are the JSON object ``{"status": "FINISHED"}``.
"""
import os

from flask import Blueprint, Response, jsonify, request

from slicebox.api._helpers import json_body, public, required_int_arg
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
    try:
        service.receive_compressed(services, box, transaction_id, seq, total, request.stream)
    except BadRequest:
        _drain(request.stream)  # read what the peer still sends, so it gets our answer
        raise
    return "", 204


def _drain(stream, limit: int = 64 << 20) -> None:
    """Discard the rest of a request body (at most ``limit`` bytes; no inflating)."""
    read = 0
    while read < limit:
        chunk = stream.read(1 << 20)
        if not chunk:
            return
        read += len(chunk)


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
    """One queued image, anonymized and zlib-compressed as it is sent (chunked, flushed per chunk)."""
    services = get_services()
    box = service.box_for_token(services, token)
    path = service.outgoing_file(services, box, required_int_arg("transactionid"), required_int_arg("imageid"))
    fh = open(path, "rb")
    os.unlink(path)  # the open handle keeps the data until the response is done

    def generate():
        with fh:
            yield from service.compressed(services, fh)

    return Response(generate(), mimetype="application/octet-stream")


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
    """Status of the incoming transaction for the caller's outgoing transaction id: ``{"status": ...}``."""
    services = get_services()
    box = service.box_for_token(services, token)
    return jsonify(status=service.incoming_status(services, box, required_int_arg("transactionid")))


@bp.put("/status")
@public
def put_status(token: str):
    """Set the status of the incoming transaction: ``{"status": "FINISHED"}`` (a bare string is accepted too)."""
    services = get_services()
    box = service.box_for_token(services, token)
    transaction_id = required_int_arg("transactionid")
    status = service.status_from_body(request.stream.read(1000))
    service.set_incoming_status(services, box, transaction_id, status)
    return "", 204
