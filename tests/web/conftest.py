"""Browser tests: Debian's chromium + chromedriver driven by selenium against real boxes.

A failing test saves a screenshot (and the browser console) next to the box logs under
``tests/web/failures/`` (or ``SLICEBOX_WEB_FAILURES``), named after the test.
"""
from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FAILURES = os.environ.get("SLICEBOX_WEB_FAILURES",
                          os.path.join(os.path.dirname(os.path.abspath(__file__)), "failures"))


def browser_missing() -> str:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    return ", ".join(missing)


@pytest.fixture(scope="session")
def chrome_factory(tmp_path_factory):
    """Start headless Chromium sessions (each with a fresh profile); all are quit at the end."""
    missing = browser_missing()
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but the browser tests lack {missing} (.ci/run installs them)")
        pytest.skip(f"browser tests need {missing} (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    drivers = []

    def make():
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1280,800",
                     f"--user-data-dir={tmp_path_factory.mktemp('chrome')}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        driver.set_page_load_timeout(60)
        drivers.append(driver)
        return driver

    yield make
    for driver in drivers:
        try:
            driver.quit()
        except Exception:  # noqa: BLE001 - already gone
            pass


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    driver = item.funcargs.get("browser")
    if driver is None:
        return
    os.makedirs(FAILURES, exist_ok=True)
    base = os.path.join(FAILURES, item.name)
    try:
        driver.save_screenshot(base + ".png")
        with open(base + ".console.txt", "w") as fh:
            for entry in driver.get_log("browser"):
                fh.write(f"{entry.get('level')} {entry.get('message')}\n")
        report.sections.append(("browser", f"screenshot saved to {base}.png"))
    except Exception as exc:  # noqa: BLE001 - the browser itself died
        report.sections.append(("browser", f"no screenshot: {exc}"))
    for box in item.funcargs.get("boxes", ()) or ():
        try:
            shutil.copy(box.log_path, base + f".{box.name}.log")
        except (OSError, AttributeError):
            pass
