"""General: health, stop, sources and destinations, the API document."""
import copy
import functools
import json
import os
import re

from flask import Blueprint, current_app, g, jsonify

from slicebox.api._helpers import admin, public
from slicebox.context import get_services
from slicebox.services import system as service

bp = Blueprint("general", __name__, url_prefix="/api")


@bp.get("/system/health")
@public
def health():
    """200 when the database and the storage answer, else 503 naming what is down (JSON either way)."""
    checks = service.health(get_services())
    ok = all(value == "ok" for value in checks.values())
    return jsonify({"status": "ok" if ok else "unavailable", **checks}), 200 if ok else 503


OPENAPI_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "openapi.json")
_CONVERTER = re.compile(r"<(?:[a-z_]+:)?([A-Za-z_][A-Za-z0-9_]*)>")
_PARAM = re.compile(r"\{[^}]*\}")


@functools.lru_cache(maxsize=1)
def _seed_document() -> dict:
    with open(OPENAPI_PATH, encoding="utf-8") as fh:
        return json.load(fh)


def api_document(app) -> dict:
    """The shipped API document plus every /api route of this app it does not list yet."""
    document = copy.deepcopy(_seed_document())
    paths = document.setdefault("paths", {})
    # the same path whatever its parameters are called: /images/{id} is /images/<int:image_id>
    by_shape = {_PARAM.sub("{}", path): path for path in paths}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.rule.startswith("/api/"):
            continue
        path = _CONVERTER.sub(r"{\1}", rule.rule[len("/api"):])
        path = by_shape.setdefault(_PARAM.sub("{}", path), path)
        view = app.view_functions.get(rule.endpoint)
        entry = paths.setdefault(path, {})
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if method.lower() in entry:
                continue
            doc = " ".join(((view.__doc__ or "") if view else "").split())
            entry[method.lower()] = {
                "summary": doc.split(". ")[0][:120] or rule.endpoint,
                "description": doc or rule.endpoint,
                "tags": [_tag_of(rule.endpoint)],
                "responses": {"default": {"description": "see the description"}},
                "x-slicebox-added": True,
            }
    return document


def _tag_of(endpoint: str) -> str:
    blueprint = endpoint.split(".")[0]
    return {"general": "General", "images": "Images", "metadata": "Meta Data", "anonymization": "Anonymization",
            "boxes": "Boxes", "transactions": "Transactions", "users": "Users", "logs": "Logs"}.get(
        blueprint, blueprint.replace("_", " ").title())


@bp.get("/openapi.json")
@public
def openapi():
    """The API document (OpenAPI 3): the Slicebox 2.0 operations plus what this box adds."""
    return jsonify(api_document(current_app._get_current_object()))


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
