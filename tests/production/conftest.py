"""Fixtures for the production set-up: a real S3-compatible server (moto's, one per session)."""
from __future__ import annotations

import pytest
from s3server import MotoServer


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    server = MotoServer(str(tmp_path_factory.mktemp("moto"))).start()
    yield server
    server.stop()


@pytest.fixture
def bucket(moto_server):
    return moto_server.new_bucket()
