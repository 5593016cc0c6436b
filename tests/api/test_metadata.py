"""Meta Data through HTTP: lists, paging, ordering, filters, queries, single items, images of
a patient/study, series source.  Series tags and types are in test_metadata_labels.py."""
import pytest
from factories import make_dicom_bytes

SERIES = {
    # key: (patient name, patient id, study uid, study description, series uid, modality,
    #       series description, number of images)
    "a_mr": ("Alpha^Anna", "A1", "1.2.3.1", "Brain", "1.2.3.1.1", "MR", "T1 axial", 2),
    "a_ct": ("Alpha^Anna", "A1", "1.2.3.1", "Brain", "1.2.3.1.2", "CT", "Head plain", 1),
    "b_ct": ("beta^bob", "B1", "1.2.3.2", "Chest", "1.2.3.2.1", "CT", "Lung window", 1),
    "b_pt": ("beta^bob", "B1", "1.2.3.3", "Whole body", "1.2.3.3.1", "PT", "FDG", 1),
    "g_us": ("Gamma_100%", "G1", "1.2.3.4", "Abdomen", "1.2.3.4.1", "US", "Liver", 1),
}


@pytest.fixture
def tree(upload, client):
    """Five series under three patients; returns ids by key plus patient/study ids."""
    ids = {"series": {}, "images": {}, "patients": {}, "studies": {}}
    for key, (pname, pid, study_uid, sdesc, series_uid, modality, desc, n) in SERIES.items():
        for _ in range(n):
            r = upload(PatientName=pname, PatientID=pid, StudyInstanceUID=study_uid,
                       StudyDescription=sdesc, SeriesInstanceUID=series_uid, Modality=modality,
                       SeriesDescription=desc)
            assert r.status_code == 201, r.get_json()
            image = r.get_json()
            ids["images"].setdefault(key, []).append(image["id"])
            ids["series"][key] = image["seriesId"]
        series = client.get(f"/api/metadata/series/{ids['series'][key]}").get_json()
        study = client.get(f"/api/metadata/studies/{series['studyId']}").get_json()
        ids["studies"][study_uid] = study["id"]
        ids["patients"][pname] = study["patientId"]
    return ids


def names(resp):
    assert resp.status_code == 200, resp.get_json()
    return [p["patientName"]["value"] for p in resp.get_json()]


def ids_of(resp):
    assert resp.status_code == 200, resp.get_json()
    return [x["id"] for x in resp.get_json()]


def set_source(services, series_id, source_type, source_id, name="remote"):
    with services.db.transaction() as conn:
        conn.execute("UPDATE series_sources SET source_type = ?, source_id = ?, source_name = ? "
                     "WHERE series_id = ?", (source_type, source_id, name, series_id))


# -- lists, paging, ordering -------------------------------------------------------------

def test_list_patients_json_shape_and_default_order(client, tree):
    r = client.get("/api/metadata/patients")
    assert names(r) == ["Alpha^Anna", "beta^bob", "Gamma_100%"]
    first = r.get_json()[0]
    assert first == {"id": tree["patients"]["Alpha^Anna"], "patientName": {"value": "Alpha^Anna"},
                     "patientID": {"value": "A1"}, "patientBirthDate": {"value": "19700101"},
                     "patientSex": {"value": "M"}}


def test_patients_paging(client, tree):
    all_ids = ids_of(client.get("/api/metadata/patients"))
    assert ids_of(client.get("/api/metadata/patients?startindex=1&count=1")) == all_ids[1:2]
    assert ids_of(client.get("/api/metadata/patients?startindex=2&count=5")) == all_ids[2:]
    assert ids_of(client.get("/api/metadata/patients?startindex=3")) == []
    assert ids_of(client.get("/api/metadata/patients?count=0")) == []


@pytest.mark.parametrize("query", ["startindex=-1", "count=abc", "orderascending=maybe",
                                   "count=100000"])
def test_bad_paging_args_are_400(client, tree, query):
    r = client.get(f"/api/metadata/patients?{query}")
    assert r.status_code == 400
    assert r.get_json()["error"]


