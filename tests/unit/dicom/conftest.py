"""Run the engine tests on both implementations (compiled and pure Python)."""
import pytest

from slicebox.dicom import _tagstream_py


def _implementations():
    impls = [pytest.param(_tagstream_py, id="python")]
    from slicebox import _speedups
    from slicebox.dicom import tagstream  # installs the shared error classes

    if not _speedups.disabled() and "compiled" in tagstream.available():
        impls.append(pytest.param(tagstream._compiled, id="compiled"))
    return impls


@pytest.fixture(params=_implementations())
def engine(request):
    """One engine module: ``read_attributes``, ``list_elements``, ``rewrite``."""
    return request.param
