"""Handshake options: on ``pyws.WebSocketServer`` (read by the handler, for
every route) and how they combine with a ``Sock``'s; their validation; the
gunicorn worker's option sources; a Sock under a server that exposes no
socket."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from flask import Flask
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from pyws._handshake import HandshakePolicy, Refusal, negotiate
from pyws.flask import Sock
from tests.conftest import ROOT, subprocess_env
from tests.deploy_support import start_deploy

TIMEOUT = 10
SERVER_ORIGIN = "https://server.example"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """deploy_app under WebSocketServer(origins=[SERVER_ORIGIN],
    subprotocols=["server.v1"], extra_headers=[("X-Pyws-Server", ...)],
    on_upgrade=<429 when X-Refuse: yes>)."""
    proc = start_deploy("gevent-options", tmp_path_factory.mktemp("options"))
    yield proc
    proc.stop()


def refused(server, path, **kw):
    with pytest.raises(InvalidStatus) as info:
        ws_connect(server.url(path), open_timeout=TIMEOUT, **kw)
    return info.value.response


# -- WebSocketServer options, plain (article-style) route ------------------------------

def test_server_origins(server):
    with ws_connect(server.url("/article"), origin=SERVER_ORIGIN,
                    open_timeout=TIMEOUT) as conn:
        conn.send("ok")
        assert conn.recv(timeout=TIMEOUT) == "ok"
    with ws_connect(server.url("/article"), open_timeout=TIMEOUT) as conn:  # no Origin
        conn.send("ok")
        assert conn.recv(timeout=TIMEOUT) == "ok"
    response = refused(server, "/article", origin="https://evil.example")
    assert response.status_code == 403
    assert b"'https://evil.example' is not allowed" in response.body


def test_server_subprotocols_and_extra_headers(server):
    with ws_connect(server.url("/article"), subprotocols=["other", "server.v1"],
                    open_timeout=TIMEOUT) as conn:
        assert conn.subprotocol == "server.v1"
        assert conn.response.headers["X-Pyws-Server"] == "server-level"
    with ws_connect(server.url("/article"), subprotocols=["other"],
                    open_timeout=TIMEOUT) as conn:
        assert conn.subprotocol is None


def test_server_on_upgrade_refusal(server):
    response = refused(server, "/article", additional_headers={"X-Refuse": "yes"})
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.body == b"slow down\n"


# -- with a Sock: both sets of options apply --------------------------------------------

def test_server_options_apply_to_sock_routes(server):
    response = refused(server, "/ws", origin="https://evil.example")
    assert response.status_code == 403
    response = refused(server, "/ws", additional_headers={"X-Refuse": "yes"})
    assert response.status_code == 429
    with ws_connect(server.url("/ws"), origin=SERVER_ORIGIN, subprotocols=["server.v1"],
                    open_timeout=TIMEOUT) as conn:
        assert conn.subprotocol == "server.v1"
        assert conn.response.headers["X-Pyws-Server"] == "server-level"
        conn.send("through the sock")
        assert conn.recv(timeout=TIMEOUT) == "through the sock"


def test_both_origin_lists_must_allow(server):
    # Allowed by the server, not by the /guarded Sock; then the reverse.
    assert refused(server, "/guarded", origin=SERVER_ORIGIN).status_code == 403
    assert refused(server, "/guarded", origin="https://app.example").status_code == 403


def test_sock_subprotocols_replace_the_servers_and_headers_add_up(server):
    with ws_connect(server.url("/guarded"), subprotocols=["server.v1", "chat.v1"],
                    open_timeout=TIMEOUT) as conn:
        assert conn.subprotocol == "chat.v1"
        assert conn.response.headers["X-Pyws-Server"] == "server-level"
        assert conn.response.headers["X-Pyws-Deploy"] == "extra-header-value"
        info = json.loads(conn.recv(timeout=TIMEOUT))
        assert info == {"protocol": "chat.v1", "origin": None, "max_message_size": 1024}


def test_sock_on_upgrade_runs_after_the_servers(server):
    assert refused(server, "/guarded?token=bad").status_code == 401
    assert refused(server, "/guarded?token=bad",
                   additional_headers={"X-Refuse": "yes"}).status_code == 429


# -- validation and the negotiation itself -------------------------------------------

REQUEST = [("Host", "example.com"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
           ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
           ("Sec-WebSocket-Version", "13")]
ENVIRON = {"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1", "PATH_INFO": "/ws"}


def test_origin_matching():
    policy = HandshakePolicy(origins=["https://App.Example", "http://localhost:8080",
                                      "https://[::1]:8443"])
    assert policy.origin_allowed([])
    for origin in ("https://app.example", "HTTPS://APP.EXAMPLE:443",
                   "http://localhost:8080", "https://[::1]:8443"):
        assert policy.origin_allowed([origin]), origin
    for origin in ("http://app.example", "https://app.example:444", "https://x.app.example",
                   "https://app.example.evil", "http://localhost", "null",
                   "https://app.example/", "not an origin", ""):
        assert not policy.origin_allowed([origin]), origin
    # Several Origin fields: ambiguous, refused.
    assert not policy.origin_allowed(["https://app.example", "https://app.example"])
    assert HandshakePolicy(origins=["null"]).origin_allowed(["null"])
    assert HandshakePolicy().origin_allowed(["https://anything.example"])
    assert not HandshakePolicy(origins=[]).origin_allowed(["https://anything.example"])


@pytest.mark.parametrize("kwargs, error", [
    ({"origins": "https://a.example"}, TypeError),
    ({"origins": ["https://a.example/"]}, ValueError),
    ({"origins": ["a.example"]}, ValueError),
    ({"origins": ["https://a.example?x"]}, ValueError),
    ({"origins": [b"https://a.example"]}, TypeError),
    ({"subprotocols": "chat"}, TypeError),
    ({"extra_headers": [("Connection", "close")]}, ValueError),
    ({"extra_headers": [("Sec-WebSocket-Accept", "x")]}, ValueError),
    ({"extra_headers": [("Bad Name", "x")]}, ValueError),
    ({"extra_headers": [("X-Ok", "a\r\nX-Injected: 1")]}, ValueError),
    ({"extra_headers": {"X-Ok": "1"}}, TypeError),
    ({"on_upgrade": "not callable"}, TypeError),
])
def test_bad_options_are_refused(kwargs, error):
    with pytest.raises(error):
        HandshakePolicy(**kwargs)
    with pytest.raises(error):
        Sock(Flask(__name__), **kwargs)


def test_negotiate_applies_every_policy_in_order():
    calls = []

    def hook(name):
        def on_upgrade(environ):
            calls.append(name)
            return None
        return on_upgrade

    first = HandshakePolicy(subprotocols=["a"], extra_headers=[("X-First", "1")],
                            on_upgrade=hook("first"))
    second = HandshakePolicy(extra_headers=[("X-Second", "2")], on_upgrade=hook("second"))
    headers, selected, _ = negotiate(ENVIRON, REQUEST + [("Sec-WebSocket-Protocol", "b, a")],
                                  [first, second])
    assert selected == "a"
    assert calls == ["first", "second"]
    assert headers[-2:] == [("X-First", "1"), ("X-Second", "2")]
    assert ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") in headers


@pytest.mark.parametrize("result, error", [
    ("no", TypeError), ((401, []), TypeError), ((101, [], ""), ValueError),
    (("teapot", [], ""), ValueError), ((401, [], 5), TypeError),
    ((401, [("X", "a\nb")], ""), ValueError), ((True, [], ""), TypeError),
])
def test_bad_on_upgrade_results_raise(result, error):
    policy = HandshakePolicy(on_upgrade=lambda environ: result)
    with pytest.raises(error):
        negotiate(ENVIRON, REQUEST, [policy])


def test_on_upgrade_status_line_and_bytes_body():
    policy = HandshakePolicy(on_upgrade=lambda environ: ("418 I'm a teapot", [], b"\xff"))
    with pytest.raises(Refusal) as info:
        negotiate(ENVIRON, REQUEST, [policy])
    assert info.value.status == 418 and info.value.body == b"\xff"
    assert ("Content-Length", "1") in info.value.response_headers()


def test_sock_connection_options_are_checked():
    app = Flask(__name__)
    with pytest.raises(TypeError):
        Sock(app, max_mesage_size=10)
    with pytest.raises(ValueError):
        Sock(app, max_message_size=-1)
    with pytest.raises(ValueError):
        Sock(app, ping_interval=-1.0)
    with pytest.raises(ValueError):
        Sock(app).route("/ws", methods=["POST"])


def test_sock_under_a_server_without_socket_access():
    """Flask's test client exposes no socket: plain requests get 400, upgrade
    requests 500 naming the servers that work."""
    app = Flask(__name__)
    sock = Sock()

    @sock.route("/ws")
    def ws(ws):  # pragma: no cover - never upgraded here
        ws.send("unreachable")

    sock.init_app(app)  # routes declared before init_app are registered then
    client = app.test_client()
    response = client.get("/ws")
    assert response.status_code == 400
    assert response.data == b"WebSocket expected\n"
    response = client.get("/ws", headers=dict(REQUEST))
    assert response.status_code == 500
    assert b"WebSocket not supported by this server" in response.data
    response = client.get("/ws", headers=dict(REQUEST, **{"Sec-WebSocket-Version": "7"}))
    assert response.status_code == 426


def test_sock_on_upgrade_runs_in_the_flask_context():
    """A Sock's on_upgrade runs inside the view: flask.request works, and an
    HTTP exception it raises is Flask's to answer."""
    from flask import abort, request

    app = Flask(__name__)
    seen = []

    def on_upgrade(environ):
        seen.append(request.path)
        if request.args.get("who") != "me":
            abort(401)
        return None

    sock = Sock(app, on_upgrade=on_upgrade)

    @sock.route("/ws")
    def ws(ws):  # pragma: no cover - never upgraded here
        pass

    response = app.test_client().get("/ws", headers=dict(REQUEST))
    assert response.status_code == 401
    assert seen == ["/ws"]
    # Accepted by the hook: then the test client's missing socket shows.
    assert app.test_client().get("/ws?who=me", headers=dict(REQUEST)).status_code == 500


