"""examples/echo.py, run as a program on a free port."""
from __future__ import annotations

import os
import re
import urllib.error
import urllib.request

import pytest
import websocket

from tests.integration.clients import CLIENT_IDS, CLIENTS
from tests.wire import OP_BINARY, OP_CLOSE, OP_TEXT, RawClient, build_frame, close_payload


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


@pytest.mark.parametrize("client_class", CLIENTS, ids=CLIENT_IDS)
def test_example_echo_serves_each_client_library(run_example, client_class):
    server = run_example()
    client = client_class(server.url("/ws"))
    try:
        client.send("text from " + client.name)
        assert client.recv() == "text from " + client.name
        client.send(b"\x00binary\xff")
        assert client.recv() == b"\x00binary\xff"
        assert client.close()[0] == 1000
    finally:
        client.abort()


def test_example_echo_serves_a_raw_client_writing_one_byte_at_a_time(run_example):
    server = run_example()
    with RawClient(server.port, timeout=10) as raw:
        raw.handshake("/ws")
        for opcode, payload in ((OP_TEXT, "raw \u20ac".encode()), (OP_BINARY, b"\x00\x01\xfe")):
            raw.send_bytewise(build_frame(opcode, payload, mask=os.urandom(4)))
            frame = raw.read_frame()
            assert (frame.opcode, frame.fin, frame.masked, frame.payload) == (
                opcode, True, False, payload)
        raw.send_bytewise(build_frame(OP_CLOSE, close_payload(1000), mask=os.urandom(4)))
        frame = raw.read_frame()
        assert (frame.opcode, frame.close_code) == (OP_CLOSE, 1000)
        raw.expect_eof()
