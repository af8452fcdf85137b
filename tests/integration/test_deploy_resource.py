"""gevent-websocket's application layer on pyws: ``Resource`` routes by
path to ``WebSocketApplication`` subclasses (WebSocket requests) and plain
WSGI apps (the others); the callbacks are called as documented."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

import pytest
import websocket  # websocket-client

from pyws.resource import Resource, WebSocketApplication
from tests.conftest import ServerProcess

TIMEOUT = 10
SCRIPT = "tests/integration/resource_server.py"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import sys

    from tests.conftest import ROOT

    log = tmp_path_factory.mktemp("resource") / "resource.log"
    proc = ServerProcess("resource server", [sys.executable, str(ROOT / SCRIPT)], log)
    proc.start_and_read_port()
    yield proc
    proc.stop()


def connect(server, path, **kw):
    return websocket.create_connection(server.url(path), timeout=TIMEOUT,
                                       suppress_origin=True, **kw)


def closes(server, path, count=1):
    query = f"/events?path={path}&count={count}"
    with urllib.request.urlopen(server.http_url(query), timeout=TIMEOUT) as resp:
        return json.loads(resp.read())


def close_code(conn) -> int:
    while True:
        opcode, data = conn.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(data[:2], "big")


def unique(prefix: str) -> str:
    return f"{prefix}/{uuid.uuid4().hex}"


def test_callbacks_in_order(server):
    path = unique("/echo")
    conn = connect(server, path)
    try:
        assert conn.recv() == f"open {path}"  # on_open
        conn.send("hi")
        assert conn.recv() == "echo:hi"  # on_message
        conn.send_binary(b"\x00\x01")
        assert conn.recv() == b"\x00\x01"
        conn.send_close(1000, b"bye")
        assert close_code(conn) == 1000
    finally:
        conn.close()
    # on_close(None), as gevent-websocket passes; ws.close_reason has "bye".
    assert closes(server, path) == [{"app": "EchoApp", "path": path, "code": 1000,
                                     "reason": None, "close_reason": "bye",
                                     "opened": True}]


def test_on_close_when_the_connection_is_lost(server):
    path = unique("/echo")
    conn = connect(server, path)
    assert conn.recv() == f"open {path}"
    conn.sock.close()  # no close frame
    [record] = closes(server, path)
    assert record["code"] == 1006


def test_exception_in_on_message_closes_1011_and_calls_on_close(server):
    path = unique("/echo")
    conn = connect(server, path)
    try:
        assert conn.recv() == f"open {path}"
        conn.send("raise")
        assert close_code(conn) == 1011
    finally:
        conn.close()
    [record] = closes(server, path)  # on_close was called, once
    assert record["opened"] is True
    assert "on_message failed on purpose" in server.log_since_mark()


def test_protocol_name_is_selected_when_offered(server):
    conn = connect(server, "/chat", subprotocols=["other", "chat"])
    try:
        assert conn.subprotocol == "chat"
        assert conn.recv() == "protocol=chat"
        conn.send("default on_message echoes")
        assert conn.recv() == "default on_message echoes"
    finally:
        conn.close()
    conn = connect(server, "/chat")
    try:
        assert conn.subprotocol is None
        assert conn.recv() == "protocol=None"
    finally:
        conn.close()


def test_routing_by_path_and_kind(server):
    with urllib.request.urlopen(server.http_url("/page"), timeout=TIMEOUT) as resp:
        assert resp.read() == b"a plain page\n"  # a plain WSGI app
    with pytest.raises(urllib.error.HTTPError) as info:  # only a WebSocket app there
        urllib.request.urlopen(server.http_url("/echo"), timeout=TIMEOUT)
    assert info.value.code == 400
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(server.http_url("/nowhere"), timeout=TIMEOUT)
    assert info.value.code == 404
    # "^/chat$" is exact: /chat/x matches nothing; a WebSocket request no
    # WebSocket app takes is closed with 1008 and the status as reason.
    for path in ("/chat/x", "/page", "/nowhere"):
        conn = connect(server, path)
        try:
            opcode, data = conn.recv_data(control_frame=True)
            assert opcode == websocket.ABNF.OPCODE_CLOSE
            assert int.from_bytes(data[:2], "big") == 1008
            assert data[2:] == b"404 Not Found"
        finally:
            conn.close()


def test_resource_rejects_non_apps():
    with pytest.raises(TypeError):
        Resource([("^/x", object())])
    resource = Resource({"^/a": WebSocketApplication, "^/b": lambda e, s: []})
    assert resource.app_protocol("/a") == ""
    assert [p.pattern for p, _ in resource.apps] == ["^/a", "^/b"]

    class Named(WebSocketApplication):
        PROTOCOL_NAME = "wamp"

    assert Resource([("^/w", Named)]).app_protocol("/w") == "wamp"
    assert Resource([("^/w", Named)]).app_protocol("/elsewhere") == ""
