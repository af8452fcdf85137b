"""Third-party clients and pyws.connect against gevent's WSGIServer with
pyws.WebSocketHandler (echo at /ws)."""
from __future__ import annotations

import json

import pytest

from tests.conftest import SERVER_SUBPROTOCOLS
from tests.integration.clients import CLIENT_IDS, CLIENTS, WebsocketClientClient

MiB = 1 << 20


@pytest.fixture(params=CLIENTS, ids=CLIENT_IDS)
def connect(request):
    """connect(url, subprotocols=None) -> Client, with any client library."""
    opened = []

    def make(url, subprotocols=None):
        c = request.param(url, subprotocols)
        opened.append(c)
        return c

    yield make
    for c in opened:
        try:
            c.abort()
        except Exception:
            pass


def test_text_message_is_echoed_as_text(echo_server, connect):
    c = connect(echo_server.url("/ws"))
    c.send("Hello")
    got = c.recv()
    assert type(got) is str and got == "Hello"


def test_binary_message_is_echoed_as_binary(echo_server, connect):
    c = connect(echo_server.url("/ws"))
    c.send(b"\x00\x01\xfe\xff")
    got = c.recv()
    assert type(got) is bytes and got == b"\x00\x01\xfe\xff"


def test_empty_text_and_binary_messages_are_echoed(echo_server, connect):
    c = connect(echo_server.url("/ws"))
    c.send("")
    c.send(b"")
    first, second = c.recv(), c.recv()
    assert (type(first), first) == (str, "")
    assert (type(second), second) == (bytes, b"")


def test_unicode_text_is_echoed(echo_server, connect):
    text = "h\u00e9llo \u20ac \u4e16\u754c \U0001d11e \U0001f600 \u0000 end"
    c = connect(echo_server.url("/ws"))
    c.send(text)
    assert c.recv() == text


def test_one_mib_text_and_binary_messages_are_echoed(echo_server, connect):
    text = ("0123456789abcdef" * (MiB // 16))
    data = bytes(range(256)) * (MiB // 256)
    assert len(text) == len(data) == MiB
    c = connect(echo_server.url("/ws"))
    c.send(text)
    assert c.recv() == text
    c.send(data)
    assert c.recv() == data


def test_many_messages_in_a_row_are_echoed_in_order(echo_server, connect):
    c = connect(echo_server.url("/ws"))
    msgs = [f"message {i}" if i % 3 else f"bin {i}".encode() for i in range(300)]
    for m in msgs:
        c.send(m)
    got = [c.recv() for _ in msgs]
    assert got == msgs


def test_client_close_is_answered_with_1000(echo_server, connect):
    c = connect(echo_server.url("/ws"))
    c.send("before close")
    assert c.recv() == "before close"
    code, _reason = c.close()
    assert code == 1000


def test_server_close_code_and_reason_reach_the_client(echo_server, connect):
    # '/close' echoes the first message twice, then ws.close(4000, b"bye").
    c = connect(echo_server.url("/close"))
    c.send("once")
    assert c.recv() == "once"
    assert c.recv() == "once"
    assert c.recv_close() == (4000, "bye")


def test_subprotocol_is_negotiated_in_server_preference_order(small_server, connect):
    # The server supports ["superchat", "chat"]; the client offers both.
    assert SERVER_SUBPROTOCOLS == ["superchat", "chat"]
    c = connect(small_server.url("/info"), ["chat", "superchat"])
    assert c.subprotocol == "superchat"
    info = json.loads(c.recv())
    assert info["protocol"] == "superchat"


def test_server_websocket_exposes_path_origin_and_protocol(echo_server):
    c = WebsocketClientClient.__new__(WebsocketClientClient)
    import websocket
    c.ws = websocket.create_connection(echo_server.url("/info?x=1"), timeout=10,
                                       origin="http://example.com")
    try:
        info = json.loads(c.recv())
        assert info == {"path": "/info", "origin": "http://example.com", "protocol": None,
                        "query": "x=1", "closed": False, "compressed": False,
                        "tcp_nodelay": True}
        c.send("still echoing")
        assert c.recv() == "still echoing"
    finally:
        c.abort()


def test_pyws_iteration_yields_messages_until_the_server_closes(echo_server):
    import pyws
    from tests.integration.clients import call_with_timeout
    ws = call_with_timeout(pyws.connect, echo_server.url("/close"), None, None, 10)
    with ws:
        ws.send("it")
        got = call_with_timeout(list, ws)
        assert got == ["it", "it"]
        assert ws.closed is True
        assert (ws.close_code, ws.close_reason) == (4000, "bye")
        # The iteration took the end: receive() now raises, as it would
        # after returning None once.
        with pytest.raises(pyws.ConnectionClosed):
            ws.receive()


def test_both_ends_send_small_messages_without_nagle_delay(echo_server):
    """TCP_NODELAY on both sockets: a small frame written while an earlier
    one is unacknowledged goes out at once instead of waiting for an ACK
    the peer may delay (the server side is reported by /info)."""
    import socket

    import pyws
    from tests.integration.clients import call_with_timeout
    ws = call_with_timeout(pyws.connect, echo_server.url("/info"), None, None, 10)
    with ws:
        assert ws.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert json.loads(call_with_timeout(ws.receive))["tcp_nodelay"] is True


def test_pyws_context_manager_closes_with_1000(echo_server):
    import pyws
    from tests.integration.clients import call_with_timeout
    ws = call_with_timeout(pyws.connect, echo_server.url("/ws"), None, None, 10)
    with ws:
        ws.send(b"x")
        assert call_with_timeout(ws.receive) == b"x"
        assert ws.closed is False
    assert ws.closed is True
    assert ws.close_code == 1000
    with pytest.raises(pyws.ConnectionClosed):
        ws.send("after close")


def test_pyws_connect_raises_handshake_error_with_the_server_status():
    import socket
    import threading

    import pyws
    from tests.integration.clients import call_with_timeout

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)

    def refuse():
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            body = b"go away"
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 7\r\n"
                         b"Connection: close\r\n\r\n" + body)

    t = threading.Thread(target=refuse, daemon=True)
    t.start()
    try:
        with pytest.raises(pyws.HandshakeError) as ei:
            call_with_timeout(pyws.connect, f"ws://127.0.0.1:{listener.getsockname()[1]}/ws",
                              None, None, 10)
        assert ei.value.status == 403
    finally:
        t.join(10)
        listener.close()
