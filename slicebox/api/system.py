"""General: health, stop, sources and destinations."""
from flask import Blueprint, g, jsonify

from slicebox.api._helpers import admin, public
from slicebox.context import get_services
from slicebox.services import system as service

bp = Blueprint("general", __name__, url_prefix="/api")


@bp.get("/system/health")
@public
def health():
    """No-op liveness check (also checks the database answers)."""
    service.health(get_services())
    return "", 200


@bp.post("/system/stop")
@admin
def stop():
    """Stop the box gracefully."""
    return service.stop(get_services(), g.user.user), 200, {"Content-Type": "text/plain; charset=utf-8"}


@bp.get("/sources")
def sources():
    """Users, boxes, directory watches, SCPs and import sessions that can add images."""
    return jsonify([s.to_json() for s in service.list_sources(get_services())])


@bp.get("/destinations")
def destinations():
    """Boxes and SCUs that images can be sent to."""
    return jsonify([d.to_json() for d in service.list_destinations(get_services())])
