"""Series tags and series types on series, through HTTP (Meta Data tag)."""
import pytest


@pytest.fixture
def two_series(upload):
    """Two series of one study; returns their ids."""
    ids = []
    for uid in ("1.2.9.1", "1.2.9.2"):
        r = upload(StudyInstanceUID="1.2.9", SeriesInstanceUID=uid)
        assert r.status_code == 201
        ids.append(r.get_json()["seriesId"])
    return ids


def add_series_type(services, name):
    # Series-type creation belongs to the Series Types area: insert the row directly.
    with services.db.transaction() as conn:
        return conn.scalar("INSERT INTO series_types (name) VALUES (?) RETURNING id", (name,))


# -- series tags -----------------------------------------------------------------------------

def test_add_tag_creates_it_once_and_lists_it(client, two_series):
    a, b = two_series
    r = client.post(f"/api/metadata/series/{a}/seriestags", json={"name": "Research"})
    assert r.status_code == 201
    tag = r.get_json()
    assert tag["name"] == "Research" and isinstance(tag["id"], int)
    # same name on another series: the same tag, not a new one
    again = client.post(f"/api/metadata/series/{b}/seriestags", json={"name": "Research"})
    assert again.status_code == 201 and again.get_json() == tag
    # same tag twice on a series: still one entry
    assert client.post(f"/api/metadata/series/{a}/seriestags", json={"name": "Research"}).get_json() == tag
    assert client.get(f"/api/metadata/series/{a}/seriestags").get_json() == [tag]
    assert client.get("/api/metadata/seriestags").get_json() == [tag]


def test_series_tags_of_series_and_all_tags_in_use(client, two_series):
    a, b = two_series
    t1 = client.post(f"/api/metadata/series/{a}/seriestags", json={"name": "alpha"}).get_json()
    t2 = client.post(f"/api/metadata/series/{a}/seriestags", json={"name": "beta"}).get_json()
    t3 = client.post(f"/api/metadata/series/{b}/seriestags", json={"name": "gamma"}).get_json()
    assert client.get(f"/api/metadata/series/{a}/seriestags").get_json() == [t1, t2]
    assert client.get(f"/api/metadata/series/{b}/seriestags").get_json() == [t3]
    assert client.get("/api/metadata/seriestags").get_json() == [t1, t2, t3]


def test_remove_tag_from_series(client, two_series):
    a, b = two_series
    tag = client.post(f"/api/metadata/series/{a}/seriestags", json={"name": "temp"}).get_json()
    client.post(f"/api/metadata/series/{b}/seriestags", json={"name": "temp"})
    assert client.delete(f"/api/metadata/series/{a}/seriestags/{tag['id']}").status_code == 204
    assert client.get(f"/api/metadata/series/{a}/seriestags").get_json() == []
    assert client.get("/api/metadata/seriestags").get_json() == [tag]  # still used by b
    assert client.delete(f"/api/metadata/series/{b}/seriestags/{tag['id']}").status_code == 204
    assert client.get("/api/metadata/seriestags").get_json() == []      # no longer in use
    # removing again, or an unknown tag, is a no-op
    assert client.delete(f"/api/metadata/series/{b}/seriestags/{tag['id']}").status_code == 204
    assert client.delete(f"/api/metadata/series/{b}/seriestags/999999").status_code == 204


def test_tag_name_is_trimmed_and_reused(client, two_series):
    a, b = two_series
    tag = client.post(f"/api/metadata/series/{a}/seriestags", json={"name": "  spaced "}).get_json()
    assert tag["name"] == "spaced"
    assert client.post(f"/api/metadata/series/{b}/seriestags", json={"name": "spaced"}).get_json() == tag


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "   "}, {"name": 5}, {"id": 3}])
def test_tag_without_name_is_400(client, services, two_series, body):
    r = client.post(f"/api/metadata/series/{two_series[0]}/seriestags", json=body)
    assert r.status_code == 400
    assert "name" in r.get_json()["error"]
    with services.db.connection() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM series_tags") == 0


