"""Rescale + window of one frame into uint8: the numpy twin (the reference behaviour).

The linear VOI function of DICOM PS3.3 C.11.2.1.2.1, applied after the
rescale (modality LUT) ``v = x * slope + intercept``:

* ``v <= c - 0.5 - (w - 1) / 2``  -> 0
* ``v >  c - 0.5 + (w - 1) / 2``  -> 255
* otherwise ``((v - (c - 0.5)) / (w - 1) + 0.5) * 255``, rounded half up.

With ``w <= 1`` the function is a threshold at ``c - 0.5``.  ``invert`` gives
``255 - y`` (MONOCHROME1).  Every step is float64 in the same order as the
numba kernel, so both give identical bytes.
"""
from __future__ import annotations

import numpy as np


def window_frame(frame: np.ndarray, slope: float, intercept: float, center: float, width: float,
                 invert: bool) -> np.ndarray:
    """Return the 2-D ``frame`` rescaled and windowed as a uint8 array of the same shape."""
    v = frame.astype(np.float64) * slope + intercept
    c5 = center - 0.5
    if width <= 1.0:
        y = np.where(v <= c5, 0.0, 255.0)
    else:
        wm1 = width - 1.0
        half = wm1 / 2.0
        lo = c5 - half
        hi = c5 + half
        y = ((v - c5) / wm1 + 0.5) * 255.0
        y = np.floor(y + 0.5)
        y = np.where(v <= lo, 0.0, np.where(v > hi, 255.0, y))
    y = np.clip(y, 0.0, 255.0)
    out = y.astype(np.uint8)
    if invert:
        out = np.uint8(255) - out
    return out
