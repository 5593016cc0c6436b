"""Run the engine tests on both implementations (compiled and pure Python)."""
import os

import pytest

from slicebox.dicom import _tagstream_py


def _implementations():
    impls = [pytest.param(_tagstream_py, id="python")]
    if os.environ.get("SLICEBOX_NO_EXTENSIONS") != "1":
        from slicebox.dicom import tagstream  # installs the shared error classes

        if tagstream.IMPLEMENTATION == "compiled":
            impls.append(pytest.param(tagstream._impl, id="compiled"))
    return impls


@pytest.fixture(params=_implementations())
def engine(request):
    """One engine module: ``read_attributes``, ``list_elements``, ``rewrite``."""
    return request.param