def test_order_patients_by_id_both_directions(client, tree):
    asc = ids_of(client.get("/api/metadata/patients?orderby=id&orderascending=true"))
    desc = ids_of(client.get("/api/metadata/patients?orderby=id&orderascending=false"))
    assert asc == sorted(asc) and desc == asc[::-1]


def test_order_patients_by_name_both_directions(client, tree):
    # Byte order on both databases: upper case sorts before lower case.
    assert names(client.get("/api/metadata/patients?orderby=patientID")) == [
        "Alpha^Anna", "beta^bob", "Gamma_100%"]
    assert names(client.get("/api/metadata/patients?orderby=patientID&orderascending=false")) == [
        "Gamma_100%", "beta^bob", "Alpha^Anna"]


def test_equal_sort_values_are_ordered_by_id(client, tree):
    # All patients have the same sex: the id breaks ties, reversed with the direction.
    asc = ids_of(client.get("/api/metadata/patients?orderby=patientSex"))
    desc = ids_of(client.get("/api/metadata/patients?orderby=patientSex&orderascending=false"))
    assert asc == sorted(asc) and desc == sorted(asc, reverse=True)
    page = ids_of(client.get("/api/metadata/patients?orderby=patientSex&startindex=1&count=1"))
    assert page == asc[1:2]


@pytest.mark.parametrize("orderby", ["id; DROP TABLE patients", "patient_name", "nonsense",
                                     "patientName DESC", "(SELECT 1)"])
def test_hostile_or_unknown_orderby_is_400_and_tables_survive(client, services, tree, orderby):
    r = client.get("/api/metadata/patients", query_string={"orderby": orderby})
    assert r.status_code == 400
    assert "orderby" in r.get_json()["error"]
    with services.db.connection() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM patients") == 3
    assert len(client.get("/api/metadata/patients").get_json()) == 3


def test_orderby_in_query_body_is_validated_too(client, services, tree):
    r = client.post("/api/metadata/series/query", json={
        "startIndex": 0, "count": 10, "queryProperties": [],
        "order": {"orderBy": "id; DROP TABLE series", "orderAscending": True}})
    assert r.status_code == 400
    with services.db.connection() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM series") == 5


def test_studies_of_patient(client, tree):
    bob = tree["patients"]["beta^bob"]
    r = client.get(f"/api/metadata/studies?patientid={bob}")
    assert r.status_code == 200
    studies = r.get_json()
    assert sorted(s["studyInstanceUID"]["value"] for s in studies) == ["1.2.3.2", "1.2.3.3"]
    assert all(s["patientId"] == bob for s in studies)
    assert set(studies[0]) == {"id", "patientId", "studyInstanceUID", "studyDescription", "studyDate",
                               "studyID", "accessionNumber", "patientAge"}
    assert len(ids_of(client.get(f"/api/metadata/studies?patientid={bob}&count=1"))) == 1
    desc = client.get(f"/api/metadata/studies?patientid={bob}&orderby=studyDescription"
                      "&orderascending=false").get_json()
    assert [s["studyDescription"]["value"] for s in desc] == ["Whole body", "Chest"]


def test_list_without_required_parent_is_400(client, tree):
    for path in ("studies", "series", "images"):
        r = client.get(f"/api/metadata/{path}")
        assert r.status_code == 400, path
    assert client.get("/api/metadata/series?studyid=x").status_code == 400


def test_unknown_parent_gives_empty_list(client, tree):
    assert client.get("/api/metadata/studies?patientid=999999").get_json() == []
    assert client.get("/api/metadata/series?studyid=999999").get_json() == []
    assert client.get("/api/metadata/images?seriesid=999999").get_json() == []


