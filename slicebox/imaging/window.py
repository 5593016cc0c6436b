"""Window/level selector: the numba kernel when it is compiled, else the numpy twin.

``window_frame`` uses numba only after :func:`warm_up` compiled it for every
dtype it will see (frames of other dtypes are converted first), so a request
never pays numba's compile time.  ``SLICEBOX_NO_EXTENSIONS=1`` forces the
numpy twin (as with yarl's ``YARL_NO_EXTENSIONS``).
"""
from __future__ import annotations

import logging
import threading
import time

import numpy as np

from slicebox import _speedups
from slicebox.imaging import _window_py

logger = logging.getLogger(__name__)

#: dtypes the kernel is compiled for; anything else is converted to one of these.
KERNEL_DTYPES = (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.float32, np.float64)

_lock = threading.Lock()
_impl = _window_py.window_frame
_backend = "numpy"
_warmed = False


def backend() -> str:
    """``"numba"`` once warm_up() compiled the kernel, else ``"numpy"``."""
    return _backend


def warm_up() -> str:
    """Compile the numba kernel for :data:`KERNEL_DTYPES` (once per process).

    Any failure (numba missing, no writable cache folder, a compile error)
    leaves the numpy twin in place.  Returns the backend in use.
    """
    global _impl, _backend, _warmed
    with _lock:
        if _warmed:
            return _backend
        _warmed = True
        if _speedups.disabled():
            logger.info("SLICEBOX_NO_EXTENSIONS set: window/level uses numpy")
            return _backend
        started = time.monotonic()
        try:
            from slicebox.imaging import _window_numba

            for dtype in KERNEL_DTYPES:
                _window_numba.window_frame(np.zeros((2, 2), dtype=dtype), 1.0, 0.0, 1.0, 2.0, False)
        except Exception:  # noqa: BLE001 - any numba trouble: stay on numpy
            logger.warning("numba window kernel unavailable; using numpy", exc_info=True)
            return _backend
        _impl = _window_numba.window_frame
        _backend = "numba"
        logger.info("numba window kernel ready in %.2f s", time.monotonic() - started)
        return _backend


def normalize(frame: np.ndarray) -> np.ndarray:
    """A C-contiguous, writable, native-endian 2-D array of a kernel dtype."""
    frame = np.asarray(frame)
    if frame.ndim != 2:
        raise ValueError(f"expected one 2-D frame, got shape {frame.shape}")
    dtype = frame.dtype
    if dtype == np.bool_:
        frame = frame.astype(np.uint8)
    elif dtype.kind in "ui" and dtype.itemsize > 4:
        frame = frame.astype(np.float64)
    elif dtype.kind == "f" and dtype.itemsize not in (4, 8):
        frame = frame.astype(np.float64)
    elif dtype.kind not in "uif":
        raise ValueError(f"cannot window pixel data of dtype {dtype}")
    if not frame.dtype.isnative:
        frame = frame.astype(frame.dtype.newbyteorder("="))
    if frame.dtype.kind == "f" and not np.isfinite(frame).all():
        frame = np.nan_to_num(frame, nan=0.0, posinf=0.0, neginf=0.0)
    return np.require(frame, requirements=("C", "W"))


def window_frame(frame: np.ndarray, slope: float, intercept: float, center: float, width: float,
                 invert: bool = False) -> np.ndarray:
    """Rescale (``x * slope + intercept``) and window one frame into uint8.

    See :mod:`slicebox.imaging._window_py` for the function (PS3.3 C.11.2.1.2.1).
    """
    return _impl(normalize(frame), float(slope), float(intercept), float(center), float(width),
                 bool(invert))


def resolve_window(frame: np.ndarray, slope: float, intercept: float,
                   window_min: int, window_max: int,
                   dataset_center: float | None, dataset_width: float | None) -> tuple[float, float]:
    """(center, width) in rescaled units, by precedence.

    1. the request's window when ``window_min < window_max``:
       ``center = min + (max - min) / 2``, ``width = max - min`` (Slicebox 2.0
       used ``(max - min) / 2`` as the center, a bug);
    2. the dataset's first Window Center / Window Width (width >= 1);
    3. the frame's own rescaled minimum and maximum.

    With the linear function, the low end of the window renders 0 and the high
    end 255.
    """
    if window_min < window_max:
        width = float(window_max - window_min)
        return window_min + width / 2.0, width
    if dataset_center is not None and dataset_width is not None and dataset_width >= 1:
        return float(dataset_center), float(dataset_width)
    if frame.size == 0:
        return 0.0, 1.0
    lo = float(frame.min()) * slope + intercept
    hi = float(frame.max()) * slope + intercept
    if lo > hi:  # negative slope
        lo, hi = hi, lo
    width = hi - lo
    if width <= 0:
        # A constant frame: threshold just above its value, so it renders black.
        return lo + 0.5, 1.0
    return lo + width / 2.0, width
