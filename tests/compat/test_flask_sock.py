"""pyws.flask against flask-sock 0.7.0 / simple-websocket 1.1, the peer itself.

Each behaviour test runs twice, ``peer`` in ``["pyws", "flask-sock"]``: the
same program written for flask-sock (tests/compat/fs_app.py), whose only
peer-dependent line is ``from flask_sock import Sock, ConnectionClosed`` vs
``from pyws.flask import Sock, ConnectionClosed``, in a subprocess on
127.0.0.1 port 0, under the servers flask-sock's docs/web_servers.rst lists,
driven by third-party clients (websockets, websocket-client).  A test that
is wrong about flask-sock fails on flask-sock.

Then flask-sock's own test suite (its tests/test_flask_sock.py: how routes
are registered), in-process, with only the module switched.

Last, a marked section: where pyws deliberately differs, pyws's behaviour
alone, each with its reason.

eventlet is not a deployment pyws supports (docs/migrating.md says so):
gunicorn 27 has no eventlet worker any more, and eventlet's own WSGI server
is not supported by pyws.flask.
"""
from __future__ import annotations

import importlib
import json
import socket
import urllib.error
import urllib.request
from typing import Any, Dict, Iterator, Optional, Tuple

import pytest
import websocket  # websocket-client
from flask import Blueprint, Flask
from websockets.exceptions import ConnectionClosed as ClientClosed
from websockets.sync.client import connect

from tests.compat.fs_support import PEERS, SERVERS, FsServer
from tests.wire import OP_CLOSE, OP_TEXT, RawClient, close_payload

TIMEOUT = 10
# simple-websocket's reader is a threading.Thread: with gevent unpatched it
# cannot wait on the gevent socket it was given.  flask-sock's docs show
# gevent with monkey.patch_all() only; pyws serves both.
FLASK_SOCK_UNPATCHED = ("flask-sock under an unpatched gevent WSGIServer: simple-websocket's "
                        "reader thread fails with greenlet.error (Cannot switch to a "
                        "different thread); flask-sock documents gevent with "
                        "monkey.patch_all() only")
# The servers the behaviour tests (not only the echo) run under.
BEHAVIOUR_SERVERS = ["werkzeug", "gevent-patched", "gunicorn-gthread"]
# Both peers under those, and pyws under its own WebSocketServer, whose
# handler performs the handshake of a Sock route (another way in).
BEHAVIOUR_CASES = ([(peer, kind) for peer in PEERS for kind in BEHAVIOUR_SERVERS]
                   + [("pyws", "pyws-server")])
SMALL_OPTIONS = {"max_message_size": 10, "subprotocols": ["chat", "superchat"],
                 "ping_interval": 0.3}

ServerKey = Tuple[str, str, Optional[str]]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """start(peer, kind, options=None): one fs_app server per combination,
    started on first use and stopped with the module."""
    started: Dict[ServerKey, FsServer] = {}
    log_dir = tmp_path_factory.mktemp("fs")

    def start(peer: str, kind: str, options: Optional[Dict[str, Any]] = None) -> FsServer:
        key = (peer, kind, json.dumps(options) if options is not None else None)
        server = started.get(key)
        if server is None:
            name = f"{peer}-{kind}-{len(started)}.log"
            server = started[key] = FsServer(peer, kind, log_dir / name, options).start()
        server.mark_log()
        return server

    yield start
    for server in started.values():
        server.stop()


def _xfail_unpatched_flask_sock(peer: str, kind: str) -> None:
    if peer == "flask-sock" and kind == "gevent-unpatched":
        pytest.xfail(FLASK_SOCK_UNPATCHED)


def assert_quiet(server: FsServer, path: str) -> None:
    """The route's wrapper returned without an exception escaping (the
    teardown hook runs after it; Flask logs an escaped one before) and
    nothing logged a traceback since the test began."""
    server.wait_event(rf"teardown {path} exc=None")
    log = server.log_since_mark()
    assert "Traceback" not in log, log[-3000:]


# -- the same program against both peers -------------------------------------

