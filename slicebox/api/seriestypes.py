"""Series Types: types, their rules and rule attributes, and the background update status."""
from flask import Blueprint, jsonify, request

from slicebox.api import bodies
from slicebox.api._helpers import admin, int_arg, json_body, page_args
from slicebox.context import get_services
from slicebox.services import seriestypes as service

bp = Blueprint("seriestypes", __name__, url_prefix="/api/seriestypes")


@bp.get("")
def list_types():
    """List series types."""
    return jsonify([t.to_json() for t in service.list_types(get_services(), page_args())])


@bp.post("")
@admin
def add_type():
    """Add a series type (unique name)."""
    return jsonify(service.add_type(get_services(), bodies.series_type_name(json_body(dict))).to_json()), 201


@bp.put("/<int:type_id>")
@admin
def update_type(type_id: int):
    """Re-evaluate all series for the series types (renaming the type when the body has a name)."""
    name = bodies.series_type_name(json_body(dict)) if request.content_length else None
    service.update_type(get_services(), type_id, name)
    return "", 204


@bp.delete("/<int:type_id>")
@admin
def delete_type(type_id: int):
    """Delete a series type with its rules; series lose the type."""
    service.delete_type(get_services(), type_id)
    return "", 204


@bp.get("/rules")
def list_rules():
    """The rules of a series type (of all types without seriestypeid)."""
    return jsonify([r.to_json() for r in service.list_rules(get_services(), int_arg("seriestypeid"))])


@bp.post("/rules")
@admin
def add_rule():
    """Add a rule to a series type."""
    return jsonify(service.add_rule(get_services(), bodies.series_type_rule(json_body(dict))).to_json()), 201


@bp.get("/rules/updatestatus")
def update_status():
    """Whether series are being re-evaluated after a change."""
    return jsonify({"running": service.update_running(get_services())})


@bp.delete("/rules/<int:rule_id>")
@admin
def delete_rule(rule_id: int):
    """Delete a rule with its attributes."""
    service.delete_rule(get_services(), rule_id)
    return "", 204


@bp.get("/rules/<int:rule_id>/attributes")
def list_attributes(rule_id: int):
    """The attributes of a rule."""
    return jsonify([a.to_json() for a in service.list_attributes(get_services(), rule_id)])


@bp.post("/rules/<int:rule_id>/attributes")
@admin
def add_attribute(rule_id: int):
    """Add an attribute (group, element, optional path, value) to a rule."""
    group, element, path, value = bodies.series_type_rule_attribute(json_body(dict))
    return jsonify(service.add_attribute(get_services(), rule_id, group, element, path, value).to_json()), 201


@bp.delete("/rules/<int:rule_id>/attributes/<int:attribute_id>")
@admin
def delete_attribute(rule_id: int, attribute_id: int):
    """Delete an attribute of a rule."""
    service.delete_attribute(get_services(), rule_id, attribute_id)
    return "", 204
