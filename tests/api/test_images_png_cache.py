"""The bounded cache of rendered PNGs: the same view again is the same bytes, never a stale one."""
import io

import numpy as np
from PIL import Image

from factories import make_dataset, make_dicom_bytes


def _upload(client, value: int) -> int:
    pixels = np.full((16, 16), value, dtype=np.uint16)
    pixels[0, 0] = 4000
    r = client.post("/api/images", data=make_dicom_bytes(make_dataset(rows=16, columns=16, pixels=pixels)))
    assert r.status_code == 201, r.get_data(as_text=True)
    return r.get_json()["id"]


def _png(client, image_id, **params):
    r = client.get(f"/api/images/{image_id}/png", query_string=params)
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.data


def _centre(data: bytes) -> int:
    return int(np.asarray(Image.open(io.BytesIO(data)))[8, 8])


def test_the_same_view_again_is_served_from_the_cache(client, services):
    image_id = _upload(client, 2000)
    first = _png(client, image_id, windowmin=0, windowmax=4000, imageheight=32)
    hits = services.state.rendered.hits
    assert _png(client, image_id, windowmin=0, windowmax=4000, imageheight=32) == first
    assert services.state.rendered.hits == hits + 1
    # another window, frame or height is another view
    other = _png(client, image_id, windowmin=2500, windowmax=3500, imageheight=32)
    assert other != first and services.state.rendered.hits == hits + 1


def test_a_deleted_image_is_not_rendered_from_the_cache(client):
    image_id = _upload(client, 1000)
    _png(client, image_id)
    assert client.delete(f"/api/images/{image_id}").status_code == 204
    assert client.get(f"/api/images/{image_id}/png").status_code == 404


def test_an_image_id_used_again_renders_the_new_image(client):
    first = _upload(client, 1000)
    dark = _png(client, first, windowmin=0, windowmax=4000)
    assert client.delete(f"/api/images/{first}").status_code == 204
    second = _upload(client, 3000)  # SQLite may hand out the freed id again
    bright = _png(client, second, windowmin=0, windowmax=4000)
    assert _centre(bright) > _centre(dark)


def test_a_modified_image_renders_with_its_new_window(client):
    image_id = _upload(client, 1000)
    before = _png(client, image_id)
    r = client.put(f"/api/images/{image_id}/modify",
                   json=[{"tagPath": {"tag": 0x00281050}, "value": "1000"},
                         {"tagPath": {"tag": 0x00281051}, "value": "100"}])
    assert r.status_code == 201, r.get_data(as_text=True)
    new_id = r.get_json()["id"]
    assert client.get(f"/api/images/{image_id}/png").status_code == 404
    assert _png(client, new_id) != before


def test_the_cache_stays_within_its_bytes(app_factory):
    from slicebox.lru import ByteLRU

    cache = ByteLRU(1000)
    for i in range(100):
        cache.put(i, bytes(200))
    assert cache.size <= 1000 and len(cache) == 5
    assert cache.get(99) is not None and cache.get(0) is None
    cache.put("huge", bytes(600))  # more than a quarter of the capacity: not kept
    assert cache.get("huge") is None
