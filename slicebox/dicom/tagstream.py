"""The streaming DICOM engine: pick the compiled module or its Python twin.

``slicebox._speedups.tagstream`` (built from ``ext/tagstream.pyx``) is used
unless it failed to build or ``SLICEBOX_NO_EXTENSIONS=1`` is set; then the
pure-Python twin :mod:`slicebox.dicom._tagstream_py` (the reference
behaviour) is used. Both expose the same functions; see the twin's module
docstring for the full contract.

Public surface
--------------
``read_attributes(source, tags=None, stop_tag=None, transfer_syntax=None)``
    -> ``{tag: Attribute(vr, value)}`` of root-level attributes, early stop.
``list_elements(source, transfer_syntax=None)``
    -> ``[ElementRecord(path, tag, keyword, vr, length, multiplicity, value, depth)]``.
``rewrite(source, destination=None, plan=None, transfer_syntax=None)``
    -> ``RewriteResult(length, transfer_syntax, data)``.
``EditPlan``  remove / remove_mask / remove_private / keep_only / replace / insert.
``DicomStreamError`` (``ValueError``) for every malformed input.
``IMPLEMENTATION`` is ``"compiled"`` or ``"python"``.
"""
from slicebox.dicom import _tagstream_py
from slicebox.dicom.errors import DicomStreamError, DicomTruncatedError

__all__ = [
    "IMPLEMENTATION",
    "DicomStreamError",
    "DicomTruncatedError",
    "EditPlan",
    "Attribute",
    "ElementRecord",
    "RewriteResult",
    "read_attributes",
    "list_elements",
    "rewrite",
    "check_complete",
]

from slicebox import _speedups

try:
    from slicebox._speedups import tagstream as _compiled
except ImportError:  # not built: the twin serves; tests/test_speedups.py reports it
    _compiled = None
if _compiled is not None:
    _compiled.set_error_classes(DicomStreamError, DicomTruncatedError)

# The plan and the record types are plain data shared by both engines.
EditPlan = _tagstream_py.EditPlan
Attribute = _tagstream_py.Attribute
ElementRecord = _tagstream_py.ElementRecord
RewriteResult = _tagstream_py.RewriteResult
# Walking headers to the end is cheap next to the I/O it avoids, so one
# implementation (the twin's) serves both modes.
check_complete = _tagstream_py.check_complete


def available() -> tuple[str, ...]:
    """The implementations this installation has: ``("python",)`` or ``("python", "compiled")``."""
    return ("python", "compiled") if _compiled is not None else ("python",)


def select(implementation: str) -> str:
    """Serve ``read_attributes``/``list_elements``/``rewrite`` from ``"compiled"`` or ``"python"``.

    Returns the implementation selected before.  Callers reach the engine as
    ``tagstream.rewrite(...)`` (module attributes), so the switch holds for
    everything; tests use it to run the API suite on both engines.
    """
    global _impl, IMPLEMENTATION, read_attributes, list_elements, rewrite
    if implementation not in available():
        raise ValueError(f"engine implementation {implementation!r} is not available")
    previous = globals().get("IMPLEMENTATION")
    _impl = _compiled if implementation == "compiled" else _tagstream_py
    IMPLEMENTATION = implementation
    read_attributes = _impl.read_attributes
    list_elements = _impl.list_elements
    rewrite = _impl.rewrite
    return previous


select("python" if _compiled is None or _speedups.disabled() else "compiled")