def test_series_of_study(client, tree):
    study = tree["studies"]["1.2.3.1"]
    r = client.get(f"/api/metadata/series?studyid={study}")
    assert sorted(ids_of(r)) == sorted([tree["series"]["a_mr"], tree["series"]["a_ct"]])
    series = r.get_json()[0]
    assert series["studyId"] == study
    assert series["seriesInstanceUID"] == {"value": "1.2.3.1.1"}
    assert series["modality"] == {"value": "MR"}
    by_modality = client.get(f"/api/metadata/series?studyid={study}&orderby=modality").get_json()
    assert [s["modality"]["value"] for s in by_modality] == ["CT", "MR"]


def test_images_of_series_paging_and_order(client, tree):
    series = tree["series"]["a_mr"]
    images = tree["images"]["a_mr"]
    r = client.get(f"/api/metadata/images?seriesid={series}")
    assert ids_of(r) == sorted(images)
    assert r.get_json()[0]["seriesId"] == series
    assert ids_of(client.get(f"/api/metadata/images?seriesid={series}&orderby=id&orderascending=false")) \
        == sorted(images, reverse=True)
    assert ids_of(client.get(f"/api/metadata/images?seriesid={series}&startindex=1&count=1")) \
        == sorted(images)[1:]


def test_flat_series_list_and_shape(client, tree):
    r = client.get("/api/metadata/flatseries?orderby=modality")
    assert r.status_code == 200
    flat = r.get_json()
    assert [f["series"]["modality"]["value"] for f in flat] == ["CT", "CT", "MR", "PT", "US"]
    # equal modality: ordered by series id
    assert flat[0]["id"] < flat[1]["id"]
    mr = flat[2]
    assert mr["id"] == mr["series"]["id"] == tree["series"]["a_mr"]
    assert mr["patient"]["patientName"] == {"value": "Alpha^Anna"}
    assert mr["study"]["studyDescription"] == {"value": "Brain"}
    assert mr["study"]["id"] == mr["series"]["studyId"]
    assert mr["patient"]["id"] == mr["study"]["patientId"]
    page = client.get("/api/metadata/flatseries?orderby=patientName&orderascending=false&count=2")
    assert [f["patient"]["patientName"]["value"] for f in page.get_json()] == ["beta^bob", "beta^bob"]


# -- free-text filter -----------------------------------------------------------------------

def test_filter_patients_case_insensitive_substring(client, tree):
    assert names(client.get("/api/metadata/patients?filter=ALPHA")) == ["Alpha^Anna"]
    assert names(client.get("/api/metadata/patients?filter=b1")) == ["beta^bob"]  # patient ID
    assert names(client.get("/api/metadata/patients?filter=zzz")) == []


def test_filter_escapes_like_wildcards(client, tree):
    # "_" and "%" are literal characters, not LIKE wildcards
    assert names(client.get("/api/metadata/patients", query_string={"filter": "_"})) == ["Gamma_100%"]
    assert names(client.get("/api/metadata/patients", query_string={"filter": "%"})) == ["Gamma_100%"]
    assert names(client.get("/api/metadata/patients", query_string={"filter": "a_1"})) == ["Gamma_100%"]
    assert names(client.get("/api/metadata/patients", query_string={"filter": "a%"})) == []
    assert names(client.get("/api/metadata/patients", query_string={"filter": "'; DROP TABLE x;--"})) == []


def test_filter_flat_series_over_all_levels(client, tree):
    def keys(text):
        r = client.get("/api/metadata/flatseries", query_string={"filter": text})
        return sorted(ids_of(r))

    assert keys("lung") == [tree["series"]["b_ct"]]                        # series description
    assert keys("WHOLE") == [tree["series"]["b_pt"]]                       # study description
    assert keys("anna") == sorted([tree["series"]["a_mr"], tree["series"]["a_ct"]])  # patient name
    assert keys("ct") == sorted([tree["series"]["a_ct"], tree["series"]["b_ct"]])   # modality


def test_filter_images_and_series(client, tree):
    study = tree["studies"]["1.2.3.1"]
    assert ids_of(client.get(f"/api/metadata/series?studyid={study}&filter=axial")) == [tree["series"]["a_mr"]]
    series = tree["series"]["a_mr"]
    assert ids_of(client.get(f"/api/metadata/images?seriesid={series}&filter=primary")) \
        == sorted(tree["images"]["a_mr"])


