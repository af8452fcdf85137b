"""Bad upgrade requests over raw sockets get the right HTTP error, and the
server keeps serving a good client on the same server before, between and
after them."""
from __future__ import annotations

import base64

import pytest
import websocket

from tests.wire import RawClient, upgrade_request


@pytest.fixture(scope="module")
def good_client(echo_server):
    ws = websocket.create_connection(echo_server.url("/ws"), timeout=10)
    yield ws
    ws.close(timeout=2)


def check_echo(ws, text):
    ws.send(text)
    assert ws.recv() == text


def send_raw(server, request: bytes):
    with RawClient(server.port, timeout=10) as raw:
        raw.send(request)
        resp = raw.read_http_response()
        # The server must not keep a rejected connection open forever.
        raw.expect_eof()
        return resp


def host(server):
    return f"127.0.0.1:{server.port}"


def test_good_client_echoes_before_bad_requests(echo_server, good_client):
    check_echo(good_client, "before")


def test_version_12_gets_426_with_supported_version(echo_server, good_client):
    req, _ = upgrade_request(host(echo_server), ws_version="12")
    resp = send_raw(echo_server, req)
    assert resp.status == 426
    assert resp.header("Sec-WebSocket-Version") == "13"
    check_echo(good_client, "after version 12")


def test_missing_version_gets_426(echo_server, good_client):
    req, _ = upgrade_request(host(echo_server), ws_version=None)
    resp = send_raw(echo_server, req)
    assert resp.status == 426
    assert resp.header("Sec-WebSocket-Version") == "13"
    check_echo(good_client, "after missing version")


def test_missing_key_gets_400_naming_the_key(echo_server, good_client):
    req, _ = upgrade_request(host(echo_server), omit=("sec-websocket-key",))
    resp = send_raw(echo_server, req)
    assert resp.status == 400
    assert b"key" in resp.body.lower(), resp.body
    check_echo(good_client, "after missing key")


@pytest.mark.parametrize("key", ["not-a-base64-key", base64.b64encode(b"k" * 15).decode(),
                                 base64.b64encode(b"k" * 17).decode()],
                         ids=["garbage", "15-bytes", "17-bytes"])
def test_bad_key_gets_400_naming_the_key(echo_server, good_client, key):
    req, _ = upgrade_request(host(echo_server), key=key)
    resp = send_raw(echo_server, req)
    assert resp.status == 400
    assert b"key" in resp.body.lower(), resp.body
    check_echo(good_client, "after bad key")


def test_missing_connection_upgrade_gets_400(echo_server, good_client):
    req, _ = upgrade_request(host(echo_server), omit=("connection",))
    resp = send_raw(echo_server, req)
    assert resp.status == 400
    assert b"connection" in resp.body.lower(), resp.body
    check_echo(good_client, "after missing connection")


def test_post_upgrade_gets_405_allowing_get(echo_server, good_client):
    req, _ = upgrade_request(host(echo_server), method="POST",
                             extra=(("Content-Length", "0"),))
    resp = send_raw(echo_server, req)
    assert resp.status == 405
    assert resp.header("Allow") == "GET"
    check_echo(good_client, "after POST")


def test_http_1_0_upgrade_gets_400(echo_server, good_client):
    req, _ = upgrade_request(host(echo_server), version="HTTP/1.0")
    resp = send_raw(echo_server, req)
    assert resp.status == 400
    check_echo(good_client, "after HTTP/1.0")


def test_garbage_request_does_not_disturb_the_server(echo_server, good_client):
    with RawClient(echo_server.port, timeout=10) as raw:
        raw.send(b"\x16\x03\x01\x00\xff" + bytes(range(256)) + b"\r\n\r\n")
        data = raw.expect_eof()
        assert not data.startswith(b"HTTP/1.1 101"), data[:100]
    check_echo(good_client, "after garbage")


def test_client_disconnecting_mid_handshake_does_not_disturb_the_server(echo_server,
                                                                         good_client):
    req, _ = upgrade_request(host(echo_server))
    with RawClient(echo_server.port, timeout=10) as raw:
        raw.send(req[:len(req) // 2])
    check_echo(good_client, "after half a request")


def test_plain_http_get_root_serves_the_page(echo_server, good_client):
    with RawClient(echo_server.port, timeout=10) as raw:
        raw.send(f"GET / HTTP/1.1\r\nHost: {host(echo_server)}\r\n"
                 "Connection: close\r\n\r\n".encode())
        resp = raw.read_http_response()
    assert resp.status == 200
    assert resp.header("Content-Type").startswith("text/html")
    assert b"<html>" in resp.body
    check_echo(good_client, "after plain GET")


def test_plain_http_get_of_websocket_route_reaches_the_app_without_websocket(echo_server):
    with RawClient(echo_server.port, timeout=10) as raw:
        raw.send(f"GET /ws HTTP/1.1\r\nHost: {host(echo_server)}\r\n"
                 "Connection: close\r\n\r\n".encode())
        resp = raw.read_http_response()
    assert (resp.status, resp.body) == (400, b"no websocket in environ")


def test_good_client_still_echoes_after_all_bad_requests(echo_server, good_client):
    check_echo(good_client, "after all")
    # and new connections are still accepted
    ws = websocket.create_connection(echo_server.url("/ws"), timeout=10)
    try:
        check_echo(ws, "new connection")
    finally:
        ws.close(timeout=2)
