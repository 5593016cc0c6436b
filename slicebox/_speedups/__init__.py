"""Compiled modules built from ext/ are installed here (see setup.py).

:func:`disabled` is the one reading of the ``SLICEBOX_NO_EXTENSIONS`` switch
(yarl's ``YARL_NO_EXTENSIONS`` style): set to anything but ``""`` or ``"0"``,
every selector (the streaming engine, the window/level kernel) uses its
pure-Python twin.
"""
import os


def disabled() -> bool:
    """True when ``SLICEBOX_NO_EXTENSIONS`` asks for the pure-Python twins."""
    return os.environ.get("SLICEBOX_NO_EXTENSIONS", "") not in ("", "0")
