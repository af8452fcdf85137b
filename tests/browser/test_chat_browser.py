"""The chat page (examples/chat) and the echo demo page (from the Flask +
gevent tutorial) in headless Chromium.

Each test starts the app in a subprocess and drives real pages: typing,
clicking, and reading what the page shows.  Screenshots go to the test's
tmp_path (their paths are printed; see them with ``pytest -s``).
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import List

from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.chat_support import start_chat
from tests.conftest import free_port
from tests.integration.test_chat_app import ChatClient

WAIT = 10  # seconds, for anything the page should show
XSS = "<script>alert(1)</script><b>x</b>"


def wait_for(driver, condition, what: str, timeout: float = WAIT):
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(
        lambda d: condition(d), message=f"timed out after {timeout}s waiting for {what}")


def status(driver) -> str:
    return driver.find_element(By.ID, "status").get_attribute("data-state")


def online(driver) -> List[str]:
    """The nicknames in the online list (without the " (you)" mark)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#online li'))"
        ".map(function (li) { return li.firstChild.textContent; });")


def notices(driver) -> List[str]:
    return [e.get_property("textContent")
            for e in driver.find_elements(By.CSS_SELECTOR, "#log .notice .text")]


def messages(driver) -> List[tuple]:
    """(nick, text) of each message in the log."""
    return [tuple(m) for m in driver.execute_script(
        "return Array.from(document.querySelectorAll('#log .msg')).map(function (li) {"
        "  return [li.dataset.nick, li.querySelector('.text').textContent]; });")]


def open_chat(driver, server) -> None:
    driver.get(server.http_url("/"))
    wait_for(driver, lambda d: status(d) == "online", "the page to connect")


def join(driver, nick: str, room: str) -> None:
    for field, value in (("nick", nick), ("room", room)):
        box = driver.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)
    driver.find_element(By.ID, "join").click()


def join_and_wait(driver, nick: str, room: str) -> None:
    join(driver, nick, room)
    wait_for(driver, lambda d: d.find_element(By.ID, "chat-view").is_displayed()
             and nick in online(d), f"{nick} to be in {room}")


def say(driver, text: str) -> None:
    box = driver.find_element(By.ID, "text")
    box.send_keys(text)
    driver.find_element(By.ID, "send").click()
    wait_for(driver, lambda d: d.find_element(By.ID, "text").get_property("value") == "",
             "the composer to clear after sending")


