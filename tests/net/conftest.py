"""Fixtures for the DICOM network tests: a box with a running SCP, dcmtk present."""
from __future__ import annotations

import os
import tempfile

import pytest

from dicom_peers import free_port, tool


def _require_dcmtk():
    if not os.access(tool("storescu"), os.X_OK):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but dcmtk is not installed (.ci/run installs it)")
        pytest.skip("dcmtk is not installed (apt-get install dcmtk)")


@pytest.fixture(autouse=True)
def dcmtk():
    _require_dcmtk()


@pytest.fixture
def private_tmp(tmp_path):
    """Python's temporary folder (where pynetdicom spools received datasets) moved into tmp_path."""
    folder = tmp_path / "pytmp"
    folder.mkdir()
    previous = tempfile.tempdir
    tempfile.tempdir = str(folder)
    yield folder
    tempfile.tempdir = previous


@pytest.fixture
def box(app_factory):
    """An app whose SCPs bind to loopback and whose supervisor interval is short."""
    app = app_factory(SCP_HOST="127.0.0.1", SUPERVISOR_INTERVAL=0.2)
    return app.extensions["slicebox"]


@pytest.fixture
def scp(box, private_tmp):
    """A running listener of the box: (services, Scp row, port)."""
    from slicebox.services import scps

    port = free_port()
    row = scps.add_scp(box, "pacs-in", "SLICEBOX", port)
    part = scps.ScpListener(box, row)
    part.start()
    assert part.listening, "the test SCP did not bind"
    yield box, row, port
    part.stop()
