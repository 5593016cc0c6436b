"""Import: sessions that count what a batch of uploads added, duplicated or rejected."""
from flask import Blueprint, g, jsonify

from slicebox.api import bodies
from slicebox.api._helpers import json_body, page_args, upload_file
from slicebox.context import get_services
from slicebox.services import importing as service

bp = Blueprint("importing", __name__, url_prefix="/api/import")


@bp.get("/sessions")
def list_sessions():
    """List import sessions."""
    return jsonify([s.to_json() for s in service.list_sessions(get_services(), page_args())])


@bp.post("/sessions")
def add_session():
    """Create an import session (the same name by the same user returns the existing one)."""
    body = json_body(dict)
    name = bodies.text(body.get("name"), "import session name", service.MAX_NAME)
    session = service.add_session(get_services(), name, g.user)
    return jsonify(session.to_json()), 201


@bp.get("/sessions/<int:session_id>")
def get_session(session_id: int):
    """One import session with its counters."""
    return jsonify(service.get_session(get_services(), session_id).to_json())


@bp.delete("/sessions/<int:session_id>")
def delete_session(session_id: int):
    """Delete an import session (its images stay)."""
    service.delete_session(get_services(), session_id, g.user)
    return "", 204


@bp.get("/sessions/<int:session_id>/images")
def session_images(session_id: int):
    """The images the session brought in that are still stored."""
    return jsonify([i.to_json() for i in service.session_images(get_services(), session_id)])


@bp.post("/sessions/<int:session_id>/images")
def add_image(session_id: int):
    """Store a dataset (raw body or multipart ``file``) in the session: 201 new, 200 duplicate."""
    services = get_services()
    session = service.session_for_upload(services, session_id, g.user)
    stream, filename = upload_file()
    result = service.add_image(services, session, stream, filename)
    return jsonify(result.image.to_json()), 201 if result.created else 200
