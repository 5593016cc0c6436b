"""HTTP glue shared by the blueprints: auth, roles, paging, JSON bodies."""
from __future__ import annotations

import functools
import ipaddress
import json
import os

from flask import Flask, Response, current_app, g, request
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from slicebox import logsetup
from slicebox.api import bodies
from slicebox.context import get_services
from slicebox.db import INT64_MAX
from slicebox.errors import BadRequest, Forbidden, PayloadTooLarge, Unauthorized
from slicebox.models import Page, User
from slicebox.services import users as users_service

SESSION_COOKIE = "slicebox-session"


# -- access control ---------------------------------------------------------------
def public(view):
    """Mark a view as reachable without a user (health, login, token routes)."""
    view.slicebox_public = True
    return view


def require_role(role: str):
    """Allow only users with ``role`` or a higher one (SUPERUSER > ADMINISTRATOR > USER)."""
    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            user: User = g.user
            if not users_service.has_permission(user.role, role):
                raise Forbidden(f"this operation requires the role {role}")
            return view(*args, **kwargs)

        return wrapper

    return decorate


def is_admin(user: User | None) -> bool:
    """Whether ``user`` is an ADMINISTRATOR or the SUPERUSER."""
    return user is not None and users_service.has_permission(user.role, "ADMINISTRATOR")


def admin(view):
    """Allow only ADMINISTRATOR and SUPERUSER; a USER gets 403."""
    return require_role("ADMINISTRATOR")(view)


def client_identity() -> tuple[str, str]:
    """(client IP, User-Agent) that sessions are bound to."""
    return request.remote_addr or "", request.headers.get("User-Agent", "")


def authenticate_request() -> User | None:
    """The user named by this request's basic auth or session cookie.

    None when the request carries neither; Unauthorized when what it carries is
    invalid.  Basic auth wins over a cookie (as in Slicebox 2.0), so wrong
    credentials are a 401 even next to a valid cookie.
    """
    services = get_services()
    auth = request.authorization
    if auth is not None and auth.type == "basic":
        user = users_service.authenticate_basic(services, auth.username or "", auth.password or "",
                                                client_identity()[0])
        if user is None:
            raise Unauthorized("The supplied authentication is invalid")
        return user
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        ip, agent = client_identity()
        user = users_service.authenticate_session(services, token, ip, agent)
        if user is None:
            raise Unauthorized("The supplied session is invalid or has expired")
        _refuse_cross_site()
        return user
    return None


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
#: Header the browser interface sends on every state-changing request. A cross-site form
#: cannot set a custom header, and a cross-site script cannot without a CORS preflight,
#: which this box never grants.
CSRF_HEADER = "X-Slicebox-Request"


def _refuse_cross_site() -> None:
    """CSRF defence for cookie sessions: a state-changing request must come from this box's own pages.

    Browsers say where a request comes from (``Sec-Fetch-Site``, ``Origin``);
    API clients that log in and keep the cookie (scripts) send neither and are
    unaffected.  Basic auth is never sent by a browser on its own for this box
    (no ``WWW-Authenticate`` challenge), so only the cookie needs this.
    """
    if request.method in SAFE_METHODS:
        return
    site = request.headers.get("Sec-Fetch-Site", "")
    origin = request.headers.get("Origin", "")
    if site in ("cross-site", "same-site"):
        raise Forbidden("cross-site request refused")
    if origin and origin.rstrip("/") != request.host_url.rstrip("/"):
        raise Forbidden("cross-origin request refused")
    if (site or origin) and not request.headers.get(CSRF_HEADER):
        raise Forbidden(f"requests from a browser must carry the {CSRF_HEADER} header")


def install_auth(app: Flask) -> None:
    @app.before_request
    def _authenticate():
        g.user = None
        view = app.view_functions.get(request.endpoint) if request.endpoint else None
        # Unknown paths (404/405) and public views pass; everything else needs a user.
        if view is None or getattr(view, "slicebox_public", False):
            return None
        user = authenticate_request()
        if user is None:
            raise Unauthorized("The resource requires authentication, which was not supplied with the request")
        g.user = user
        return None


