"""Supervisor provider for DICOM listeners: one part per SCP row."""
from __future__ import annotations

from typing import Callable

from slicebox.context import Services
from slicebox.jobs.supervisor import Part
from slicebox.services import scps


def parts(services: Services) -> dict[str, Callable[[], Part]]:
    """``scp:<id>:<AE title>:<port>`` -> a listener; a changed AE title or port restarts it."""
    return {f"scp:{s.id}:{s.ae_title}:{s.port}": (lambda s=s: scps.ScpListener(services, s))
            for s in scps.all_scps(services)}
