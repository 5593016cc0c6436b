"""Boxes: connections to other boxes and the transactions between them."""
from flask import Blueprint, jsonify

from slicebox.api import bodies
from slicebox.api._helpers import admin, json_body, page_args
from slicebox.api.shapes import box_json, outgoing_transaction_json
from slicebox.context import get_services
from slicebox.services import boxes as service

bp = Blueprint("boxes", __name__, url_prefix="/api/boxes")


@bp.get("")
def list_boxes():
    """List box connections with their online status."""
    return jsonify([box_json(b) for b in service.list_boxes(get_services(), page_args())])


@bp.post("/createconnection")
@admin
def create_connection():
    """Create a connection a remote box will use (this box stays passive)."""
    body = json_body(dict)
    box = service.create_connection(get_services(), bodies.text(body.get("name"), "box name", 180),
                                    bodies.profile(body.get("defaultProfile")))
    return jsonify(box_json(box)), 201


@bp.post("/connect")
@admin
def connect():
    """Connect to a remote box with the URL it handed out."""
    body = json_body(dict)
    box = service.connect(get_services(), bodies.text(body.get("name"), "box name", 180),
                          bodies.text(body.get("baseUrl"), "baseUrl", 2000), bodies.profile(body.get("defaultProfile")))
    return jsonify(box_json(box)), 201


@bp.delete("/<int:box_id>")
@admin
def delete_box(box_id: int):
    """Remove a box connection (its transactions stay listed)."""
    service.delete_box(get_services(), box_id)
    return "", 204


@bp.post("/<int:box_id>/send")
def send(box_id: int):
    """Queue images for the box; they are anonymized when they leave."""
    profile, items = bodies.anonymization_request(json_body(dict))
    tx = service.queue(get_services(), box_id, items, profile)
    return jsonify(outgoing_transaction_json(tx)), 201


@bp.get("/outgoing")
def list_outgoing():
    """Outgoing transactions, most recently updated first."""
    return jsonify([outgoing_transaction_json(t) for t in service.list_outgoing(get_services(), page_args())])


@bp.delete("/outgoing/<int:transaction_id>")
def delete_outgoing(transaction_id: int):
    """Delete an outgoing transaction, which stops it."""
    service.delete_outgoing(get_services(), transaction_id)
    return "", 204


@bp.get("/outgoing/<int:transaction_id>/images")
def outgoing_images(transaction_id: int):
    """Images of an outgoing transaction that still exist here."""
    return jsonify([i.to_json() for i in service.outgoing_images(get_services(), transaction_id)])


@bp.get("/incoming")
def list_incoming():
    """Incoming transactions, most recently updated first."""
    return jsonify([t.to_json() for t in service.list_incoming(get_services(), page_args())])


@bp.delete("/incoming/<int:transaction_id>")
def delete_incoming(transaction_id: int):
    """Delete an incoming transaction record (received images stay)."""
    service.delete_incoming(get_services(), transaction_id)
    return "", 204


@bp.get("/incoming/<int:transaction_id>/images")
def incoming_images(transaction_id: int):
    """Images received in an incoming transaction."""
    return jsonify([i.to_json() for i in service.incoming_images(get_services(), transaction_id)])