@pytest.mark.parametrize("kind", SERVERS)
@pytest.mark.parametrize("peer", PEERS)
def test_echo_under_each_documented_server(servers: Any, peer: str, kind: str) -> None:
    # (Seen when this suite was written: the peer's handshake completes, its
    # reader thread fails, and the echo mostly never comes; not asserted,
    # as it depends on which thread reaches the socket first.)
    _xfail_unpatched_flask_sock(peer, kind)
    server = servers(peer, kind)
    with connect(server.url("/echo"), open_timeout=TIMEOUT) as conn:
        for message in ("hello", b"\x00\xff binary", "\u00e9t\u00e9 \u2603", "x" * 70000):
            conn.send(message)
            assert conn.recv(timeout=TIMEOUT) == message
    # websockets closed with 1000: receive() raised ConnectionClosed in the
    # loop that never checks for None, and the wrapper swallowed it.
    assert_quiet(server, "/echo")


@pytest.mark.parametrize("how", ["drop", "close"])
@pytest.mark.parametrize("kind", BEHAVIOUR_SERVERS + ["gevent-unpatched"])
@pytest.mark.parametrize("peer", PEERS)
def test_clock_view_ends_when_the_client_goes(servers: Any, peer: str, kind: str,
                                              how: str) -> None:
    """flask-sock's clock example loops on ``data = ws.receive()`` without
    checking for None: once the client is gone receive() raises
    ConnectionClosed, the view ends, and the wrapper ends quietly."""
    _xfail_unpatched_flask_sock(peer, kind)
    server = servers(peer, kind)
    tag = f"{how}-{kind}"
    conn = websocket.create_connection(server.url(f"/clock/{tag}"), timeout=TIMEOUT,
                                       suppress_origin=True)
    server.wait_event(f"clock-started {tag}")
    conn.send("tick")
    if how == "drop":
        conn.sock.shutdown(socket.SHUT_RDWR)  # no close frame: the TCP connection ends
        conn.sock.close()
    else:
        conn.close(status=1001, timeout=TIMEOUT)
    server.wait_event(f"clock-ended {tag}")
    assert_quiet(server, f"/clock/{tag}")


def read_close(conn: websocket.WebSocket) -> Tuple[int, str]:
    """The server's close frame, read as it arrives (the code and the
    text), whether or not the server then ends the TCP connection: under
    gevent, flask-sock keeps a dup of the socket open after its close."""
    while True:
        opcode, data = conn.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(data[:2], "big"), data[2:].decode("utf-8")


@pytest.mark.parametrize("peer, kind", BEHAVIOUR_CASES)
def test_receive_timeout_and_close_with_reason(servers: Any, peer: str, kind: str) -> None:
    server = servers(peer, kind)
    conn = websocket.create_connection(server.url("/timeout?x=1"), timeout=TIMEOUT,
                                       suppress_origin=True)
    try:
        state = json.loads(conn.recv())
        # receive(timeout=0.2) and receive(timeout=0) returned None while idle.
        assert state == {"idle": None, "zero": None, "connected": True,
                         "path": "/timeout", "query": "x=1"}
        conn.send("hi")
        assert conn.recv() == "got hi"
        assert read_close(conn) == (4001, "bye")
    finally:
        conn.shutdown()
    server.wait_event("timeout-closed connected=False")
    assert_quiet(server, "/timeout")


@pytest.mark.parametrize("peer, kind", BEHAVIOUR_CASES)
def test_client_close_raises_connection_closed_with_its_code(servers: Any, peer: str,
                                                             kind: str) -> None:
    """``ConnectionClosed.reason`` is the client's code, ``.message`` its
    text; messages sent before the close are received first; after it,
    send(), receive() (also with timeout=0) and close() raise; a
    ConnectionClosed the view lets out ends the route quietly."""
    server = servers(peer, kind)
    tag = kind
    with connect(server.url(f"/client-close/{tag}"), open_timeout=TIMEOUT) as conn:
        assert conn.recv(timeout=TIMEOUT) == "ready"
        conn.send("a")
        conn.send("b")
        conn.close(4002, "client bye")
    server.wait_event(f"client-close {tag} reason=4002 message=client bye "
                      "connected=False received=a,b")
    for name in ("send", "receive", "receive0", "close"):
        server.wait_event(f"after-close {tag} {name} raised reason=4002")
    assert_quiet(server, f"/client-close/{tag}")


