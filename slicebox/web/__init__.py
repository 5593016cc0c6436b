"""The browser interface: one page at ``/`` and its static files, calling the same ``/api``.

No build step: ``static/`` holds plain ES modules, CSS and the page, shipped as
package data, so ``pip install .`` is all a box needs.  The page logs in with
the API's session cookie (``POST /api/users/login``; HttpOnly, SameSite=Strict,
path ``/api``) and does everything else through the API, so a person in the
browser can do nothing an API client of the same role could not.  Cross-site
requests riding on that cookie are refused by ``slicebox.api._helpers``
(Origin / Sec-Fetch-Site checks); the page itself sends a custom header on
every state-changing request, which a cross-site form cannot.
"""
from __future__ import annotations

import os

from flask import Blueprint, Flask, Response, send_from_directory

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

bp = Blueprint("web", __name__)

#: The page may load only its own scripts, styles and images (no inline script, no framing).
CSP = ("default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def _page() -> Response:
    response = send_from_directory(STATIC, "index.html", max_age=0)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


@bp.get("/")
def index():
    """The browser interface."""
    return _page()


@bp.get("/web/static/<path:filename>")
def static(filename: str):
    """The page's scripts and styles (send_from_directory refuses paths outside the folder)."""
    response = send_from_directory(STATIC, filename, max_age=300)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def register(app: Flask) -> None:
    """Add the interface to ``app``; its page and static files need no user (the API does)."""
    app.register_blueprint(bp)
    for endpoint in ("web.index", "web.static"):
        app.view_functions[endpoint].slicebox_public = True
