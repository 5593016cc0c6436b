"""Logs: the box's event log."""
from flask import Blueprint, jsonify, request

from slicebox.api._helpers import admin, page_args
from slicebox.context import get_services
from slicebox.services import logs as service

bp = Blueprint("logs", __name__, url_prefix="/api/log")


@bp.get("")
def list_log():
    """List log entries, newest first, optionally by subject and type."""
    entries = service.list_entries(get_services(), page_args(), request.args.get("subject") or None,
                                   request.args.get("type") or None)
    return jsonify([e.to_json() for e in entries])


@bp.delete("")
@admin
def clear_log():
    """Delete all log entries (administrators only: the log is the box's audit trail)."""
    service.clear(get_services())
    return "", 204


@bp.delete("/<int:entry_id>")
@admin
def delete_log_entry(entry_id: int):
    """Delete one log entry (administrators only; unknown ids are ignored)."""
    service.delete_entry(get_services(), entry_id)
    return "", 204