@pytest.mark.parametrize("peer", PEERS)
def test_invalid_utf8_from_the_client_ends_the_view_with_1007(servers: Any,
                                                              peer: str) -> None:
    """A protocol failure by the peer ends the connection: receive() raises
    ConnectionClosed with the failure's code (1007: text that is not UTF-8).
    pyws's close frame says 1007 too; flask-sock's close frame does not
    always come before Werkzeug writes an HTTP response onto the connection,
    so the wire is checked for pyws only."""
    server = servers(peer, "werkzeug")
    tag = "bad-utf8"
    with RawClient(server.port, timeout=TIMEOUT) as raw:
        assert raw.handshake(f"/client-close/{tag}").status == 101
        assert raw.read_frame().payload == b"ready"
        raw.send_frame(OP_TEXT, b"caf\xc3", mask=b"abcd")  # a cut UTF-8 sequence
        if peer == "pyws":
            assert raw.read_frame().close_code == 1007
            assert raw.expect_eof() == b""
    server.wait_event(f"client-close {tag} reason=1007 .*")
    assert_quiet(server, f"/client-close/{tag}")


@pytest.mark.parametrize("peer", PEERS)
def test_server_options_max_message_size_refuses_with_1009(servers: Any, peer: str) -> None:
    """simple-websocket's reason is "Message is too big", pyws's names the
    limit: the code is the contract."""
    server = servers(peer, "werkzeug", SMALL_OPTIONS)
    conn = websocket.create_connection(server.url("/echo"), timeout=TIMEOUT,
                                       suppress_origin=True)
    try:
        conn.send("0123456789")  # at the limit: accepted
        assert conn.recv() == "0123456789"
        conn.send("y" * 100)
        assert read_close(conn)[0] == 1009
    finally:
        conn.shutdown()


@pytest.mark.parametrize("peer", PEERS)
def test_server_options_ping_interval_sends_pings(servers: Any, peer: str) -> None:
    server = servers(peer, "werkzeug", SMALL_OPTIONS)
    conn = websocket.create_connection(server.url("/subprotocol"), timeout=TIMEOUT,
                                       suppress_origin=True)
    try:
        opcodes = []
        while websocket.ABNF.OPCODE_PING not in opcodes:
            opcodes.append(conn.recv_data(control_frame=True)[0])  # TIMEOUT bounds each
        assert opcodes[0] == websocket.ABNF.OPCODE_TEXT  # the view's message first
    finally:
        conn.shutdown()


@pytest.mark.parametrize("offered, selected", [
    (["chat"], "chat"),
    (["superchat", "chat"], "superchat"),  # the client's preference, as simple-websocket
    (["other"], None),
])
@pytest.mark.parametrize("peer", PEERS)
def test_server_options_subprotocols(servers: Any, peer: str, offered: Any,
                                     selected: Optional[str]) -> None:
    server = servers(peer, "werkzeug", SMALL_OPTIONS)
    with connect(server.url("/subprotocol"), subprotocols=offered,
                 open_timeout=TIMEOUT) as conn:
        assert conn.subprotocol == selected
        assert conn.recv(timeout=TIMEOUT) == str(selected)


@pytest.mark.parametrize("peer", PEERS)
def test_no_subprotocol_without_options(servers: Any, peer: str) -> None:
    server = servers(peer, "werkzeug")
    with connect(server.url("/subprotocol"), subprotocols=["chat"],
                 open_timeout=TIMEOUT) as conn:
        assert conn.subprotocol is None
        assert conn.recv(timeout=TIMEOUT) == "None"


@pytest.mark.parametrize("peer", PEERS)
def test_plain_get_to_a_websocket_route_is_400(servers: Any, peer: str) -> None:
    server = servers(peer, "werkzeug")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(server.http_url("/echo"), timeout=TIMEOUT)
    assert refused.value.code == 400
    with urllib.request.urlopen(server.http_url("/"), timeout=TIMEOUT) as page:
        assert page.read() == b"index"


