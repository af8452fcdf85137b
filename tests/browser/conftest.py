"""Headless Chromium through selenium, and the chat app to point it at.

Uses the system's Chromium and chromedriver (Debian: ``apt-get install
chromium chromium-driver``; elsewhere set $PYWS_CHROMIUM and
$PYWS_CHROMEDRIVER).  Selenium Manager is kept offline: nothing is
downloaded.
"""
from __future__ import annotations

import os
from typing import Callable, List

import pytest

from tests.chat_support import ChatProcess, foreign_env, start_chat

CHROMIUM = os.environ.get("PYWS_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PYWS_CHROMEDRIVER", "/usr/bin/chromedriver")
WINDOW = (1100, 720)


@pytest.fixture(scope="session")
def _browser_available() -> None:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER)
               if not (os.path.isfile(path) and os.access(path, os.X_OK))]
    if missing:
        pytest.fail(f"the browser tests need Chromium and chromedriver, missing: "
                    f"{', '.join(missing)}; install them with "
                    f"`apt-get install chromium chromium-driver` (CI does), or point "
                    f"$PYWS_CHROMIUM / $PYWS_CHROMEDRIVER at them", pytrace=False)
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.fail("the browser tests need selenium: pip install -e '.[test]'",
                    pytrace=False)


@pytest.fixture
def new_page(_browser_available, tmp_path, monkeypatch) -> Callable[[], object]:
    """``new_page()`` starts a headless Chromium (one per page, so pages share
    no storage) and returns its WebDriver; all are quit at the end."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    # Selenium Manager must not look for (or download) a driver or a browser.
    monkeypatch.setenv("SE_OFFLINE", "true")
    drivers: List[object] = []

    def start():
        n = len(drivers)
        options = Options()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                    "--disable-extensions", "--disable-background-networking",
                    f"--window-size={WINDOW[0]},{WINDOW[1]}",
                    f"--user-data-dir={tmp_path / f'chromium-profile-{n}'}"):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(executable_path=CHROMEDRIVER,
                          log_output=str(tmp_path / f"chromedriver-{n}.log"),
                          env=foreign_env())
        driver = webdriver.Chrome(service=service, options=options)
        driver.set_page_load_timeout(20)
        driver.set_script_timeout(10)
        drivers.append(driver)
        return driver

    yield start
    for driver in drivers:
        try:
            driver.quit()
        except Exception:
            pass


@pytest.fixture
def chat_server(tmp_path) -> ChatProcess:
    """The chat app (in-memory rooms) on a free port."""
    server = start_chat(tmp_path)
    yield server
    server.stop()
