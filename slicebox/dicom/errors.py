"""The one exception family raised by the streaming DICOM engine.

Both the compiled engine (``slicebox._speedups.tagstream``) and its pure-Python
twin raise these classes (the selector in :mod:`slicebox.dicom.tagstream`
hands them to the compiled module at import), so callers catch
:class:`DicomStreamError` whichever implementation runs.
"""


class DicomStreamError(ValueError):
    """Input is not a DICOM stream the engine can parse, or an edit is invalid.

    Raised for truncated data, lengths past the end, odd lengths, garbage or
    misplaced tags, invalid VRs, nesting deeper than the limit, and for edit
    plans that cannot be applied (e.g. a value too long for its VR).
    """


class DicomTruncatedError(DicomStreamError):
    """The input ended before the element (or item) that was being read.

    A subclass so that readers working on a prefix of a stream can read more
    and retry; everyone else just sees a :class:`DicomStreamError`.
    """


class DicomDepthError(DicomStreamError):
    """Sequences are nested deeper than the engine's limit (``MAX_DEPTH``)."""


class InflateLimitError(DicomStreamError):
    """Deflated data inflates past the size or ratio limit (a decompression bomb)."""
