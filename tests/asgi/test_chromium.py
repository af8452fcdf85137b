"""A real browser: headless Chromium loads a page from the Starlette app
(inline script, nothing from outside) whose WebSockets talk to uvicorn.

The page (starlette_app.PAGE) opens /subprotocol offering ["nope",
"pyws.v1"], echoes a text, a binary and a 256 KiB message (compressed:
Chromium always offers permessage-deflate), closes with 4001 "browser
done"; a second socket is closed by the server with 4002. Results are
written into the DOM. Uses tests/browser's ``new_page`` fixture; skipped
without Chromium, chromedriver or selenium."""
from __future__ import annotations


def test_chromium_page_echoes_and_closes_over_uvicorn(server, new_page, token):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = new_page()
    driver.get(server.http_url(f"/page?id={token}"))

    def text(element_id: str) -> str:
        return driver.find_element(By.ID, element_id).text

    WebDriverWait(driver, 20).until(lambda d: text("closed") and text("server-close"))
    seen = {name: text(name) for name in ("open", "protocol", "extensions", "text", "binary",
                                          "big", "closed", "server-close", "error")}
    assert seen["error"] == ""
    assert seen["open"] == "yes"
    assert seen["protocol"] == "pyws.v1"
    assert seen["extensions"].startswith("permessage-deflate")
    assert seen["text"] == "hello from chromium \u00e9\u4e16"
    assert seen["binary"] == "0,1,2,253,254,255"
    assert seen["big"] == "same 262144"
    assert seen["closed"] == "4001 browser done true"
    assert seen["server-close"] == "4002 server says bye true"
    record = server.recorded_disconnect(token)
    assert (record["code"], record["reason"]) == (4001, "browser done")
