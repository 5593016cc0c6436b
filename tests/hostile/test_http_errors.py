"""Error answers: 405 carries Allow, a request racing a delete answers 404, and no answer
ever shows a server path (SQLite and PostgreSQL)."""
from __future__ import annotations

import os
import re
import threading

from slicebox import errors

PATHISH = re.compile(r"(/tmp/|/work/|/usr/|/root/|/home/|/var/|slicebox/|\.py\b)")


def test_405_answers_carry_allow(app, client):
    checked = 0
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api") or rule.arguments:
            continue
        allowed = rule.methods - {"HEAD", "OPTIONS"}
        for method in {"GET", "POST", "PUT", "DELETE"} - allowed:
            r = client.open(rule.rule, method=method)
            if r.status_code != 405:  # another rule on the same path takes this method
                continue
            allow = {m.strip() for m in r.headers.get("Allow", "").split(",") if m.strip()}
            assert allowed <= allow, (method, rule.rule, r.headers.get("Allow"))
            assert r.get_json()["error"]
            checked += 1
    assert checked >= 10
    r = client.put("/api/images/1")  # a rule with arguments
    assert r.status_code == 405 and {"GET", "DELETE"} <= set(r.headers["Allow"].replace(" ", "").split(","))


def _remove_file(services, image_id: int) -> None:
    path = services.storage.path(image_id)
    if path is not None:
        os.unlink(path)
    else:
        services.storage.delete(image_id)


def test_a_request_that_finds_the_row_but_not_the_file_answers_404_without_a_path(client, services, upload):
    """The state a request sees when a delete commits between its row lookup and its file read."""
    image = upload().get_json()
    _remove_file(services, image["id"])
    for method, path, body in [
        ("GET", f"/api/images/{image['id']}", None),
        ("GET", f"/api/images/{image['id']}/attributes", None),
        ("GET", f"/api/images/{image['id']}/imageinformation", None),
        ("GET", f"/api/images/{image['id']}/png", None),
        ("POST", f"/api/images/{image['id']}/anonymized", {}),
        ("PUT", f"/api/images/{image['id']}/anonymize", {}),
        ("PUT", f"/api/images/{image['id']}/modify", [{"tagPath": {"tag": 0x00100010}, "value": "X"}]),
    ]:
        r = client.open(path, method=method, json=body)
        assert r.status_code == 404, (method, path, r.status_code, r.get_data()[:300])
        message = r.get_json()["error"]
        assert not PATHISH.search(message), message


def test_requests_racing_deletes_answer_200_or_404(app, client, upload):
    ids = [upload(PatientName=f"Race^{n}").get_json()["id"] for n in range(12)]
    statuses: list[tuple[str, int, str]] = []

    def reader():
        c = app.test_client()
        for image_id in ids:
            for suffix in ("", "/attributes", "/imageinformation", "/png"):
                r = c.get(f"/api/images/{image_id}{suffix}", headers=client.headers)
                statuses.append((suffix, r.status_code, r.get_data()[:200].decode("latin-1")))

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    deleter = app.test_client()
    for image_id in ids:
        assert deleter.delete(f"/api/images/{image_id}", headers=client.headers).status_code == 204
    for t in threads:
        t.join(timeout=120)
    assert statuses
    bad = [s for s in statuses if s[1] not in (200, 404)]
    assert bad == []
    assert not any(PATHISH.search(s[2]) for s in statuses if s[1] == 404)


def test_messages_never_show_server_paths(app, services):
    data_dir = services.config["DATA_DIR"]
    for message in (f"[Errno 2] No such file or directory: '{data_dir}/storage/7'",
                    f"cannot open {os.path.join(os.path.dirname(errors.__file__), 'x.py')}",
                    "failed at /usr/lib/python3/dist-packages/pydicom/filereader.py:12",
                    f"temp {services.storage.temp_dir()}/in-abc.part gone"):
        scrubbed = errors.scrub_paths(message)
        assert "<path>" in scrubbed and not PATHISH.search(scrubbed), scrubbed
    # API paths and plain text stay as they are
    assert errors.scrub_paths("use /api/images/1 or a/b") == "use /api/images/1 or a/b"

    @app.get("/api/test-only/oserror")
    def _oserror():  # pragma: no cover - the view only raises
        raise errors.BadRequest(f"could not read {data_dir}/storage/tmp/in-x.part: gone")

    app.view_functions["_oserror"].slicebox_public = True
    r = app.test_client().get("/api/test-only/oserror")
    assert r.status_code == 400
    assert data_dir not in r.get_json()["error"] and "<path>" in r.get_json()["error"]