# -- series filters: sources, series types, series tags ----------------------------------------

def test_sources_filter(client, services, tree):
    set_source(services, tree["series"]["b_pt"], "box", 7)
    set_source(services, tree["series"]["g_us"], "scp", 3)
    assert names(client.get("/api/metadata/patients?sources=box:7")) == ["beta^bob"]
    assert names(client.get("/api/metadata/patients?sources=box:7,scp:3")) == ["beta^bob", "Gamma_100%"]
    assert names(client.get("/api/metadata/patients?sources=box:8")) == []
    bob = tree["patients"]["beta^bob"]
    studies = client.get(f"/api/metadata/studies?patientid={bob}&sources=box:7").get_json()
    assert [s["studyInstanceUID"]["value"] for s in studies] == ["1.2.3.3"]
    assert ids_of(client.get("/api/metadata/flatseries?sources=box:7")) == [tree["series"]["b_pt"]]
    user_series = ids_of(client.get("/api/metadata/flatseries?sources=user:1&orderby=id"))
    assert tree["series"]["b_pt"] not in user_series and len(user_series) == 3


@pytest.mark.parametrize("sources", ["box", "box:", "box:x", "box:1,", ":1", "planet:1", "box:1;user:2",
                                     "box:1:2"])
def test_malformed_sources_is_400(client, tree, sources):
    r = client.get("/api/metadata/patients", query_string={"sources": sources})
    assert r.status_code == 400
    assert "sources" in r.get_json()["error"]


@pytest.mark.parametrize("param", ["seriestypes", "seriestags"])
def test_malformed_id_list_is_400(client, tree, param):
    r = client.get("/api/metadata/flatseries", query_string={param: "1,two"})
    assert r.status_code == 400
    assert param in r.get_json()["error"]


def add_series_type(services, name):
    with services.db.transaction() as conn:
        return conn.scalar("INSERT INTO series_types (name) VALUES (?) RETURNING id", (name,))


def test_series_type_and_tag_filters_or_within_and_across(client, services, tree):
    s = tree["series"]
    t1, t2 = add_series_type(services, "T1"), add_series_type(services, "T2")
    for series_id, type_id in ((s["a_mr"], t1), (s["b_ct"], t2), (s["g_us"], t1)):
        assert client.put(f"/api/metadata/series/{series_id}/seriestypes/{type_id}").status_code == 204
    tag = client.post(f"/api/metadata/series/{s['a_mr']}/seriestags", json={"name": "research"}).get_json()
    client.post(f"/api/metadata/series/{s['b_pt']}/seriestags", json={"name": "research"})

    def flat(query):
        return sorted(ids_of(client.get(f"/api/metadata/flatseries?{query}")))

    assert flat(f"seriestypes={t1}") == sorted([s["a_mr"], s["g_us"]])
    assert flat(f"seriestypes={t1},{t2}") == sorted([s["a_mr"], s["g_us"], s["b_ct"]])  # OR
    assert flat(f"seriestags={tag['id']}") == sorted([s["a_mr"], s["b_pt"]])
    assert flat(f"seriestypes={t1}&seriestags={tag['id']}") == [s["a_mr"]]             # AND
    # patients: at least one series matching all kinds
    assert names(client.get(f"/api/metadata/patients?seriestypes={t1}&seriestags={tag['id']}")) \
        == ["Alpha^Anna"]
    # bob has a T2 series and a tagged series, but no single series with both
    assert names(client.get(f"/api/metadata/patients?seriestypes={t2}&seriestags={tag['id']}")) == []
    assert names(client.get(f"/api/metadata/patients?seriestypes={t2}")) == ["beta^bob"]
    bob = tree["patients"]["beta^bob"]
    assert [x["studyInstanceUID"]["value"] for x in client.get(
        f"/api/metadata/studies?patientid={bob}&seriestags={tag['id']}").get_json()] == ["1.2.3.3"]
    study = tree["studies"]["1.2.3.1"]
    assert ids_of(client.get(f"/api/metadata/series?studyid={study}&seriestypes={t1}")) == [s["a_mr"]]


