"""One Flask app (deploy_app.py: ``pyws.flask.Sock`` routes and a
gevent-websocket style route) under each server pyws supports: gevent's
WSGIServer with pyws's handler, Werkzeug's development server (threaded),
gunicorn with ``pyws.gunicorn.GeventWebSocketWorker`` and gunicorn's
``gthread`` worker.  Clients are third-party: websocket-client and
websockets."""
from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest
import websocket  # websocket-client
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from tests.deploy_support import GUNICORN_ENV_MAX, SERVERS, start_deploy
from tests.wire import OP_CLOSE, OP_TEXT, RawClient, build_frame, upgrade_request

TIMEOUT = 10


@pytest.fixture(scope="module", params=SERVERS)
def server(request, tmp_path_factory):
    proc = start_deploy(request.param, tmp_path_factory.mktemp("deploy"))
    proc.kind = request.param
    yield proc
    proc.stop()
    check_server_log(proc.log())


def check_server_log(log: str) -> None:
    """Once the server has stopped: WebSocket requests were logged as 101
    by the server's own access log, and the only tracebacks are those of
    the /fail view (no error from the server writing after the session)."""
    for path in ("/ws", "/article", "/room/kitchen"):
        assert re.search(rf'GET {re.escape(path)} HTTP/1\.1(\x1b\[0m)?" 101 ', log), \
            f"no 101 logged for {path}:\n{log[-3000:]}"
    assert log.count("Traceback") == log.count("the view failed on purpose") // 2, log[-6000:]
    for noise in ("Socket error", "Error on request", "Bad file descriptor",
                  "Error handling request"):
        assert noise not in log, log[-6000:]


def wsc(server, path, **kw):
    """A websocket-client connection (no Origin header unless given)."""
    if "origin" not in kw:
        kw["suppress_origin"] = True
    return websocket.create_connection(server.url(path), timeout=TIMEOUT, **kw)


def close_code(conn) -> int:
    """Read until the server's close frame; its code."""
    while True:
        opcode, data = conn.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(data[:2], "big")


def raw_response(server, request: bytes, then: bytes = b""):
    with RawClient(server.port, timeout=TIMEOUT) as client:
        client.send(request + then)
        return client.read_http_response()


# -- the routes ----------------------------------------------------------------

def test_sock_route_echoes(server):
    conn = wsc(server, "/ws")
    try:
        conn.send("héllo")
        assert conn.recv() == "héllo"
        conn.send_binary(b"\x00\xff\x01")
        assert conn.recv() == b"\x00\xff\x01"
        conn.send_close(1000, b"done")
        assert close_code(conn) == 1000
    finally:
        conn.close()


def test_article_style_route_echoes(server):
    with ws_connect(server.url("/article"), open_timeout=TIMEOUT,
                    close_timeout=TIMEOUT) as conn:
        conn.send("from the article")
        assert conn.recv(timeout=TIMEOUT) == "from the article"
        conn.send(b"\x01\x02")
        assert conn.recv(timeout=TIMEOUT) == b"\x01\x02"
    assert conn.close_code == 1000


def test_url_variables_are_keyword_arguments(server):
    conn = wsc(server, "/room/kitchen")
    try:
        assert conn.recv() == "kitchen"
        conn.send("after")
        assert conn.recv() == "after"
    finally:
        conn.close()


def test_plain_get_to_a_sock_route_is_400(server):
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(server.http_url("/ws"), timeout=TIMEOUT)
    assert info.value.code == 400
    assert info.value.read() == b"WebSocket expected\n"


def test_http_pages_still_served(server):
    with urllib.request.urlopen(server.http_url("/"), timeout=TIMEOUT) as resp:
        assert resp.status == 200
        assert b"new WebSocket" in resp.read()


def test_frames_right_behind_the_handshake_are_kept(server):
    """A client may send its first frames in the same packet as the request:
    they sit in the server's read buffer and must reach the WebSocket."""
    with RawClient(server.port, timeout=TIMEOUT) as client:
        frames = (build_frame(OP_TEXT, "first", mask=b"abcd")
                  + build_frame(OP_TEXT, "second", mask=b"efgh"))
        client.handshake("/ws", then=frames)
        assert client.read_frame().payload == b"first"
        assert client.read_frame().payload == b"second"
        client.send_frame(OP_CLOSE, b"\x03\xe8")
        frame = client.read_frame()
        assert frame.opcode == OP_CLOSE and frame.close_code == 1000
        client.expect_eof()


def test_view_exception_closes_with_1011(server):
    conn = wsc(server, "/fail")
    try:
        conn.send("boom")
        assert close_code(conn) == 1011
    finally:
        conn.close()
    assert "the view failed on purpose" in server.log_since_mark()


# -- bad upgrade requests ------------------------------------------------------------

