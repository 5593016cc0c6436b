"""The browser interface as a person uses it: real Chromium against two real `slicebox serve` boxes."""
from __future__ import annotations

import base64
import json
import os
import shutil

import numpy as np
import pytest
import urllib3

from boxes.boxproc import BoxProcess, wait_for
from factories import make_dataset, make_dicom_bytes

pytestmark = pytest.mark.slow

SCREENSHOTS = os.environ.get("SLICEBOX_SCREENSHOTS")  # a folder: README's screenshots are written there


def _gradient(rows=256, columns=256):
    y, x = np.mgrid[0:rows, 0:columns]
    return ((x * 8 + y * 4) % 4000).astype(np.uint16)


def _image(patient: str, series_uid: str, study_uid: str, n: int) -> bytes:
    ds = make_dataset(rows=256, columns=256, pixels=_gradient(), PatientName=patient, PatientID=patient[:8],
                      StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid, InstanceNumber=n,
                      SeriesDescription=f"Series of {patient}", StudyDescription=f"Study of {patient}",
                      WindowCenter=2000, WindowWidth=4000)
    return make_dicom_bytes(ds)


@pytest.fixture(scope="module")
def boxes(tmp_path_factory):
    """A hospital box (the one in the browser) connected to a uni box it pushes to."""
    root = tmp_path_factory.mktemp("webboxes")
    uni = BoxProcess("uni", str(root / "uni")).start()
    hospital = BoxProcess("hospital", str(root / "hospital")).start()
    try:
        conn = uni.json("POST", "/boxes/createconnection", {"name": "hospital"})
        hospital.json("POST", "/boxes/connect", {"name": "uni", "baseUrl": conn["baseUrl"]})
        yield hospital, uni
    finally:
        for box in (hospital, uni):
            box.stop()


@pytest.fixture
def browser(chrome_factory):
    return chrome_factory()


def _wait(browser, predicate, timeout=30, what="the page"):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, poll_frequency=0.1).until(lambda d: predicate(d), f"waiting for {what}")


def _css(browser, selector, timeout=30):
    from selenium.webdriver.common.by import By

    return _wait(browser, lambda d: _visible(d.find_elements(By.CSS_SELECTOR, selector)), timeout, selector)


def _visible(elements):
    shown = [e for e in elements if e.is_displayed()]
    return shown[0] if shown else False


def _xpath(browser, xpath, timeout=30):
    from selenium.webdriver.common.by import By

    return _wait(browser, lambda d: _visible(d.find_elements(By.XPATH, xpath)), timeout, xpath)


def _text(browser, text, timeout=30):
    return _wait(browser, lambda d: text in d.find_element("tag name", "body").text, timeout, repr(text))


def _login(browser, box, user="admin", password="secret"):
    browser.get(box.url + "/")
    _css(browser, "input[name=user]").send_keys(user)
    _css(browser, "input[name=pass]").send_keys(password)
    _css(browser, "form.login button[type=submit]").click()
    _text(browser, f"{user} (")


def _shot(browser, name):
    if SCREENSHOTS:
        os.makedirs(SCREENSHOTS, exist_ok=True)
        browser.save_screenshot(os.path.join(SCREENSHOTS, name))


def _row_link(browser, text):
    return _xpath(browser, f"//table//a[contains(normalize-space(.), {json.dumps(text)})]")


def _png_loaded(browser, previous_src=None):
    img = _css(browser, "#viewer-image")

    def ready(d):
        src = img.get_attribute("src") or ""
        done = d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
        return src if (done and "/png" in src and src != previous_src) else False

    return img, _wait(browser, ready, 30, "the PNG rendering")