# -- flask-sock's own test suite (tests/test_flask_sock.py), both modules ----

def _module(peer: str) -> Any:
    return importlib.import_module("flask_sock" if peer == "flask-sock" else "pyws.flask")


@pytest.mark.parametrize("peer", PEERS)
def test_create_direct(peer: str) -> None:
    app = Flask(__name__, static_folder=None)
    sock = _module(peer).Sock(app)

    @sock.route("/ws")
    def ws(ws: Any) -> None:
        pass

    assert sock.app == app
    assert sock.bp is None
    assert app.url_map._rules[0].rule == "/ws"
    assert app.url_map._rules[0].websocket is True
    assert len(app.url_map._rules) == 1


@pytest.mark.parametrize("peer", PEERS)
def test_create_indirect(peer: str) -> None:
    app = Flask(__name__, static_folder=None)
    sock = _module(peer).Sock()

    @sock.route("/ws")
    def ws(ws: Any) -> None:
        pass

    assert sock.app is None
    assert sock.bp is not None
    sock.init_app(app)
    assert sock.app is not None
    assert sock.bp is not None
    assert app.url_map._rules[0].rule == "/ws"
    assert app.url_map._rules[0].websocket is True


@pytest.mark.parametrize("peer", PEERS)
def test_create_blueprint(peer: str) -> None:
    app = Flask(__name__, static_folder=None)
    bp = Blueprint("bp", __name__)
    sock = _module(peer).Sock()

    @sock.route("/ws", bp=bp)
    def ws(ws: Any) -> None:
        pass

    assert sock.app is None
    assert sock.bp is None
    sock.init_app(app)
    app.register_blueprint(bp, url_prefix="/bp")
    assert sock.app is not None
    assert sock.bp is None

    @sock.route("/ws")
    def ws2(ws: Any) -> None:
        pass

    assert app.url_map._rules[0].rule == "/bp/ws"
    assert app.url_map._rules[0].websocket is True
    assert app.url_map._rules[1].rule == "/ws"
    assert app.url_map._rules[1].websocket is True


@pytest.mark.parametrize("peer", PEERS)
def test_blueprint_route_needs_no_init_app(peer: str) -> None:
    """flask-sock needs no ``init_app`` for a route on the program's own
    blueprint: registering the blueprint is enough."""
    app = Flask(__name__, static_folder=None)
    bp = Blueprint("bp", __name__)
    sock = _module(peer).Sock()

    @sock.route("/ws", bp=bp)
    def ws(ws: Any) -> None:
        pass

    app.register_blueprint(bp, url_prefix="/bp")
    assert [(r.rule, r.websocket) for r in app.url_map.iter_rules()] == [("/bp/ws", True)]
    assert app.test_client().get("/bp/ws").status_code == 400  # not an upgrade


@pytest.mark.parametrize("peer", PEERS)
def test_connection_closed_fields(peer: str) -> None:
    closed = _module(peer).ConnectionClosed(4001, "bye")
    assert (closed.reason, closed.message) == (4001, "bye")
    assert _module(peer).ConnectionClosed().reason == 1005


def test_pyws_connection_closed_is_pyws_own() -> None:
    import pyws
    from pyws.flask import ConnectionClosed

    closed = ConnectionClosed(4001, "bye")
    assert isinstance(closed, pyws.ConnectionClosed) and closed.code == 4001


# -- deliberate differences: pyws's behaviour only -----------------------------

def test_difference_send_of_other_objects_raises_type_error(servers: Any) -> None:
    """simple-websocket sends ``str(data)`` for anything that is not bytes
    (``ws.send(42)`` sends "42"); pyws raises TypeError, as sending None or
    a dict by mistake is a bug better seen than sent.  Migration: send
    ``str(data)`` (or ``json.dumps(data)``) explicitly."""
    server = servers("pyws", "werkzeug")
    with connect(server.url("/send-object"), open_timeout=TIMEOUT) as conn:
        assert conn.recv(timeout=TIMEOUT).startswith("TypeError: ")


