"""websocket.close (app to client) and websocket.disconnect (client to app)
under uvicorn: codes and reasons as each side sees them."""
from __future__ import annotations

import urllib.parse

import pytest
import websocket as websocket_client
from websockets.exceptions import ConnectionClosed

from tests.asgi.support import (
    answer_close,
    client_close,
    raw_request,
    read_frames_until_close,
    ws_connect,
    wsc_connect,
)
from tests.wire import OP_CLOSE, OP_TEXT, RawClient, close_payload


def _close_url(server, code, reason="", after=0, token=None):
    query = {"code": code, "reason": reason, "after": after}
    if token:
        query["id"] = token
    return server.url("/close?" + urllib.parse.urlencode(query))


@pytest.mark.parametrize("code, reason", [
    (1000, ""), (1001, "going away"), (1011, "it broke"), (4001, "bye now"),
    (4999, "au revoir \u00e9\u4e16"), (3000, "x" * 123),
], ids=["1000", "1001", "1011", "4001", "unicode-reason", "max-reason"])
def test_close_code_and_reason_from_app_reach_client(server, code, reason):
    with ws_connect(_close_url(server, code, reason)) as ws, \
            pytest.raises(ConnectionClosed) as info:
        ws.recv(timeout=10)
    assert info.value.rcvd is not None, "the client got no close frame"
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (code, reason)


def test_close_frame_from_app_is_exactly_code_and_reason_on_the_wire(server):
    with RawClient(server.port) as client:
        client.handshake("/close?code=4001&reason=bye%20now")
        frames, close = read_frames_until_close(client)
        assert frames == []
        assert close is not None
        assert close.payload == close_payload(4001, "bye now")
        assert (close.fin, close.masked, close.rsv) == (True, False, 0)


def test_close_without_reason_from_app_is_a_two_byte_payload(server):
    with RawClient(server.port) as client:
        client.handshake("/close?code=1000")
        _, close = read_frames_until_close(client)
        assert close is not None and close.payload == b"\x03\xe8"


def test_close_from_app_follows_the_messages_it_sent(server):
    with ws_connect(_close_url(server, 4002, "after two", after=2)) as ws:
        ws.send("one")
        ws.send(b"two")
        assert ws.recv(timeout=10) == "one"
        assert ws.recv(timeout=10) == b"two"
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (4002, "after two")


def test_server_closes_tcp_once_client_answers_its_close(server):
    with RawClient(server.port) as client:
        client.handshake("/close?code=4003&reason=handshake")
        _, close = read_frames_until_close(client)
        assert close is not None and close.close_code == 4003
        assert answer_close(client, close) == b""
        assert client.eof


def test_server_close_reaches_websocket_client(server):
    ws = wsc_connect(_close_url(server, 4004, "wsc"))
    try:
        opcode, frame = ws.recv_data_frame(control_frame=True)
        assert opcode == websocket_client.ABNF.OPCODE_CLOSE
        assert frame.data == close_payload(4004, "wsc")
    finally:
        ws.close()


@pytest.mark.parametrize("code, reason", [(1000, ""), (1001, "tab closed"), (4000, "client-bye"),
                                          (4321, "\u00e9t\u00e9")],
                         ids=["1000", "1001", "4000", "unicode-reason"])
def test_client_close_code_and_reason_reach_app(server, token, code, reason):
    with ws_connect(server.url(f"/record?id={token}")) as ws:
        ws.close(code, reason)
        # The server answered the close with the same code.
        assert ws.protocol.close_rcvd is not None
        assert ws.protocol.close_rcvd.code == code
    record = server.recorded_disconnect(token)
    assert (record["code"], record["reason"]) == (code, reason)


def test_client_close_echoed_then_tcp_closed_by_server(server, token):
    with RawClient(server.port) as client:
        client.handshake(f"/record?id={token}")
        reply = client_close(client, 4000, "client-bye")
        assert reply.close_code == 4000
        assert client.expect_eof() == b""
    assert server.recorded_disconnect(token)["code"] == 4000


def test_server_answers_client_close_with_the_same_code_and_reason(server):
    """uvicorn's implementations echo the client's close frame whole."""
    with RawClient(server.port) as client:
        client.handshake("/echo")
        reply = client_close(client, 4000, "client-bye")
        assert (reply.close_code, reply.close_reason) == (4000, b"client-bye")


def test_client_close_without_code_reaches_app_as_1005(server, token):
    with RawClient(server.port) as client:
        client.handshake(f"/record?id={token}")
        reply = client_close(client, None)
        # An empty close is answered with an empty close (RFC 6455 5.5.1).
        assert reply.payload == b""
    record = server.recorded_disconnect(token)
    assert record["code"] == 1005
    assert record["reason"] == ""


