"""examples/echo.py, run as a program on a free port."""
from __future__ import annotations

import re
import urllib.error
import urllib.request

import websocket


def test_example_echo_serves_page_and_echoes(run_example):
    server = run_example()
    with urllib.request.urlopen(server.http_url("/"), timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/html")
        page = resp.read().decode("utf-8")
    assert "<html" in page.lower()
    assert "new WebSocket(" in page
    assert re.search(r"""["'`]/ws["'`]""", page), "the page does not open a WebSocket to /ws"

    ws = websocket.create_connection(server.url("/ws"), timeout=10)
    try:
        ws.send("hello example")
        assert ws.recv() == "hello example"
        ws.send_binary(bytes(range(256)))
        assert ws.recv() == bytes(range(256))
        ws.send("\u20ac" * 1000)
        assert ws.recv() == "\u20ac" * 1000
    finally:
        ws.close(timeout=2)


def test_example_echo_exits_cleanly_on_sigterm(run_example):
    server = run_example()
    ws = websocket.create_connection(server.url("/ws"), timeout=10)
    ws.send("x")
    assert ws.recv() == "x"
    ws.close(timeout=2)
    server.stop()  # SIGTERM, then wait up to 5 s
    assert server.proc.returncode == 0


def test_example_echo_honours_max_message_size(run_example):
    server = run_example("--max-message-size", "100")
    ws = websocket.create_connection(server.url("/ws"), timeout=10)
    try:
        ws.send("x" * 100)
        assert ws.recv() == "x" * 100
        ws.send("x" * 101)
        opcode, data = ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(data[:2], "big") == 1009
    finally:
        ws.shutdown()


def test_example_plain_get_of_ws_is_400(run_example):
    server = run_example()
    try:
        urllib.request.urlopen(server.http_url("/ws"), timeout=10)
    except urllib.error.HTTPError as exc:
        assert exc.code == 400
    else:
        raise AssertionError("GET /ws without upgrade should be refused")