def test_difference_default_message_limit_is_one_mib(servers: Any) -> None:
    """simple-websocket has no limit unless ``max_message_size`` is given;
    pyws refuses messages over 1 MiB by default (1009), a bound on the memory
    one client can make the server hold.  Migration: set
    ``SOCK_SERVER_OPTIONS = {'max_message_size': None}`` (no limit) or a
    number of bytes."""
    server = servers("pyws", "werkzeug")
    with connect(server.url("/echo"), open_timeout=TIMEOUT, max_size=None) as conn:
        conn.send(b"z" * (1 << 20))  # at the limit: accepted
        assert len(conn.recv(timeout=TIMEOUT)) == 1 << 20
        conn.send(b"z" * ((1 << 20) + 1))
        with pytest.raises(ClientClosed) as closed:
            conn.recv(timeout=TIMEOUT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    no_limit = servers("pyws", "werkzeug", {"max_message_size": None})
    with connect(no_limit.url("/echo"), open_timeout=TIMEOUT, max_size=None) as conn:
        conn.send(b"z" * (2 << 20))
        assert len(conn.recv(timeout=TIMEOUT)) == 2 << 20


def test_difference_view_exception_closes_with_1011(servers: Any) -> None:
    """flask-sock lets a view's exception through its wrapper without
    closing the WebSocket (the client sees the TCP connection end, no close
    frame); pyws closes with 1011 (internal error), as RFC 6455 intends, and
    Flask logs the exception as for any view."""
    server = servers("pyws", "werkzeug")
    with connect(server.url("/raise"), open_timeout=TIMEOUT) as conn:
        conn.send("go")
        with pytest.raises(ClientClosed) as closed:
            conn.recv(timeout=TIMEOUT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011


@pytest.mark.parametrize("kind", SERVERS)
def test_difference_connection_ends_cleanly_after_the_close(servers: Any, kind: str) -> None:
    """After the close handshake pyws ends the TCP connection and the
    server writes nothing more.  flask-sock, on Werkzeug, writes an HTTP
    ``200 OK`` response after the close frame, and under gevent leaves the
    connection open (a dup of the socket stays with simple-websocket)."""
    server = servers("pyws", kind)
    with RawClient(server.port, timeout=TIMEOUT) as raw:
        raw.handshake("/echo")
        raw.send_frame(OP_TEXT, b"hi")
        assert raw.read_frame().payload == b"hi"
        raw.send_frame(OP_CLOSE, close_payload(1000))
        assert raw.read_frame().close_code == 1000
        assert raw.expect_eof() == b""
    assert_quiet(server, "/echo")


def test_difference_unknown_server_option_fails_at_sock_creation() -> None:
    """simple-websocket's Server() raises TypeError for an unknown keyword
    at each request (a 500 per WebSocket); pyws raises it when the Sock is
    attached to the app, naming the option and listing the valid ones."""
    from pyws.flask import Sock

    app = Flask(__name__)
    app.config["SOCK_SERVER_OPTIONS"] = {"ping_intervall": 25}
    with pytest.raises(TypeError, match="unknown option 'ping_intervall'"):
        Sock(app)


def test_difference_server_options_mapping() -> None:
    """How ``SOCK_SERVER_OPTIONS`` maps onto pyws's options: None means no
    limit; a ping's pong may take one interval (simple-websocket's rule,
    which then closes with 1008, pyws with 1011); receive_bytes and the
    thread, event and selector classes are accepted and ignored (pyws picks
    threads or greenlets from the socket it serves); pyws's own option
    names are accepted too."""
    from pyws.flask import server_options

    policy, overrides = server_options({
        "max_message_size": None, "ping_interval": 25, "receive_bytes": 8192,
        "thread_class": None, "event_class": None, "selector_class": None,
        "subprotocols": "chat", "idle_timeout": 60})
    assert overrides == {"max_message_size": 0, "ping_interval": 25, "ping_timeout": 25,
                         "idle_timeout": 60}
    assert policy is not None and policy.subprotocols == ["chat"]
    assert server_options({"ping_interval": 0}) == (None, {"ping_interval": None})
    with pytest.raises(TypeError, match="option of the server"):
        server_options({"handshake_timeout": 5})
    with pytest.raises(ValueError, match="max_message_size"):
        server_options({"max_message_size": -1})
