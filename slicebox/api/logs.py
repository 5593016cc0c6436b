"""Logs: the box's event log."""
from flask import Blueprint, jsonify, request

from slicebox.api._helpers import page_args
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
def clear_log():
    """Delete all log entries."""
    service.clear(get_services())
    return "", 204


@bp.delete("/<int:entry_id>")
def delete_log_entry(entry_id: int):
    """Delete one log entry (unknown ids are ignored)."""
    service.delete_entry(get_services(), entry_id)
    return "", 204
