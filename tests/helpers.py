"""Helpers test modules import by name (``from helpers import ...``).

They live here, not in conftest.py: several conftest modules exist and
``import conftest`` would pick an arbitrary one.
"""
from __future__ import annotations

import base64


def basic(user: str, password: str) -> dict:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


ADMIN = basic("admin", "secret")


class AuthClient:
    """Wraps a Flask test client, adding default headers to each request."""

    def __init__(self, inner, headers: dict):
        self.inner = inner
        self.headers = dict(headers)

    def open(self, *args, **kwargs):
        headers = dict(self.headers)
        headers.update(kwargs.pop("headers", None) or {})
        kwargs["headers"] = headers
        return self.inner.open(*args, **kwargs)

    def get(self, *a, **k):
        return self.open(*a, method="GET", **k)

    def post(self, *a, **k):
        return self.open(*a, method="POST", **k)

    def put(self, *a, **k):
        return self.open(*a, method="PUT", **k)

    def delete(self, *a, **k):
        return self.open(*a, method="DELETE", **k)
