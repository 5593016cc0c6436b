"""Supervisor provider for box transfers: one transfer worker per service process."""
from __future__ import annotations

from typing import Callable

from slicebox.context import Services
from slicebox.jobs.supervisor import Part
from slicebox.services.box_transfer import TransferWorker

KEY = "box-transfers"


def parts(services: Services) -> dict[str, Callable[[], Part]]:
    """The transfer worker always runs (with no PUSH box it only looks, once per poll interval)."""
    return {KEY: lambda: TransferWorker(services)}
