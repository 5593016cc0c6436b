"""The numba kernel and the numpy twin give identical bytes; the window function itself."""
import numpy as np
import pytest

from slicebox.imaging import _window_py, window

numba_window = pytest.importorskip("slicebox.imaging._window_numba")

RNG = np.random.default_rng(1234)

CASES = [
    # dtype, low, high, slope, intercept, center, width, invert
    (np.uint8, 0, 256, 1.0, 0.0, 128.0, 256.0, False),
    (np.int8, -128, 128, 1.0, 0.0, 0.0, 100.0, False),
    (np.uint16, 0, 4096, 1.0, -1024.0, 40.0, 400.0, False),        # CT-like
    (np.int16, -2048, 2048, 1.0, 0.0, 40.0, 80.0, False),           # signed
    (np.int16, -2048, 2048, 2.5, -100.0, 300.0, 1500.0, False),     # slope/intercept
    (np.uint16, 0, 4096, 1.0, 0.0, 1000.0, 1000.0, True),           # MONOCHROME1
    (np.int16, -500, 500, -1.0, 10.0, 0.0, 300.0, True),            # negative slope, inverted
    (np.uint32, 0, 2 ** 31, 1.0, 0.0, 1e9, 1e9, False),
    (np.int32, -2 ** 30, 2 ** 30, 0.001, 5.0, 0.0, 1e5, False),
    (np.float32, -1000, 1000, 1.0, 0.0, 0.0, 1.0, False),           # width 1: threshold
    (np.float64, -1.0, 1.0, 1.0, 0.0, 0.25, 0.5, False),            # width < 1
    (np.float64, -1000, 1000, 1.0, 0.0, 10.0, 2.0, True),
]


def _frame(dtype, low, high):
    if np.dtype(dtype).kind == "f":
        return RNG.uniform(low, high, size=(37, 53)).astype(dtype)
    return RNG.integers(low, high, size=(37, 53)).astype(dtype)


@pytest.mark.parametrize("dtype,low,high,slope,intercept,center,width,invert", CASES)
def test_numba_and_numpy_twins_are_identical(dtype, low, high, slope, intercept, center, width, invert):
    frame = window.normalize(_frame(dtype, low, high))
    a = _window_py.window_frame(frame, slope, intercept, center, width, invert)
    b = numba_window.window_frame(frame, slope, intercept, center, width, invert)
    assert a.dtype == b.dtype == np.uint8
    assert a.shape == b.shape == frame.shape
    np.testing.assert_array_equal(a, b)
    # the cases are chosen so that both ends of the output range are hit
    assert a.min() == 0 and a.max() == 255


def test_twins_agree_on_exact_window_edges():
    # Values on and next to the thresholds, where rounding differences would show.
    center, width = 1000.0, 400.0
    edges = np.arange(795, 1206, dtype=np.int16).reshape(1, -1)
    for invert in (False, True):
        np.testing.assert_array_equal(_window_py.window_frame(edges, 1.0, 0.0, center, width, invert),
                                      numba_window.window_frame(edges, 1.0, 0.0, center, width, invert))


def test_window_ends_render_black_and_white():
    lo, hi = 100, 200
    center, width = window.resolve_window(np.zeros((1, 1)), 1.0, 0.0, lo, hi, None, None)
    assert (center, width) == (150.0, 100.0)
    values = np.array([[0, 99, 100, 150, 199, 200, 1000]], dtype=np.int16)
    out = window.window_frame(values, 1.0, 0.0, center, width)
    assert out[0, :3].tolist() == [0, 0, 0]
    assert out[0, 5:].tolist() == [255, 255]
    assert 0 < out[0, 3] < 255
    assert out[0, 3] in (127, 128, 129)
    inverted = window.window_frame(values, 1.0, 0.0, center, width, invert=True)
    np.testing.assert_array_equal(inverted, 255 - out)


def test_slope_and_intercept_apply_before_the_window():
    stored = np.array([[0, 50, 100]], dtype=np.uint16)
    # rescaled: -1000, 0, 1000; window -1000..1000
    out = window.window_frame(stored, 20.0, -1000.0, 0.0, 2000.0)
    assert out[0, 0] == 0 and out[0, 2] == 255 and 126 <= out[0, 1] <= 129


def test_resolve_window_precedence():
    frame = np.array([[10, 20], [30, 50]], dtype=np.int16)
    # request wins when min < max (center is min + half the width, not half the width)
    assert window.resolve_window(frame, 1.0, 0.0, 1000, 3000, 40.0, 400.0) == (2000.0, 2000.0)
    # then the dataset's window
    assert window.resolve_window(frame, 1.0, 0.0, 0, 0, 40.0, 400.0) == (40.0, 400.0)
    assert window.resolve_window(frame, 1.0, 0.0, 5, 5, 40.0, 400.0) == (40.0, 400.0)
    # then the frame's rescaled min/max
    assert window.resolve_window(frame, 2.0, 100.0, 0, 0, None, None) == (160.0, 80.0)
    assert window.resolve_window(frame, -1.0, 0.0, 0, 0, None, None) == (-30.0, 40.0)


def test_min_max_window_spans_full_range():
    frame = np.array([[-300, 0, 1700]], dtype=np.int16)
    center, width = window.resolve_window(frame, 1.0, 0.0, 0, 0, None, None)
    out = window.window_frame(frame, 1.0, 0.0, center, width)
    assert out[0, 0] == 0 and out[0, 2] == 255


def test_constant_frame_is_black_not_an_error():
    frame = np.full((4, 4), 7, dtype=np.uint16)
    center, width = window.resolve_window(frame, 1.0, 0.0, 0, 0, None, None)
    assert window.window_frame(frame, 1.0, 0.0, center, width).max() == 0


def test_normalize_makes_kernel_friendly_arrays():
    big_endian = np.arange(6, dtype=">i2").reshape(2, 3)
    out = window.normalize(big_endian)
    assert out.dtype == np.int16 and out.dtype.isnative
    assert out.tolist() == big_endian.tolist()
    readonly = np.frombuffer(bytes(8), dtype=np.uint16).reshape(2, 2)
    assert window.normalize(readonly).flags.writeable
    assert window.normalize(np.ones((2, 2), dtype=np.int64)).dtype == np.float64
    assert window.normalize(np.array([[np.nan, 1.0]])).tolist() == [[0.0, 1.0]]
    with pytest.raises(ValueError):
        window.normalize(np.zeros((2, 2, 2)))


def test_warm_up_selects_numba():
    assert window.warm_up() == "numba"
    assert window.backend() == "numba"