# -- queries ----------------------------------------------------------------------------------

def q(props, start=0, count=20, order=None, filters=None):
    body = {"startIndex": start, "count": count,
            "queryProperties": [{"propertyName": n, "operator": o, "propertyValue": v} for n, o, v in props]}
    if order is not None:
        body["order"] = order
    if filters is not None:
        body["filters"] = filters
    return body


def test_query_patients_equals_and_like(client, tree):
    r = client.post("/api/metadata/patients/query", json=q([("patientName", "=", "beta^bob")]))
    assert names(r) == ["beta^bob"]
    assert names(client.post("/api/metadata/patients/query",
                             json=q([("patientName", "=", "BETA^BOB")]))) == []  # = is exact
    assert names(client.post("/api/metadata/patients/query",
                             json=q([("patientName", "like", "A^a")]))) == ["Alpha^Anna"]
    assert names(client.post("/api/metadata/patients/query",
                             json=q([("patientName", "like", "a"), ("patientID", "=", "G1")]))) \
        == ["Gamma_100%"]


def test_query_empty_properties_pages_and_orders(client, tree):
    r = client.post("/api/metadata/patients/query",
                    json=q([], start=1, count=2, order={"orderBy": "patientName", "orderAscending": False}))
    assert names(r) == ["Gamma_100%", "Alpha^Anna"]


def test_query_series_by_parent_properties(client, tree):
    s = tree["series"]
    r = client.post("/api/metadata/series/query", json=q([("patientName", "like", "bob")]))
    assert sorted(ids_of(r)) == sorted([s["b_ct"], s["b_pt"]])
    r = client.post("/api/metadata/series/query",
                    json=q([("patientName", "like", "bob"), ("modality", "=", "PT")]))
    assert ids_of(r) == [s["b_pt"]]
    r = client.post("/api/metadata/series/query", json=q([("studyDescription", "=", "Brain")],
                                                         order={"orderBy": "modality", "orderAscending": True}))
    assert ids_of(r) == [s["a_ct"], s["a_mr"]]


def test_query_studies_images_flatseries(client, tree):
    r = client.post("/api/metadata/studies/query", json=q([("patientID", "=", "B1")],
                                                          order={"orderBy": "studyInstanceUID",
                                                                 "orderAscending": False}))
    assert [x["studyInstanceUID"]["value"] for x in r.get_json()] == ["1.2.3.3", "1.2.3.2"]
    r = client.post("/api/metadata/images/query", json=q([("seriesDescription", "like", "t1")]))
    assert sorted(ids_of(r)) == sorted(tree["images"]["a_mr"])
    r = client.post("/api/metadata/images/query", json=q([("seriesId", "=", str(tree["series"]["g_us"]))]))
    assert ids_of(r) == tree["images"]["g_us"]
    r = client.post("/api/metadata/flatseries/query", json=q([("modality", "like", "u")]))
    assert [f["patient"]["patientName"]["value"] for f in r.get_json()] == ["Gamma_100%"]
    assert r.get_json()[0]["series"]["seriesDescription"] == {"value": "Liver"}


def test_query_values_are_bound_not_sql(client, services, tree):
    hostile = "x' OR '1'='1"
    assert names(client.post("/api/metadata/patients/query", json=q([("patientName", "=", hostile)]))) == []
    assert names(client.post("/api/metadata/patients/query", json=q([("patientName", "like", hostile)]))) == []
    assert names(client.post("/api/metadata/patients/query", json=q([("patientName", "like", "%")]))) \
        == ["Gamma_100%"]
    with services.db.connection() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM patients") == 3


