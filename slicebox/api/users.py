"""Users: accounts, roles and login sessions."""
from flask import Blueprint, g, jsonify, make_response, request

from slicebox.api._helpers import (SESSION_COOKIE, admin, authenticate_request, client_identity, json_body,
                                   page_args, public)
from slicebox.context import get_services
from slicebox.errors import BadRequest, NotFound, Unauthorized
from slicebox.services import users as service

bp = Blueprint("users", __name__, url_prefix="/api/users")


@bp.get("")
def list_users():
    """List users (never with password hashes)."""
    return jsonify([u.to_json() for u in service.list_users(get_services(), page_args())])


@bp.post("")
@admin
def add_user():
    """Create a user; an existing name returns the existing user."""
    body = json_body(dict)
    for key in ("user", "role", "password"):
        if not isinstance(body.get(key), str):
            raise BadRequest(f"field {key} must be a string")
    user, _created = service.add_user(get_services(), body["user"], body["role"], body["password"])
    return jsonify(user.to_json()), 201


@bp.delete("/<int:user_id>")
@admin
def delete_user(user_id: int):
    """Delete a user (the superuser cannot be deleted; unknown ids are ignored)."""
    service.delete_user(get_services(), user_id)
    return "", 204


@bp.post("/login")
@public
def login():
    """Log in with {user, pass}; sets the slicebox-session cookie."""
    body = json_body(dict)
    if not isinstance(body.get("user"), str) or not isinstance(body.get("pass"), str):
        raise BadRequest("fields user and pass must be strings")
    ip, agent = client_identity()
    token = service.login(get_services(), body["user"], body["pass"], ip, agent)
    if token is None:
        raise Unauthorized("Invalid username or password")
    response = make_response("", 201)
    response.set_cookie(SESSION_COOKIE, token, path="/api", httponly=True, samesite="Strict",
                        secure=request.is_secure)
    return response


@bp.post("/logout")
def logout():
    """End this client's session and clear the cookie."""
    service.logout(get_services(), request.cookies.get(SESSION_COOKIE), g.user.id)
    response = make_response("", 201)
    response.delete_cookie(SESSION_COOKIE, path="/api")
    return response


@bp.get("/current")
@public
def current_user():
    """The user of this client's session cookie (or basic auth), else 404."""
    try:
        user = authenticate_request()
    except Unauthorized:
        user = None  # the spec answers 404 for a missing or invalid session alike
    if user is None:
        raise NotFound("no user is logged in from this client")
    g.user = user
    return jsonify(user.to_json())