def js_errors(driver) -> List[str]:
    """SEVERE entries of the browser console but the ones about the
    WebSocket connection failing (expected while a server restarts)."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and "WebSocket connection" not in entry["message"]]


def screenshot(driver, tmp_path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"screenshot {path} failed"
    print(f"screenshot: {path}")


def test_two_users_chat_in_a_room(new_page, chat_server, tmp_path):
    room = "browser-room"
    alice, bob = new_page(), new_page()
    open_chat(alice, chat_server)
    open_chat(bob, chat_server)
    join_and_wait(alice, "alice", room)

    # A nickname in use in the room is refused, with its own message.
    join(bob, "alice", room)
    error = bob.find_element(By.ID, "join-error")
    wait_for(bob, lambda d: error.is_displayed() and "already in use" in error.text,
             "the nickname-in-use error")
    assert not bob.find_element(By.ID, "chat-view").is_displayed()

    join_and_wait(bob, "bob", room)
    for page in (alice, bob):
        wait_for(page, lambda d: online(d) == ["alice", "bob"], "both users in the online list")
    wait_for(alice, lambda d: "bob joined" in notices(d), "alice to see bob join")

    say(alice, "hello bob")
    wait_for(bob, lambda d: ("alice", "hello bob") in messages(d), "bob to get alice's message")
    wait_for(alice, lambda d: ("alice", "hello bob") in messages(d), "alice to see her message")

    # Markup from a user is shown as text: no element, no script.
    say(bob, XSS)
    for page in (alice, bob):
        wait_for(page, lambda d: ("bob", XSS) in messages(d), "the markup message as text")
        texts = page.find_elements(By.CSS_SELECTOR, "#log .msg[data-nick='bob'] .text")
        assert [t.text for t in texts] == [XSS]
        assert page.find_elements(By.CSS_SELECTOR, "#log b, #log script") == []
        try:
            _alert = page.switch_to.alert  # raises when there is none, as it must
        except NoAlertPresentException:
            pass
        else:
            raise AssertionError("a user's <script> ran")

    screenshot(alice, tmp_path, "alice")
    screenshot(bob, tmp_path, "bob")
    for page in (alice, bob):
        assert js_errors(page) == []

    # Closing alice's browser: bob sees her leave, and the list shrinks.
    alice.quit()
    wait_for(bob, lambda d: "alice left" in notices(d), "the leave notice")
    wait_for(bob, lambda d: online(d) == ["bob"], "alice to leave the online list")
    screenshot(bob, tmp_path, "bob-after-alice-left")


def test_page_reconnects_and_rejoins_after_server_restart(new_page, tmp_path):
    port = free_port()
    server = start_chat(tmp_path, port=port)
    page = new_page()
    try:
        open_chat(page, server)
        join_and_wait(page, "carol", "restart-room")
        say(page, "before the restart")
        wait_for(page, lambda d: ("carol", "before the restart") in messages(d), "the message")

        server.stop()  # SIGTERM: the app closes its WebSockets with 1001, then exits
        assert server.proc.returncode == 0, server.log()[-3000:]
        wait_for(page, lambda d: status(d) in ("reconnecting", "connecting"),
                 "the page to notice the server is gone")
        assert page.find_element(By.ID, "status").get_attribute("data-last-close") == "1001"
        # In words, not as a code.
        wait_for(page, lambda d: any(n.startswith("Disconnected: the server is restarting")
                                     for n in notices(d)), "the close reason in words")
        shown = page.find_element(By.ID, "status").text
        assert shown.startswith("Disconnected: the ") and "100" not in shown, shown
        screenshot(page, tmp_path, "carol-reconnecting")

        server = start_chat(tmp_path, port=port)
        # Backoff delays are 0.25 s, 0.5 s, 1 s... (+-20 %): well within 15 s.
        wait_for(page, lambda d: status(d) == "online" and "Reconnected to #restart-room"
                 in notices(d), "the page to reconnect and rejoin", timeout=15)
        wait_for(page, lambda d: online(d) == ["carol"], "carol back in the online list")
        say(page, "after the restart")
        wait_for(page, lambda d: ("carol", "after the restart") in messages(d),
                 "a message through the new server")
        assert js_errors(page) == []
    finally:
        server.stop()


def test_the_echo_demo_page_works_against_the_chat_app(new_page, chat_server, tmp_path):
    page = new_page()
    page.get(chat_server.http_url("/echo.html"))
    send = page.find_element(By.ID, "send")
    wait_for(page, lambda d: send.is_enabled(), "the echo page to connect")
    status_text = page.find_element(By.ID, "status").text
    assert status_text.endswith(f"127.0.0.1:{chat_server.port}/echo"), status_text
    box = page.find_element(By.ID, "msg")
    box.send_keys("hello echo", Keys.ENTER)
    wait_for(page, lambda d: "\u2190 hello echo" in
             [e.text for e in d.find_elements(By.CSS_SELECTOR, "#log .received")],
             "the echo")
    screenshot(page, tmp_path, "echo")
    assert js_errors(page) == []


def test_the_echo_demo_works_in_chromium_under_its_content_security_policy(
        new_page, run_example, tmp_path):
    """examples/echo.py serves its page with the chat's kind of policy (only
    the page's own inline code, by hash, and its own WebSocket), and the
    page still connects and echoes with no violation reported."""
    import urllib.request

    server = run_example()
    with urllib.request.urlopen(server.http_url("/"), timeout=10) as resp:
        csp = resp.headers["Content-Security-Policy"] or ""
    assert "connect-src 'self'" in csp and "'sha256-" in csp and "unsafe-inline" not in csp
    page = new_page()
    page.get(server.http_url("/"))
    send = page.find_element(By.ID, "send")
    wait_for(page, lambda d: send.is_enabled(), "the echo page to connect")
    page.find_element(By.ID, "msg").send_keys("hello demo", Keys.ENTER)
    wait_for(page, lambda d: "\u2190 hello demo" in
             [e.text for e in d.find_elements(By.CSS_SELECTOR, "#log .received")],
             "the echo")
    screenshot(page, tmp_path, "echo-demo")
    assert js_errors(page) == []


def test_reload_stays_in_the_room_with_its_last_messages(new_page, chat_server, tmp_path):
    page = new_page()
    open_chat(page, chat_server)
    join_and_wait(page, "dora", "reload-room")
    say(page, "said before the reload")
    wait_for(page, lambda d: ("dora", "said before the reload") in messages(d), "the message")
    page.refresh()
    wait_for(page, lambda d: d.find_element(By.ID, "chat-view").is_displayed()
             and online(d) == ["dora"], "the page to be back in the room after a reload")
    assert page.find_element(By.ID, "room-title").text.startswith("#reload-room")
    # The room's last messages came with the join.
    wait_for(page, lambda d: ("dora", "said before the reload") in messages(d),
             "the room's history")
    assert js_errors(page) == []


def test_narrow_window_keeps_the_room_name_visible(new_page, chat_server, tmp_path):
    page = new_page()
    page.set_window_size(360, 700)
    open_chat(page, chat_server)
    join_and_wait(page, "eve", "a-rather-long-room-name")
    title = page.find_element(By.ID, "room-title")
    assert title.is_displayed() and "#a-rather" in title.text
    right, width = page.execute_script(
        "return [arguments[0].getBoundingClientRect().right, "
        "document.documentElement.clientWidth];", title)
    assert 0 < right <= width
    screenshot(page, tmp_path, "narrow")


# A page of another origin (another port of 127.0.0.1) that tries to use
# the chat's WebSocket from the visitor's browser.
FOREIGN_PAGE = """<!DOCTYPE html><meta charset="utf-8"><title>foreign</title>
<pre id="out"></pre>
<script>
var out = document.getElementById("out");
var ws = new WebSocket("ws://127.0.0.1:CHAT_PORT/ws");
ws.onopen = function () {
  out.textContent += "open ";
  ws.send(JSON.stringify({type: "join", room: "victim-room", nick: "intruder"}));
  ws.send(JSON.stringify({type: "message", text: "posted by another site"}));
};
ws.onclose = function (e) { out.textContent += "closed:" + e.code + " "; };
</script>"""


def _serve_foreign_page() -> ThreadingHTTPServer:
    """FOREIGN_PAGE at /PORT, pointed at the chat on that port."""
    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = FOREIGN_PAGE.replace("CHAT_PORT", self.path.strip("/")).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_page_of_another_origin_cannot_use_the_chat(new_page, chat_server, tmp_path):
    site = _serve_foreign_page()
    foreign = f"http://127.0.0.1:{site.server_address[1]}"
    allowing = start_chat(tmp_path, "--allow-origin", foreign)
    member = ChatClient(chat_server)
    allowed_member = ChatClient(allowing)
    try:
        member.join("victim-room", "member")
        allowed_member.join("victim-room", "member")
        page = new_page()
        page.get(f"{foreign}/{chat_server.port}")
        wait_for(page, lambda d: "closed:" in d.find_element(By.ID, "out").text,
                 "the foreign page's WebSocket to fail")
        assert "open" not in page.find_element(By.ID, "out").text
        assert any("403" in entry["message"] for entry in page.get_log("browser")), \
            "Chromium did not report the 403"
        assert f"refused a WebSocket from origin '{foreign}'" in chat_server.log()
        # Nothing of it reached the room: the member's next message is its own.
        member.send(type="message", text="still alone")
        message = member.expect("message")
        assert (message["nick"], message["text"]) == ("member", "still alone")
        assert [m for m in member.seen if m.get("nick") == "intruder"] == []

        # The same page, against a chat told to allow its origin, gets in:
        # the refusal above was the origin check and nothing else.
        page.get(f"{foreign}/{allowing.port}")
        message = allowed_member.expect("message")
        assert (message["nick"], message["text"]) == ("intruder", "posted by another site")
    finally:
        site.shutdown()
        member.close()
        allowed_member.close()
        allowing.stop()