def test_client_close_from_websocket_client_reaches_app(server, token):
    ws = wsc_connect(server.url(f"/record?id={token}"))
    ws.close(status=4005, reason=b"wsc says bye")
    assert server.recorded_disconnect(token)["code"] == 4005


# When TCP drops without a close frame the app gets 1006 from the
# websockets implementation, 1005 from websockets-sansio and wsproto.
DROP_CODES = {"websockets": {1006}, "websockets-sansio": {1005}, "wsproto": {1005},
              "pyws": {1005, 1006}}


def test_tcp_drop_after_handshake_reaches_app_as_abnormal_closure(server, impl, token):
    with RawClient(server.port) as client:
        client.handshake(f"/record?id={token}")
    record = server.recorded_disconnect(token)
    assert record["code"] in DROP_CODES[impl], record


def test_tcp_drop_in_mid_message_reaches_app(server, impl, token):
    with RawClient(server.port) as client:
        client.handshake(f"/record?id={token}")
        client.send_frame(OP_TEXT, "first half ", fin=False)
    record = server.recorded_disconnect(token)
    assert record["code"] in DROP_CODES[impl], record


def test_app_raising_after_accept_ends_the_connection_abnormally(server):
    """uvicorn's implementations drop TCP without a close frame (the client
    sees 1006); pyws sends 1011, as its rule says; never a normal 1000."""
    with ws_connect(server.url("/raise-after-accept")) as ws:
        assert ws.recv(timeout=10).startswith("about to")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    rcvd = info.value.rcvd
    assert rcvd is None or rcvd.code == 1011, rcvd


def test_app_returning_after_accept_ends_the_connection(server, impl):
    """An application that returns without closing: uvicorn's
    implementations drop TCP without a close frame, so the client sees 1006,
    as after a crash; pyws completes a closing handshake with 1000, its rule
    for a handler that returned (docs/asgi.md says so)."""
    with ws_connect(server.url("/return-after-accept")) as ws:
        assert ws.recv(timeout=10).startswith("about to")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    rcvd = info.value.rcvd
    if impl == "pyws":
        assert rcvd is not None and rcvd.code == 1000, rcvd
    else:
        assert rcvd is None, rcvd


def test_close_frame_from_client_after_app_closed_completes_handshake(server, token):
    """Both sides close at once: the app closes while the client's close is
    in flight; the connection still ends cleanly."""
    with RawClient(server.port) as client:
        client.handshake("/close?code=4010&reason=crossing&after=1")
        client.send_frame(OP_TEXT, "trigger")
        client.send_frame(OP_CLOSE, close_payload(4011, "client crossing"))
        _, close = read_frames_until_close(client)
        assert close is not None and close.close_code in (4010, 4011)
        client.expect_eof()


@pytest.mark.parametrize("path, status", [("/reject", 403), ("/deny", 401)],
                         ids=["close-before-accept", "denial-response"])
def test_app_gets_a_disconnect_after_refusing(server, token, path, status):
    client, resp = raw_request(server.port, f"{path}?id={token}")
    with client:
        assert resp.status == status
    record = server.recorded_disconnect(token)
    assert (record["type"], record["code"]) == ("websocket.disconnect", 1006), record


# uvicorn's websockets implementation raises RuntimeError there; the others
# raise ClientDisconnected, an OSError, as the ASGI spec asks.
SEND_AFTER_DISCONNECT_ERRORS = {"websockets": "RuntimeError"}


def test_send_after_disconnect_raises_oserror_in_the_app(server, impl, token):
    with ws_connect(server.url(f"/send-after-disconnect?id={token}")) as ws:
        ws.close(1000)
    record = server.recorded_disconnect(token)
    assert record["code"] == 1000
    if impl in SEND_AFTER_DISCONNECT_ERRORS:
        assert record["send_error"] == SEND_AFTER_DISCONNECT_ERRORS[impl]
    else:
        assert record["send_error_is_oserror"], record
        assert record["send_error"] == "ClientDisconnected", record


def test_new_connections_work_after_an_app_send_failed_on_a_closed_one(server, token):
    """A send that fails (the client had gone) must leave nothing behind
    that breaks the next connections' handshakes or messages."""
    with ws_connect(server.url(f"/send-after-disconnect?id={token}")) as ws:
        ws.close(1000)
    assert server.recorded_disconnect(token)["send_error"] is not None
    for i in range(10):
        with ws_connect(server.url("/echo")) as ws:
            ws.send(f"after the failed send {i}")
            assert ws.recv(timeout=10) == f"after the failed send {i}"