# -- generic checks of every request ---------------------------------------------------
def _at_most(limit: int) -> str:
    """A regular expression matching exactly the decimal numbers 0..``limit`` (leading zeros allowed)."""
    digits = str(limit)
    alternatives = [r"\d{1,%d}" % (len(digits) - 1)] if len(digits) > 1 else []
    for i, digit in enumerate(digits):
        if digit != "0":
            rest = len(digits) - i - 1
            alternatives.append(digits[:i] + f"[0-{int(digit) - 1}]" + (r"\d{%d}" % rest if rest else ""))
    alternatives.append(digits)
    return "0*(?:" + "|".join(alternatives) + ")"


class IdConverter(IntegerConverter):
    """``<int:...>`` in every route: a non-negative id that fits the databases' 64 bits.

    The bound is in the converter's regular expression, so a larger number
    matches no route at all: 404 whatever the method (a failing ``to_python``
    would make werkzeug answer 405 for the methods of sibling rules), and no
    id that no row can have ever reaches a query.
    """

    regex = _at_most(INT64_MAX)


def install_id_converter(app: Flask) -> None:
    """Make ``int`` route arguments bounded ids; call before any blueprint is registered."""
    app.url_map.converters["int"] = IdConverter


def _has_nul(text: str | None) -> bool:
    return bool(text) and "\x00" in text


def install_request_checks(app: Flask) -> None:
    """Refuse, before authentication and any view, text no database can hold.

    A NUL in the path (tokens of the token routes), in a query parameter or in
    the Basic-auth user name is a 400 here; JSON bodies are checked by
    :func:`json_body`, and the database layer refuses such values whatever
    their way in (slicebox.db.check_params).
    """
    @app.before_request
    def _check_text():
        if _has_nul(request.path):
            raise BadRequest("the URL path must not contain NUL characters")
        for key, value in request.args.items(multi=True):
            if _has_nul(key) or _has_nul(value):
                raise BadRequest(f"query parameter {key[:40].replace(chr(0), '')!r} must not contain NUL characters")
        auth = request.authorization
        if auth is not None and (_has_nul(auth.username) or _has_nul(auth.password)):
            raise BadRequest("credentials must not contain NUL characters")
        return None


# -- behind a reverse proxy; request ids ----------------------------------------------
def parse_trusted_proxies(spec: str) -> list:
    """``SLICEBOX_TRUSTED_PROXIES`` as networks; raises ValueError naming a bad entry."""
    networks = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"SLICEBOX_TRUSTED_PROXIES: not an address or network: {item!r}") from None
    return networks


class TrustedProxyFix:
    """Werkzeug's ProxyFix (one hop of X-Forwarded-For/Proto/Host/Port), only for requests from a trusted proxy.

    A request whose TCP peer is not one of ``networks`` is passed on untouched:
    its X-Forwarded-* headers are ignored, so a client cannot pick the address
    its session is bound to.
    """

    def __init__(self, wsgi_app, networks: list):
        self.wsgi_app = wsgi_app
        self.networks = list(networks)
        self.fixed = ProxyFix(wsgi_app, x_for=1, x_proto=1, x_host=1, x_port=1)

    def trusted(self, peer: str | None) -> bool:
        try:
            address = ipaddress.ip_address((peer or "").split("%")[0])
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def __call__(self, environ, start_response):
        if self.trusted(environ.get("REMOTE_ADDR")):
            return self.fixed(environ, start_response)
        return self.wsgi_app(environ, start_response)


def install_proxy_fix(app: Flask, spec: str) -> None:
    """Honour X-Forwarded-* from the proxies in ``spec`` (SLICEBOX_TRUSTED_PROXIES); nothing when empty."""
    networks = parse_trusted_proxies(spec)
    if networks:
        app.wsgi_app = TrustedProxyFix(app.wsgi_app, networks)


REQUEST_ID_HEADER = "X-Request-ID"


def install_request_ids(app: Flask) -> None:
    """Every request gets an id (the proxy's X-Request-ID when sane): in each log line and the response."""
    @app.before_request
    def _request_id():
        value = logsetup.new_request_id(request.headers.get(REQUEST_ID_HEADER))
        g.request_id = value
        g.request_id_token = logsetup.set_request_id(value)

    @app.after_request
    def _echo_request_id(response):
        value = g.get("request_id")
        if value:
            response.headers[REQUEST_ID_HEADER] = value
        return response

    @app.teardown_request
    def _clear_request_id(_exc):
        token = g.pop("request_id_token", None)
        if token is not None:
            logsetup.reset_request_id(token)