def test_query_with_filters(client, services, tree):
    s = tree["series"]
    set_source(services, s["a_ct"], "box", 4)
    t = add_series_type(services, "Brains")
    client.put(f"/api/metadata/series/{s['a_mr']}/seriestypes/{t}")
    body = q([("patientName", "like", "alpha")], filters={"sourceRefs": [{"sourceType": "box", "sourceId": 4}]})
    assert ids_of(client.post("/api/metadata/series/query", json=body)) == [s["a_ct"]]
    body = q([], filters={"seriesTypeIds": [t]})
    assert ids_of(client.post("/api/metadata/flatseries/query", json=body)) == [s["a_mr"]]
    assert names(client.post("/api/metadata/patients/query", json=body)) == ["Alpha^Anna"]
    body = q([], filters={"seriesTypeIds": [t], "sourceRefs": [{"sourceType": "box", "sourceId": 4}]})
    assert ids_of(client.post("/api/metadata/series/query", json=body)) == []
    assert sorted(ids_of(client.post("/api/metadata/images/query", json=q([], filters={"seriesTagIds": []})))) \
        == sorted(i for v in tree["images"].values() for i in v)


@pytest.mark.parametrize("body, word", [
    (q([("nope", "=", "x")]), "nope"),
    (q([("patientName; DROP TABLE patients", "=", "x")]), "unknown property"),
    (q([("patientName", "~", "x")]), "operator"),
    (q([("patientName", "=", None)]), "propertyValue"),
    (q([("id", "=", "abc")]), "integer"),
    ({"count": 10, "queryProperties": []}, "startIndex"),
    ({"startIndex": 0, "count": 10}, "queryProperties"),
    ({"startIndex": -1, "count": 10, "queryProperties": []}, "startIndex"),
    (q([], order={"orderBy": "bogus"}), "bogus"),
    (q([], filters={"sourceRefs": [{"sourceType": "box"}]}), "source"),
    (q([], filters={"seriesTypeIds": ["1"]}), "seriesTypeIds"),
])
def test_bad_query_is_400_with_message(client, services, tree, body, word):
    r = client.post("/api/metadata/patients/query", json=body)
    assert r.status_code == 400
    assert word in r.get_json()["error"]
    with services.db.connection() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM patients") == 3


def test_query_property_of_a_child_level_is_unknown(client, tree):
    # patients have no modality: query names are checked against the level and its parents
    r = client.post("/api/metadata/patients/query", json=q([("modality", "=", "CT")]))
    assert r.status_code == 400


def test_query_body_not_json_is_400(client, tree):
    r = client.post("/api/metadata/series/query", data="nope", content_type="application/json")
    assert r.status_code == 400
    r = client.post("/api/metadata/series/query", json=[1, 2])
    assert r.status_code == 400


# -- single items -------------------------------------------------------------------------------

def test_get_each_level_by_id_and_404(client, tree):
    series_id = tree["series"]["b_pt"]
    series = client.get(f"/api/metadata/series/{series_id}").get_json()
    study = client.get(f"/api/metadata/studies/{series['studyId']}").get_json()
    patient = client.get(f"/api/metadata/patients/{study['patientId']}").get_json()
    image = client.get(f"/api/metadata/images/{tree['images']['b_pt'][0]}").get_json()
    flat = client.get(f"/api/metadata/flatseries/{series_id}").get_json()
    assert series["seriesDescription"] == {"value": "FDG"}
    assert study["studyInstanceUID"] == {"value": "1.2.3.3"}
    assert patient["patientName"] == {"value": "beta^bob"}
    assert image["seriesId"] == series_id
    assert flat == {"id": series_id, "patient": patient, "study": study, "series": series}
    for path in ("patients", "studies", "series", "images", "flatseries"):
        r = client.get(f"/api/metadata/{path}/999999")
        assert r.status_code == 404, path
        assert r.get_json()["error"]