def test_gunicorn_worker_option_sources():
    """Class options < the app's config < PYWS_* variables (in a subprocess:
    pyws.gunicorn imports gevent)."""
    script = textwrap.dedent("""
        from pyws.gunicorn import server_options
        opts = server_options({"max_message_size": 1, "ping_interval": 5.0},
                              {"max_message_size": 2, "idle_timeout": 9.0},
                              {"PYWS_PING_INTERVAL": "none", "PYWS_CLOSE_TIMEOUT": "1.5",
                               "PYWS_ORIGINS": "https://a.example, https://b.example",
                               "PYWS_SUBPROTOCOLS": "x,y", "UNRELATED": "1"})
        assert opts == {"max_message_size": 2, "ping_interval": None, "idle_timeout": 9.0,
                        "close_timeout": 1.5,
                        "origins": ["https://a.example", "https://b.example"],
                        "subprotocols": ["x", "y"]}, opts
        for bad, error in [({"PYWS_MAX_MESSAGE_SIZE": "lots"}, ValueError),
                           ({"PYWS_ORIGINS": "a.example"}, ValueError),
                           ({"PYWS_PING_TIMEOUT": "-1"}, ValueError)]:
            try:
                server_options(environ=bad)
            except error:
                pass
            else:
                raise AssertionError(bad)
        try:
            server_options(config={"max_mesage_size": 1})
        except TypeError:
            pass
        else:
            raise AssertionError("unknown option accepted")
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=str(ROOT),
                            env=subprocess_env(), capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.strip() == "ok", result.stderr
