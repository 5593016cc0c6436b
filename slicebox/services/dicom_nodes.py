"""Validation shared by SCPs and SCUs: names, AE titles, ports, hosts (400 with a message)."""
from __future__ import annotations

from slicebox.errors import BadRequest


def name_or_400(value, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{what} name must be a non-empty string")
    if len(value.strip()) > 180:
        raise BadRequest(f"{what} name must be at most 180 characters")
    return value.strip()


def ae_title_or_400(value) -> str:
    """An AE title of 1-16 characters after trimming (PS3.5 AE: no backslash, no control characters)."""
    if not isinstance(value, str):
        raise BadRequest("aeTitle must be a string")
    title = value.strip()
    if not 1 <= len(title) <= 16:
        raise BadRequest(f"AE title must be 1 to 16 characters after trimming spaces, got {len(title)}")
    if any(c == "\\" or ord(c) < 0x20 or ord(c) > 0x7E for c in title):
        raise BadRequest("AE title may hold printable ASCII characters only, and no backslash")
    return title


def port_or_400(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise BadRequest(f"port must be an integer from 1 to 65535, got {str(value)[:20]}")
    return value


def host_or_400(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("host must be a non-empty string")
    host = value.strip()
    if len(host) > 253 or any(c.isspace() or ord(c) < 0x20 for c in host) or "/" in host:
        raise BadRequest("host must be a host name or an IP address")
    return host
