"""Domain errors and their single mapping to HTTP responses.

Services raise these; ``register_error_handlers`` turns them, and any
werkzeug ``HTTPException``, into ``{"error": message}`` JSON bodies.  An
unexpected exception becomes a 500 with a generic message (details go to the
server log, never to the client).
"""
from __future__ import annotations

import logging

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


def register_error_handlers(app) -> None:
    from flask import jsonify
    from werkzeug.exceptions import HTTPException

    @app.errorhandler(SliceboxError)
    def _domain(exc: SliceboxError):
        response = jsonify(error=exc.message)
        response.status_code = exc.status
        return response

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        response = jsonify(error=exc.description or exc.name)
        response.status_code = exc.code or 500
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        logger.exception("unhandled error")
        response = jsonify(error="internal server error")
        response.status_code = 500
        return response
