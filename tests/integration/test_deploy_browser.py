"""A real browser (headless Chromium, through selenium) against the deploy
app under Werkzeug's development server: the page's WebSocket goes through
the upgrade pyws performs on Werkzeug's socket; a route whose origins do
not include the page's refuses it."""
from __future__ import annotations

import re

import pytest

from tests.browser.conftest import _browser_available, new_page  # noqa: F401 (fixtures)
from tests.deploy_support import start_deploy

TIMEOUT = 15


@pytest.fixture(scope="module")
def werkzeug_server(tmp_path_factory):
    proc = start_deploy("werkzeug", tmp_path_factory.mktemp("deploy-browser"))
    yield proc
    proc.stop()


def page_state(driver, expected: str) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, TIMEOUT).until(
        lambda d: d.find_element(By.ID, "state").text.startswith("closed"))
    state = driver.find_element(By.ID, "state").text
    assert state == expected, driver.get_log("browser")
    return driver.find_element(By.ID, "echo").text


def test_chromium_echoes_through_werkzeug(werkzeug_server, new_page):  # noqa: F811
    driver = new_page()
    driver.get(werkzeug_server.http_url("/"))
    assert page_state(driver, "closed 1000") == "hello from chromium"


def test_chromium_is_refused_by_an_origin_allow_list(werkzeug_server, new_page):  # noqa: F811
    driver = new_page()
    driver.get(werkzeug_server.http_url("/?path=/guarded"))
    # The browser only says 1006; the server answered 403 (Werkzeug logs a
    # request before it sends the answer).
    assert page_state(driver, "closed 1006") == ""
    assert re.search(r'GET /guarded HTTP/1\.1(\x1b\[0m)?" 403 ',
                     werkzeug_server.log_since_mark())