def test_log_in_upload_find_view_window_and_attributes(browser, boxes, tmp_path):
    hospital, _uni = boxes
    files = []
    for n in (1, 2):
        path = tmp_path / f"alice-{n}.dcm"
        path.write_bytes(_image("Browser^Alice", "1.2.826.0.1.3680043.8.498.910", "1.2.826.0.1.3680043.8.498.911", n))
        files.append(str(path))
    _login(browser, hospital)
    assert "admin (SUPERUSER)" in browser.find_element("id", "who").text

    # upload two files through the file picker: per-file progress and the session's counts
    _css(browser, "a[href='#/upload']").click()
    _css(browser, "#upload-files").send_keys("\n".join(files))
    _text(browser, "2 added, 0 duplicate, 0 rejected", timeout=60)
    bars = browser.find_elements("css selector", "ul.uploads progress")
    assert len(bars) == 2 and all(b.get_attribute("value") == "1" for b in bars)

    # find them by patient name (substring filter) and walk down to the images
    _css(browser, "a[href='#/patients']").click()
    box = _css(browser, "input[name=filter]")
    box.send_keys("alice")
    _css(browser, "form.filters button[type=submit]").click()
    _wait(browser, lambda d: "filter=alice" in d.current_url, what="the filtered list")
    _row_link(browser, "Browser^Alice")
    _shot(browser, "browse.png")
    rows = browser.find_elements("css selector", "table tbody tr")
    assert len(rows) == 1
    _row_link(browser, "Browser^Alice").click()
    _row_link(browser, "20240101").click()
    _row_link(browser, "CT").click()
    _row_link(browser, "1").click()

    # the viewer: the image's PNG URL and pixels change with the window
    img, first_src = _png_loaded(browser)
    before = img.screenshot_as_png
    _shot(browser, "viewer.png")
    from selenium.webdriver.support.ui import Select

    Select(_css(browser, "select[name=preset]")).select_by_visible_text("CT lung (-600 / 1500)")
    img, second_src = _png_loaded(browser, first_src)
    assert "windowmin=-1350" in second_src and "windowmax=150" in second_src
    assert img.screenshot_as_png != before

    # the attributes as a tree
    _xpath(browser, "//button[normalize-space(.)='Show attributes']").click()
    tree = _css(browser, "ul.tree")
    _wait(browser, lambda d: "Browser^Alice" in tree.text, what="the attribute tree")
    assert "Patient's Name" in tree.text or "PatientName" in tree.text

    # the DICOM file is offered for download
    link = _xpath(browser, "//a[normalize-space(.)='Download DICOM file']")
    assert link.get_attribute("href").endswith("/api/images/" + first_src.split("/api/images/")[1].split("/")[0])


def test_anonymize_one_image_and_see_its_key(browser, boxes):
    hospital, _uni = boxes
    image = hospital.upload(_image("Keys^Bob", "1.2.826.0.1.3680043.8.498.920", "1.2.826.0.1.3680043.8.498.921", 1))
    _login(browser, hospital)
    browser.get(f"{hospital.url}/#/series/{image['seriesId']}")
    _css(browser, "table tbody input[type=checkbox]").click()
    _xpath(browser, "//button[normalize-space(.)='Anonymize…']").click()
    dialog = _css(browser, "dialog[open]")
    dialog.find_element("css selector", "input[name=anonName]").send_keys("Project^007")
    dialog.find_element("css selector", "button[type=submit]").click()
    _text(browser, "Anonymized 1 image(s).")
    _wait(browser, lambda d: "#/keys" in d.current_url, what="the keys page")
    row = _xpath(browser, "//table//tr[td[normalize-space(.)='Keys^Bob']]")
    assert "Project^007" in row.text
    # the stored image is the anonymous one now
    patients = hospital.json("GET", "/metadata/patients?filter=Project")
    assert [p["patientName"]["value"] for p in patients] == ["Project^007"]


def test_send_a_series_to_a_second_box_and_watch_it_finish(browser, boxes):
    hospital, uni = boxes
    study, series = "1.2.826.0.1.3680043.8.498.931", "1.2.826.0.1.3680043.8.498.930"
    first = [hospital.upload(_image("Send^Carol", series, study, n)) for n in (1, 2, 3)][0]
    before = uni.count_images()
    _login(browser, hospital)
    browser.get(f"{hospital.url}/#/study/{hospital.json('GET', '/metadata/series/%d' % first['seriesId'])['studyId']}")
    _css(browser, "table tbody input[type=checkbox]").click()  # the one series of the study
    _xpath(browser, "//button[normalize-space(.)='Send to box…']").click()
    dialog = _css(browser, "dialog[open]")
    dialog.find_element("css selector", "button[type=submit]").click()
    _text(browser, "Queued 3 image(s) for sending.")
    _wait(browser, lambda d: "#/transactions" in d.current_url, what="the transfers page")
    # the page refreshes by itself until the transaction is done
    _xpath(browser, "//table[caption='Outgoing']//tr[td[normalize-space(.)='uni']]"
                    "[td/span[normalize-space(.)='FINISHED']]", timeout=120)
    wait_for(lambda: uni.count_images() == before + 3, timeout=60, what="3 images on the uni box")


