"""Rescale + window of one frame into uint8: the numba kernel (twin of ``_window_py``).

Importing this module compiles nothing; :func:`slicebox.imaging.window.warm_up`
calls the kernel once per common dtype at start-up (``cache=True`` keeps the
machine code between runs), so no request pays numba's 1-2 s compile.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _kernel(frame, slope, intercept, center, width, invert):
    rows, cols = frame.shape
    out = np.empty((rows, cols), dtype=np.uint8)
    c5 = center - 0.5
    threshold = width <= 1.0
    wm1 = width - 1.0
    half = wm1 / 2.0
    lo = c5 - half
    hi = c5 + half
    for r in range(rows):
        for k in range(cols):
            v = np.float64(frame[r, k]) * slope + intercept
            if threshold:
                y = 0.0 if v <= c5 else 255.0
            elif v <= lo:
                y = 0.0
            elif v > hi:
                y = 255.0
            else:
                y = math.floor(((v - c5) / wm1 + 0.5) * 255.0 + 0.5)
                if y < 0.0:
                    y = 0.0
                elif y > 255.0:
                    y = 255.0
            b = np.uint8(y)
            out[r, k] = np.uint8(255) - b if invert else b
    return out


def window_frame(frame: np.ndarray, slope: float, intercept: float, center: float, width: float,
                 invert: bool) -> np.ndarray:
    """Same contract as :func:`slicebox.imaging._window_py.window_frame`."""
    return _kernel(frame, float(slope), float(intercept), float(center), float(width), bool(invert))