def test_missing_key_is_400_with_reason(server):
    request, _ = upgrade_request(f"127.0.0.1:{server.port}", "/ws",
                                 omit=("sec-websocket-key",))
    resp = raw_response(server, request)
    assert resp.status == 400
    assert b"Sec-WebSocket-Key" in resp.body


def test_wrong_version_is_426(server):
    request, _ = upgrade_request(f"127.0.0.1:{server.port}", "/ws", ws_version="8")
    resp = raw_response(server, request)
    assert resp.status == 426
    assert resp.header("Sec-WebSocket-Version") == "13"
    assert b"version" in resp.body.lower()


def test_post_upgrade_is_405(server):
    request, _ = upgrade_request(f"127.0.0.1:{server.port}", "/ws", method="POST",
                                 extra=(("Content-Length", "0"),))
    resp = raw_response(server, request)
    assert resp.status == 405
    assert "GET" in (resp.header("Allow") or "")


# -- handshake options of a Sock (the /guarded route) ------------------------------

def test_allowed_origins_are_accepted(server):
    for origin in ("https://app.example", "https://APP.Example:443",
                   "http://127.0.0.1:8000"):
        conn = wsc(server, "/guarded", origin=origin)
        try:
            assert json.loads(conn.recv())["origin"] == origin
        finally:
            conn.close()


def test_request_without_origin_is_accepted(server):
    conn = wsc(server, "/guarded")  # no Origin: not a browser
    try:
        assert json.loads(conn.recv())["origin"] is None
    finally:
        conn.close()


@pytest.mark.parametrize("origin", ["https://evil.example", "http://app.example",
                                    "https://app.example:8443", "null"])
def test_other_origins_are_refused_with_403(server, origin):
    with pytest.raises(InvalidStatus) as info:
        ws_connect(server.url("/guarded"), origin=origin, open_timeout=TIMEOUT)
    response = info.value.response
    assert response.status_code == 403
    assert b"is not allowed" in response.body
    assert origin.encode() in response.body


def test_subprotocol_selected_in_server_preference(server):
    with ws_connect(server.url("/guarded"), subprotocols=["chat.v1", "chat.v2"],
                    open_timeout=TIMEOUT) as conn:
        assert conn.subprotocol == "chat.v2"
        assert json.loads(conn.recv(timeout=TIMEOUT))["protocol"] == "chat.v2"
    with ws_connect(server.url("/guarded"), subprotocols=["chat.v1", "other"],
                    open_timeout=TIMEOUT) as conn:
        assert conn.subprotocol == "chat.v1"


def test_no_subprotocol_when_none_is_shared(server):
    with ws_connect(server.url("/guarded"), subprotocols=["other"],
                    open_timeout=TIMEOUT) as conn:
        assert conn.subprotocol is None
        assert "Sec-WebSocket-Protocol" not in conn.response.headers
        assert json.loads(conn.recv(timeout=TIMEOUT))["protocol"] is None
    with ws_connect(server.url("/guarded"), open_timeout=TIMEOUT) as conn:
        assert conn.subprotocol is None


def test_extra_headers_are_in_the_101(server):
    with ws_connect(server.url("/guarded"), open_timeout=TIMEOUT) as conn:
        assert conn.response.status_code == 101
        assert conn.response.headers["X-Pyws-Deploy"] == "extra-header-value"
    with ws_connect(server.url("/ws"), open_timeout=TIMEOUT) as conn:
        assert "X-Pyws-Deploy" not in conn.response.headers  # that Sock only


def test_on_upgrade_refuses_with_its_status_headers_and_body(server):
    with pytest.raises(InvalidStatus) as info:
        ws_connect(server.url("/guarded?token=bad"), open_timeout=TIMEOUT)
    response = info.value.response
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="deploy"'
    assert response.body == b"bad token for /guarded\n"
    # The same route with another token upgrades.
    with ws_connect(server.url("/guarded?token=good"), open_timeout=TIMEOUT) as conn:
        assert json.loads(conn.recv(timeout=TIMEOUT))["protocol"] is None


def test_sock_max_message_size(server):
    """The /guarded Sock says max_message_size=1024, whatever the server."""
    conn = wsc(server, "/guarded")
    try:
        assert json.loads(conn.recv())["max_message_size"] == 1024
        conn.send("x" * 1024)
        assert conn.recv() == "x" * 1024
        conn.send("x" * 1025)
        assert close_code(conn) == 1009
    finally:
        conn.close()


def test_server_max_message_size(server):
    """The pyws gunicorn worker reads PYWS_MAX_MESSAGE_SIZE (set to 4096 by
    the fixture): it applies to both route styles.  Elsewhere the default
    (1 MiB) does."""
    message = "y" * (GUNICORN_ENV_MAX + 1)
    for path in ("/article", "/ws"):
        conn = wsc(server, path)
        try:
            conn.send(message)
            if server.kind == "gunicorn-pyws":
                assert close_code(conn) == 1009
            else:
                assert conn.recv() == message
        finally:
            conn.close()
