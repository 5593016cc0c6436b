"""One decoded frame -> display pixels (uint8) -> PNG bytes (Pillow).

Monochrome frames go through rescale + window (:mod:`slicebox.imaging.window`),
MONOCHROME1 inverted; colour frames (RGB after YCbCr conversion or palette
lookup) are shown as stored, scaled to 8 bits.
"""
from __future__ import annotations

import io
import logging

import numpy as np
from PIL import Image

from slicebox.imaging import window

logger = logging.getLogger(__name__)

#: Largest output height a request may ask for; keeps a single request from
#: allocating gigabytes.
MAX_IMAGE_HEIGHT = 8192


def display_pixels(frame: np.ndarray, *, photometric: str, bits_stored: int, slope: float = 1.0,
                   intercept: float = 0.0, window_min: int = 0, window_max: int = 0,
                   dataset_center: float | None = None, dataset_width: float | None = None) -> np.ndarray:
    """The 8-bit picture of one decoded frame: (rows, cols) grey or (rows, cols, 3) RGB.

    Parameters
    ----------
    frame
        Decoded pixels, (rows, cols) or (rows, cols, samples).
    photometric
        Photometric Interpretation (PS3.3 C.7.6.3.1.2); MONOCHROME1 is inverted.
    bits_stored
        Bits Stored, used to scale colour samples wider than 8 bits.
    window_min, window_max
        The request's window; used when ``window_min < window_max``.
    dataset_center, dataset_width
        The dataset's first Window Center / Width (rescaled units), if any.
    """
    if frame.ndim == 3:
        if frame.shape[2] == 1:
            frame = frame[:, :, 0]
        else:
            return _color_to_uint8(frame[:, :, :3], bits_stored)
    mono = window.normalize(frame)
    center, width = window.resolve_window(mono, slope, intercept, window_min, window_max,
                                          dataset_center, dataset_width)
    return window.window_frame(mono, slope, intercept, center, width, photometric == "MONOCHROME1")


def _color_to_uint8(rgb: np.ndarray, bits_stored: int) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return np.ascontiguousarray(rgb)
    if rgb.dtype.kind == "f":
        return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
    # Palette lookups fill the whole sample (e.g. 16-bit LUT entries); RGB data fills bits_stored.
    bits = rgb.dtype.itemsize * 8
    if 8 < bits_stored <= bits and int(rgb.max(initial=0)) < (1 << bits_stored):
        bits = bits_stored
    shift = max(bits - 8, 0)
    return (np.clip(rgb.astype(np.int64), 0, None) >> shift).clip(0, 255).astype(np.uint8)


def encode_png(pixels: np.ndarray, image_height: int = 0, compress_level: int = 1) -> bytes:
    """PNG bytes of uint8 ``pixels``; ``image_height`` > 0 resizes (bilinear, aspect kept)."""
    # uint8 (rows, cols) becomes mode L, (rows, cols, 3) mode RGB.
    img = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))
    rows, cols = pixels.shape[:2]
    if image_height and image_height != rows and rows > 0:
        width = max(1, round(cols * image_height / rows))
        img = img.resize((width, image_height), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=int(compress_level))
    return buf.getvalue()