def test_images_of_patient_and_study(client, services, tree):
    anna = tree["patients"]["Alpha^Anna"]
    expected = sorted(tree["images"]["a_mr"] + tree["images"]["a_ct"])
    assert ids_of(client.get(f"/api/metadata/patients/{anna}/images")) == expected
    study = tree["studies"]["1.2.3.1"]
    assert ids_of(client.get(f"/api/metadata/studies/{study}/images")) == expected
    set_source(services, tree["series"]["a_ct"], "box", 2)
    assert ids_of(client.get(f"/api/metadata/patients/{anna}/images?sources=box:2")) == tree["images"]["a_ct"]
    assert ids_of(client.get(f"/api/metadata/studies/{study}/images?sources=user:1")) \
        == sorted(tree["images"]["a_mr"])
    assert client.get(f"/api/metadata/studies/{study}/images?sources=bad").status_code == 400


def test_images_of_unknown_patient_is_empty_unknown_study_404(client, tree):
    assert client.get("/api/metadata/patients/999999/images").get_json() == []
    assert client.get("/api/metadata/studies/999999/images").status_code == 404


def test_series_source(client, services, tree):
    series_id = tree["series"]["g_us"]
    r = client.get(f"/api/metadata/series/{series_id}/source")
    assert r.status_code == 200
    assert r.get_json() == {"sourceType": "user", "sourceName": "admin", "sourceId": 1}
    assert client.get("/api/metadata/series/999999/source").status_code == 404
    with services.db.transaction() as conn:
        conn.execute("DELETE FROM series_sources WHERE series_id = ?", (series_id,))
    assert client.get(f"/api/metadata/series/{series_id}/source").status_code == 404


def test_user_source_of_upload_by_plain_user(user_client, client):
    r = user_client.post("/api/images", data=make_dicom_bytes(PatientName="Own^Upload"),
                         content_type="application/octet-stream")
    assert r.status_code == 201
    series_id = r.get_json()["seriesId"]
    source = user_client.get(f"/api/metadata/series/{series_id}/source").get_json()
    assert source["sourceType"] == "user" and source["sourceName"] == "alice"
    listed = user_client.get(f"/api/metadata/patients?sources=user:{source['sourceId']}")
    assert names(listed) == ["Own^Upload"]


def test_metadata_requires_a_user(anon_client, tree):
    assert anon_client.get("/api/metadata/patients").status_code == 401
    assert anon_client.post("/api/metadata/patients/query", json=q([])).status_code == 401


def test_deleted_images_leave_the_lists(client, tree):
    for image_id in tree["images"]["g_us"]:
        assert client.delete(f"/api/images/{image_id}").status_code == 204
    assert names(client.get("/api/metadata/patients")) == ["Alpha^Anna", "beta^bob"]
    assert client.get(f"/api/metadata/flatseries/{tree['series']['g_us']}").status_code == 404


@pytest.mark.parametrize("level", ["patients", "studies", "series", "flatseries", "images"])
def test_every_whitelisted_property_works_for_query_and_order(client, upload, level):
    """Each property of each level's whitelist is valid SQL on this database."""
    from slicebox.db import querybuild

    r = upload(PatientName="Every^Prop")
    assert r.status_code == 201
    columns = querybuild.level(level).columns
    for name, column in columns.items():
        value = "1" if column.integer else "no-such-value"
        body = q([(name, "=", value), (name, "like", "x")], order={"orderBy": name, "orderAscending": False})
        r = client.post(f"/api/metadata/{level}/query", json=body)
        assert r.status_code == 200, (name, r.get_json())
        assert r.get_json() == []
        r = client.post(f"/api/metadata/{level}/query",
                        json=q([(name, "like", "")], order={"orderBy": name}))
        assert r.status_code == 200 and len(r.get_json()) == 1, name


def test_filter_is_case_insensitive_beyond_ascii(client, upload):
    assert upload(PatientName="Åström^Örjan", PatientID="X9").status_code == 201
    assert names(client.get("/api/metadata/patients", query_string={"filter": "åSTRÖM"})) == ["Åström^Örjan"]
    r = client.post("/api/metadata/patients/query", json=q([("patientName", "like", "örjan")]))
    assert names(r) == ["Åström^Örjan"]