def test_tags_of_unknown_series_404(client, services, two_series):
    assert client.get("/api/metadata/series/999999/seriestags").status_code == 404
    r = client.post("/api/metadata/series/999999/seriestags", json={"name": "x"})
    assert r.status_code == 404
    with services.db.connection() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM series_tags") == 0


def test_tags_of_deleted_series_are_not_listed(client, upload):
    r = upload(SeriesInstanceUID="1.2.9.7")
    image, series = r.get_json()["id"], r.get_json()["seriesId"]
    client.post(f"/api/metadata/series/{series}/seriestags", json={"name": "gone"})
    assert client.delete(f"/api/images/{image}").status_code == 204
    assert client.get("/api/metadata/seriestags").get_json() == []


def test_plain_user_can_tag(user_client, two_series):
    r = user_client.post(f"/api/metadata/series/{two_series[0]}/seriestags", json={"name": "mine"})
    assert r.status_code == 201


# -- series types on series ------------------------------------------------------------------

def test_assign_list_and_remove_series_types(client, services, two_series):
    a, b = two_series
    t1, t2 = add_series_type(services, "Head CT"), add_series_type(services, "Chest CT")
    assert client.get(f"/api/metadata/series/{a}/seriestypes").get_json() == []
    assert client.put(f"/api/metadata/series/{a}/seriestypes/{t1}").status_code == 204
    assert client.put(f"/api/metadata/series/{a}/seriestypes/{t1}").status_code == 204  # no-op
    assert client.put(f"/api/metadata/series/{a}/seriestypes/{t2}").status_code == 204
    assert client.get(f"/api/metadata/series/{a}/seriestypes").get_json() == [
        {"id": t1, "name": "Head CT"}, {"id": t2, "name": "Chest CT"}]
    assert client.delete(f"/api/metadata/series/{a}/seriestypes/{t1}").status_code == 204
    assert client.get(f"/api/metadata/series/{a}/seriestypes").get_json() == [{"id": t2, "name": "Chest CT"}]
    client.put(f"/api/metadata/series/{a}/seriestypes/{t1}")
    client.put(f"/api/metadata/series/{b}/seriestypes/{t1}")
    assert client.delete(f"/api/metadata/series/{a}/seriestypes").status_code == 204
    assert client.get(f"/api/metadata/series/{a}/seriestypes").get_json() == []
    # the other series keeps its type
    assert client.get(f"/api/metadata/series/{b}/seriestypes").get_json() == [{"id": t1, "name": "Head CT"}]


def test_series_types_404s(client, services, two_series):
    t = add_series_type(services, "T")
    assert client.put(f"/api/metadata/series/999999/seriestypes/{t}").status_code == 404
    r = client.put(f"/api/metadata/series/{two_series[0]}/seriestypes/999999")
    assert r.status_code == 404
    assert "series type" in r.get_json()["error"]
    assert client.get("/api/metadata/series/999999/seriestypes").status_code == 404
    with services.db.connection() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM series_series_types") == 0


def test_series_types_of_many_series(client, services, two_series):
    a, b = two_series
    t1, t2 = add_series_type(services, "One"), add_series_type(services, "Two")
    client.put(f"/api/metadata/series/{a}/seriestypes/{t1}")
    client.put(f"/api/metadata/series/{a}/seriestypes/{t2}")
    client.put(f"/api/metadata/series/{b}/seriestypes/{t2}")
    r = client.post("/api/seriestypes/series/query", json={"ids": [b, a, 999999]})
    assert r.status_code == 200
    assert r.get_json() == {"seriesidseriestypes": [
        {"seriesid": a, "seriestype": {"id": t1, "name": "One"}},
        {"seriesid": a, "seriestype": {"id": t2, "name": "Two"}},
        {"seriesid": b, "seriestype": {"id": t2, "name": "Two"}},
    ]}
    assert client.post("/api/seriestypes/series/query", json={"ids": []}).get_json() == {
        "seriesidseriestypes": []}


@pytest.mark.parametrize("body", [{}, {"ids": "1"}, {"ids": [1, "2"]}, [1, 2]])
def test_series_types_query_bad_body_is_400(client, two_series, body):
    assert client.post("/api/seriestypes/series/query", json=body).status_code == 400