def test_a_user_sees_no_admin_pages(browser, boxes):
    hospital, _uni = boxes
    hospital.json("POST", "/users", {"user": "carl", "role": "USER", "password": "pw-carl"})
    _login(browser, hospital, "carl", "pw-carl")
    nav = _css(browser, "#nav").text
    assert "Browse" in nav and "Admin" not in nav
    browser.get(hospital.url + "/#/admin/users")
    _text(browser, "These pages are for administrators.")
    assert "admin" not in browser.find_element("css selector", "main").text.replace("administrators", "")


def test_api_errors_are_readable_messages(browser, boxes):
    hospital, _uni = boxes
    _login(browser, hospital)
    browser.get(hospital.url + "/#/image/987654321")
    message = _css(browser, ".message.error")
    assert "987654321" in message.text or "not found" in message.text.lower()
    assert "{" not in message.text


def test_cross_site_requests_with_the_session_cookie_are_refused(boxes):
    hospital, _uni = boxes
    http = urllib3.PoolManager(retries=False)
    r = http.request("POST", hospital.url + "/api/users/login", body=json.dumps({"user": "admin", "pass": "secret"}),
                     headers={"Content-Type": "application/json"})
    assert r.status == 201
    cookie = r.headers["Set-Cookie"].split(";")[0]
    body = json.dumps({"name": "evil-tag"})
    url = hospital.url + "/api/metadata/series/1/seriestags"

    def post(**headers):
        return http.request("POST", url, body=body, headers={"Cookie": cookie, "Content-Type": "application/json",
                                                              **headers}).status

    assert post(Origin="http://evil.example") == 403
    assert post(**{"Sec-Fetch-Site": "cross-site"}) == 403
    assert post(Origin=hospital.url) == 403  # a browser request without the page's header
    assert post(Origin=hospital.url, **{"X-Slicebox-Request": "web", "Sec-Fetch-Site": "same-origin"}) in (201, 404)
    assert post() in (201, 404)  # a script holding the cookie (no browser headers)
    # reading stays possible for the page itself, and basic auth is unaffected
    auth = "Basic " + base64.b64encode(b"admin:secret").decode()
    assert http.request("POST", url, body=body, headers={"Authorization": auth, "Content-Type": "application/json",
                                                          "Origin": "http://evil.example"}).status in (201, 404)


def test_the_page_is_served_with_a_strict_content_security_policy(boxes):
    hospital, _uni = boxes
    r = urllib3.PoolManager(retries=False).request("GET", hospital.url + "/")
    assert r.status == 200 and b'<script type="module" src="/web/static/app.js">' in r.data
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    js = urllib3.PoolManager(retries=False).request("GET", hospital.url + "/web/static/app.js")
    assert js.status == 200 and "javascript" in js.headers["Content-Type"]


def teardown_module(module):
    failures = os.path.join(os.path.dirname(os.path.abspath(__file__)), "failures")
    if os.path.isdir(failures) and not os.listdir(failures):
        shutil.rmtree(failures, ignore_errors=True)


@pytest.mark.parametrize("width,height", [(1280, 800), (768, 1024)])
def test_pages_fit_the_screen_without_sideways_scrolling(browser, boxes, width, height):
    hospital, _uni = boxes
    image = hospital.upload(_image("Layout^Dana", "1.2.826.0.1.3680043.8.498.940", "1.2.826.0.1.3680043.8.498.941", 1))
    browser.set_window_size(width, height)
    _login(browser, hospital)
    for page in ("#/patients", "#/flatseries", "#/upload", "#/transactions", "#/admin/boxes", f"#/image/{image['id']}"):
        browser.get(f"{hospital.url}/{page}")
        _css(browser, "main h1")
        _wait(browser, lambda d: not d.find_elements("css selector", ".message.error"), 2, "no error") \
            if page != "#/upload" else None
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{page} scrolls sideways by {overflow}px at {width}px"
    # every control of the viewer is reachable by keyboard and labelled
    unlabelled = browser.execute_script("""
        return [...document.querySelectorAll('main input, main select, main button')]
          .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
          .map(e => e.outerHTML);""")
    assert unlabelled == []
