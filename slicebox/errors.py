"""Domain errors and their single mapping to HTTP responses.

Services raise these; ``register_error_handlers`` turns them, and any
werkzeug ``HTTPException``, into ``{"error": message}`` JSON bodies.  An
unexpected exception becomes a 500 with a generic message (details go to the
server log, never to the client).
"""
from __future__ import annotations

import logging
import os
import re
import sys
import tempfile

logger = logging.getLogger(__name__)


class SliceboxError(Exception):
    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class BadRequest(SliceboxError):
    status = 400


class InvalidDicom(BadRequest):
    """The bytes are not DICOM this box can store (400)."""


class Unauthorized(SliceboxError):
    status = 401


class Forbidden(SliceboxError):
    status = 403


class NotFound(SliceboxError):
    status = 404


class Conflict(SliceboxError):
    status = 409


class PayloadTooLarge(SliceboxError):
    status = 413


class NotImplementedYet(SliceboxError):
    """The box cannot do this for this input (501), e.g. render undecodable pixels."""

    status = 501


class BadGateway(SliceboxError):
    status = 502


class StorageUnavailable(SliceboxError):
    """The object store (or storage folder) cannot be reached or refused the operation (503)."""

    status = 503


class TooManyRequests(SliceboxError):
    """Refused for now; ``retry_after`` seconds later it may be tried again (429)."""

    status = 429

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


# -- no server path in any answer ------------------------------------------------------
_PATH_CHARS = r"[^\s'\"`,;:()\[\]{}<>|]"


def _path_pattern(roots: list[str]) -> re.Pattern:
    """Absolute paths under one of ``roots`` or under a top-level folder of this machine."""
    try:
        top = sorted(n for n in os.listdir("/") if not n.startswith("."))
    except OSError:  # pragma: no cover
        top = []
    alternatives = [re.escape(r.rstrip("/")) for r in sorted(set(roots), key=len, reverse=True) if len(r) > 1]
    alternatives.extend("/" + re.escape(name) for name in top)
    if not alternatives:  # pragma: no cover
        return re.compile(r"(?!x)x")
    return re.compile(r"(?<![\w/.])(?:" + "|".join(alternatives) + r")(?=/|\b)" + _PATH_CHARS + "*")


_path_re: re.Pattern | None = None


def set_server_paths(*roots: str) -> None:
    """Folders of this server (data, storage, temp) whose paths answers must not show."""
    global _path_re
    known = [os.path.abspath(r) for r in roots if r]
    known += [tempfile.gettempdir(), sys.prefix, os.path.dirname(os.path.abspath(__file__))]
    _path_re = _path_pattern(known)


def scrub_paths(message: str) -> str:
    """``message`` with every server file path replaced by ``<path>``."""
    global _path_re
    if "/" not in message:
        return message
    if _path_re is None:
        set_server_paths()
    return _path_re.sub("<path>", message)


def _gunicorn_parse_errors() -> tuple[type, ...]:
    """gunicorn's request body errors, raised while a view reads the body: malformed framing
    (a bad chunk size, a missing chunk terminator) or a body that ends early."""
    try:
        from gunicorn.http.errors import NoMoreData, ParseException
    except ImportError:  # pragma: no cover - not served by gunicorn
        return ()
    return (ParseException, NoMoreData)


def register_error_handlers(app) -> None:
    from flask import jsonify
    from werkzeug.exceptions import HTTPException

    def answer(message: str, status: int):
        response = jsonify(error=scrub_paths(str(message)))
        response.status_code = status
        return response

    @app.errorhandler(SliceboxError)
    def _domain(exc: SliceboxError):
        response = answer(exc.message, exc.status)
        if isinstance(exc, TooManyRequests):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        response = answer(exc.description or exc.name, exc.code or 500)
        # Keep what the exception says beyond its body: Allow on a 405,
        # WWW-Authenticate on a 401, Retry-After, ...
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(FileNotFoundError)
    def _vanished(exc: FileNotFoundError):
        # A stored file removed by a delete that raced this request.
        logger.info("file vanished during a request: %s", exc)
        return answer("not found (removed while this request ran)", 404)

    def _malformed(exc: Exception):
        logger.info("malformed request body: %s", exc)
        return answer(f"malformed request body: {type(exc).__name__}", 400)

    for parse_error in _gunicorn_parse_errors():
        app.register_error_handler(parse_error, _malformed)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        logger.exception("unhandled error")
        return answer("internal server error", 500)
