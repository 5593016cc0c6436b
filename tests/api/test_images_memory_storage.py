"""Viewing and exporting work on a storage back-end without local paths (memory://)."""
import io
import zipfile

import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from helpers import ADMIN, AuthClient


@pytest.fixture
def memory_client(app_factory):
    return AuthClient(app_factory(STORAGE_URL="memory://").test_client(), ADMIN)


@pytest.mark.parametrize("name", ["CT_small.dcm", "JPEG2000.dcm", "image_dfl.dcm"])
def test_view_and_export_from_memory_storage(memory_client, name):
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} not bundled")
    data = open(path, "rb").read()
    image = memory_client.post("/api/images", data=data, content_type="application/octet-stream").get_json()

    rows = memory_client.get(f"/api/images/{image['id']}/attributes").get_json()
    assert rows[-1]["name"] == "PixelData"
    info = memory_client.get(f"/api/images/{image['id']}/imageinformation").get_json()
    assert info["numberOfFrames"] == 1
    png = memory_client.get(f"/api/images/{image['id']}/png")
    assert png.status_code == 200
    assert Image.open(io.BytesIO(png.data)).mode == "L"

    export_id = memory_client.post("/api/images/export", json=[image["id"]]).get_json()["value"]
    archive = zipfile.ZipFile(io.BytesIO(memory_client.get("/api/images/export",
                                                           query_string={"id": export_id}).data))
    assert [archive.read(n) for n in archive.namelist()] == [data]