# -- request parsing ----------------------------------------------------------------
def _int_arg(name: str, default: int | None, minimum: int | None = 0) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    return bodies.integer_text(raw, f"query parameter {name}", minimum)


def int_arg(name: str, default: int | None = None, minimum: int | None = 0) -> int | None:
    return _int_arg(name, default, minimum)


def required_int_arg(name: str, minimum: int | None = 0) -> int:
    value = _int_arg(name, None, minimum)
    if value is None:
        raise BadRequest(f"query parameter {name} is required")
    return value


def bool_arg(name: str, default: bool) -> bool:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise BadRequest(f"query parameter {name} must be true or false")


def page_args(default_count: int = 20) -> Page:
    start = _int_arg("startindex", 0)
    count = bodies.page_count(_int_arg("count", default_count))
    return Page(start_index=start, count=count)


def json_body(expected: type | tuple | None = None):
    """The request body parsed as JSON (any content type), size-limited."""
    limit = int(current_app.config["SLICEBOX"]["MAX_JSON_BODY"])
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"request body larger than {limit} bytes")
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise PayloadTooLarge(f"request body larger than {limit} bytes")
    if not raw.strip():
        raise BadRequest("request body is empty, expected JSON")
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest(f"request body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    check_json(value)
    if expected is not None and not isinstance(value, expected):
        names = expected.__name__ if isinstance(expected, type) else "/".join(t.__name__ for t in expected)
        raise BadRequest(f"request body must be a JSON {_json_name(names)}")
    return value


#: Deepest nesting of arrays and objects accepted in a JSON body (the API's deepest
#: shapes, tag paths into nested sequences, stay far below).
MAX_JSON_DEPTH = 64


def check_json(value) -> None:
    """Refuse JSON nested deeper than MAX_JSON_DEPTH, or holding text (keys or values) with
    NUL characters or lone surrogates (``"\\ud800"``): no database can store either."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_json_text(item)
            continue
        if isinstance(item, dict):
            children = []
            for key, child in item.items():
                _check_json_text(key)
                children.append(child)
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            raise BadRequest(f"request body is nested deeper than {MAX_JSON_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children if isinstance(child, (str, dict, list)))


def _check_json_text(text: str) -> None:
    if "\x00" in text:
        raise BadRequest("text in the request body must not contain NUL characters")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest("text in the request body must be valid Unicode (no lone surrogates)") from None


def _json_name(py: str) -> str:
    return {"list": "array", "dict": "object"}.get(py, py)


def id_list_body() -> list[int]:
    """A JSON array of integer ids."""
    return list(bodies.id_list(json_body(list)))


def upload_stream():
    """The dataset of an upload: multipart field ``file`` (or ``dataset``), else the raw body (streamed)."""
    return upload_file()[0]


def upload_file():
    """(stream, file name) of an upload; the name is the multipart file name, else empty."""
    content_type = request.mimetype or ""
    if content_type.startswith("multipart/form-data"):
        for field in ("file", "dataset"):
            if field in request.files:
                storage = request.files[field]
                return storage.stream, storage.filename or ""
        raise BadRequest("multipart upload has no 'file' field")
    return request.stream, ""


# -- streaming responses --------------------------------------------------------------
_STREAM_CHUNK = 1 << 20


def stream_file(fh, size: int, mimetype: str = "application/octet-stream") -> Response:
    """Stream an open binary file in chunks (never the whole thing in memory); closes it."""
    def generate():
        with fh:
            while True:
                chunk = fh.read(_STREAM_CHUNK)
                if not chunk:
                    break
                yield chunk

    response = Response(generate(), mimetype=mimetype)
    response.headers["Content-Length"] = str(size)
    return response


def stream_temp_file(path: str, mimetype: str = "application/octet-stream") -> Response:
    """Stream a temporary file and remove it (unlinked at once; the open handle keeps the data)."""
    fh = open(path, "rb")
    try:
        size = os.fstat(fh.fileno()).st_size
    finally:
        os.unlink(path)
    return stream_file(fh, size, mimetype)
