"""Forwarding: rules that send every image from a source on to a destination."""
from flask import Blueprint, jsonify

from slicebox.api import bodies
from slicebox.api._helpers import admin, json_body, page_args
from slicebox.context import get_services
from slicebox.services import forwarding as service

bp = Blueprint("forwarding", __name__, url_prefix="/api/forwarding")


@bp.get("/rules")
def list_rules():
    """List forwarding rules."""
    return jsonify([r.to_json() for r in service.list_rules(get_services(), page_args())])


@bp.post("/rules")
@admin
def add_rule():
    """Add a forwarding rule (the existing rule when source and destination are already forwarded)."""
    source, destination, keep = bodies.forwarding_rule(json_body(dict))
    return jsonify(service.add_rule(get_services(), source, destination, keep).to_json()), 201


@bp.delete("/rule/<int:rule_id>")
@bp.delete("/rules/<int:rule_id>", endpoint="delete_rule_plural")
@admin
def delete_rule(rule_id: int):
    """Delete a forwarding rule and stop what is pending for it."""
    service.delete_rule(get_services(), rule_id)
    return "", 204
