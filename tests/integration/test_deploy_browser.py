"""A real browser (headless Chromium, through selenium) against the deploy
app under Werkzeug's development server: the page's WebSocket goes through
the upgrade pyws performs on Werkzeug's socket; a route whose origins do
not include the page's refuses it."""
from __future__ import annotations

import re

import pytest

from tests.browser.conftest import _browser_available, new_page  # noqa: F401 (fixtures)
from tests.counting_proxy import CountingProxy
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


COMPRESSION_SCRIPT = """
const [url, done] = arguments;
const text = "Chromium compresses this text. ".repeat(20000);
const ws = new WebSocket(url);
ws.onopen = () => ws.send(text);
ws.onmessage = (event) => {
  done({extensions: ws.extensions, same: event.data === text, length: event.data.length});
  ws.close(1000);
};
ws.onerror = () => done({error: true});
"""


@pytest.fixture(scope="module")
def gevent_server(tmp_path_factory):
    proc = start_deploy("gevent", tmp_path_factory.mktemp("deploy-browser-gevent"))
    yield proc
    proc.stop()


@pytest.mark.parametrize("server", ["werkzeug_server", "gevent_server"])
def test_chromium_negotiates_permessage_deflate_and_both_ways_compress(
        server, request, new_page):  # noqa: F811
    """The browser offers permessage-deflate, pyws accepts it, and a 620 KB
    message goes there and back in a few KiB each way (counted by a proxy
    between the page and the server)."""
    proc = request.getfixturevalue(server)
    driver = new_page()
    driver.get(proc.http_url("/"))
    with CountingProxy(proc.port) as proxy:
        result = driver.execute_async_script(COMPRESSION_SCRIPT,
                                             f"ws://127.0.0.1:{proxy.port}/ws")
        assert result.get("same") is True, (result, driver.get_log("browser"))
        assert result["length"] == 620000
        assert result["extensions"].startswith("permessage-deflate"), result
        assert proxy.upstream < 32 << 10, proxy.upstream
        assert proxy.downstream < 32 << 10, proxy.downstream
