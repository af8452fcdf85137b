"""pyws as a drop-in for gevent-websocket 0.10.1, proved against the peer.

Every test in the first part runs twice: the same server program, written
for gevent-websocket (tests/compat/gws_programs.py), once importing
``geventwebsocket`` and once importing ``pyws``, driven over real sockets by
a third-party client (websocket-client).  An expectation that is wrong about
gevent-websocket fails on it.

The last part, "deliberate differences", checks where pyws behaves
otherwise on purpose; those tests run on pyws only and say why.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
import websocket  # websocket-client

from tests.conftest import ROOT, ServerProcess, free_port, subprocess_env
from tests.deploy_support import DeployProcess, _has_gunicorn_setting

TIMEOUT = 10
PROGRAM = ROOT / "tests" / "compat" / "gws_programs.py"
PEERS = ["pyws", "gevent-websocket"]
GUNICORN_WORKERS = {
    "pyws": "pyws.gunicorn.GeventWebSocketWorker",
    "gevent-websocket": "geventwebsocket.gunicorn.workers.GeventWebSocketWorker",
}

Servers = Callable[[str, str], ServerProcess]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """``servers(peer, kind)``: the program under that peer and server kind
    (server, server-debug, wsgiserver, gunicorn), started on first use and
    shared by the module's tests."""
    started: dict[tuple[str, str], ServerProcess] = {}
    logs = tmp_path_factory.mktemp("gws")

    def get(peer: str, kind: str) -> ServerProcess:
        key = (peer, kind)
        if key not in started:
            log = logs / f"{peer}-{kind}.log"
            if kind == "gunicorn":
                started[key] = _start_gunicorn(peer, log)
            else:
                proc = ServerProcess(f"{peer} {kind}",
                                     [sys.executable, str(PROGRAM), peer, kind], log)
                started[key] = proc.start_and_read_port()
        return started[key]

    yield get
    for proc in started.values():
        proc.stop()


def _start_gunicorn(peer: str, log: Path) -> ServerProcess:
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "-w", "1", "-k", GUNICORN_WORKERS[peer],
            "-b", f"127.0.0.1:{port}", "--chdir", str(PROGRAM.parent),
            "--graceful-timeout", "2"]
    if _has_gunicorn_setting("control_socket_disable"):
        argv.append("--no-control-socket")
    proc = DeployProcess(f"{peer} gunicorn", argv + ["gws_programs:app"], log,
                         {"GWS_PEER": peer})
    proc.start_on_port(port)
    return proc


def new_id() -> str:
    return uuid.uuid4().hex


def connect(server: ServerProcess, path: str, **kw: Any) -> websocket.WebSocket:
    kw.setdefault("suppress_origin", "origin" not in kw)
    return websocket.create_connection(server.url(path), timeout=TIMEOUT, **kw)


def get_json(server: ServerProcess, path: str) -> Any:
    status, body = http_get(server, path)
    assert status == 200, body
    return json.loads(body)


def http_get(server: ServerProcess, path: str) -> tuple[int, str]:
    """GET ``path`` and read the response to the end of the connection: by
    then the server has logged the request (pywsgi logs, then closes)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Connection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def records(server: ServerProcess, kind: str, record_id: str, count: int = 1) -> list[Any]:
    """The program's records of ``kind`` for ``record_id``, once there are
    ``count`` (the program waits up to 8 s for them)."""
    found: list[Any] = get_json(server, f"/events?kind={kind}&id={record_id}&count={count}")
    return found


def clients_once(server: ServerProcess, count: int) -> list[str]:
    """The nicknames in ``server.clients`` once it holds ``count`` entries."""
    names: list[str] = get_json(server, f"/clients?count={count}")
    assert len(names) == count, names
    return names


# -- the echo server ------------------------------------------------------------

@pytest.mark.parametrize("kind", ["server", "server-debug"])
@pytest.mark.parametrize("peer", PEERS)
def test_echo_loop_echoes_and_ends_with_websocket_error(servers: Servers, peer: str,
                                                        kind: str) -> None:
    """gevent-websocket's README loop (``ws.send(ws.receive())`` in a
    ``try/except WebSocketError``) echoes, and ends when the client leaves:
    sending back the final None raises WebSocketError."""
    server = servers(peer, kind)
    echo_id = new_id()
    conn = connect(server, f"/echo?id={echo_id}")
    try:
        conn.send("hello")
        assert conn.recv() == "hello"
        conn.send_binary(b"\x00\xff")
        assert conn.recv() == b"\x00\xff"
    finally:
        conn.close()
    assert records(server, "echo-ended", echo_id) == [
        {"kind": "echo-ended", "id": echo_id, "ended_by": "WebSocketError"}]


@pytest.mark.parametrize("peer", PEERS)
def test_debug_shows_requests_and_handshakes_in_the_debug_format(servers: Servers,
                                                                 peer: str) -> None:
    """``debug=True``: the server's logger writes its records to stderr
    framed by ``debug_log_format``: a plain request at INFO, the WebSocket
    handshake at DEBUG."""
    server = servers(peer, "server-debug")
    page_id = new_id()
    assert http_get(server, f"/page?id={page_id}") == (200, "a plain page\n")
    log = server.log()
    [line] = [ln for ln in log.splitlines() if page_id in ln]
    assert f'"GET /page?id={page_id} HTTP/1.1" 200' in line
    before = log[:log.index(line)].splitlines()
    assert before[-1].startswith("INFO in ") and before[-2] == "-" * 80

    echo_id = new_id()
    conn = connect(server, f"/echo?id={echo_id}")
    try:
        conn.send("x")
        assert conn.recv() == "x"  # the application runs: the handshake is over
        assert "DEBUG in handler [" in server.log()
    finally:
        conn.close()


# -- the chat example: server.clients and active_client -----------------------------

@pytest.mark.parametrize("route", ["/chat", "/flask/chat"])
@pytest.mark.parametrize("kind", ["server", "wsgiserver"])
@pytest.mark.parametrize("peer", PEERS)
def test_chat_broadcasts_to_every_client_in_server_clients(servers: Servers, peer: str,
                                                           kind: str, route: str) -> None:
    """gevent-websocket's chat example (as a Resource application and as a
    Flask route reading ``request.environ['wsgi.websocket']``; under
    WebSocketServer and under a plain WSGIServer whose ``clients`` the
    handler creates): nicknames set on ``ws.handler.active_client``, every
    client gets every broadcast through ``ws.handler.server.clients``, a
    departed client disappears from it."""
    server = servers(peer, kind)
    clients_once(server, 0)
    nicknames = [f"n{i}-{new_id()[:8]}" for i in range(3)]
    conns = [connect(server, f"{route}?id={new_id()}") for _ in nicknames]
    try:
        assert clients_once(server, 3) == ["anonymous"] * 3
        for conn, nickname in zip(conns, nicknames):
            conn.send(json.dumps({"msg_type": "update_clients", "nickname": nickname}))
            reply = json.loads(conn.recv())
            assert reply["msg_type"] == "update_clients"
        assert reply["clients"] == sorted(nicknames)
        assert clients_once(server, 3) == sorted(nicknames)

        conns[0].send(json.dumps({"msg_type": "message", "nickname": nicknames[0],
                                  "message": "hello all"}))
        for conn in conns:
            assert json.loads(conn.recv()) == {"msg_type": "message",
                                               "nickname": nicknames[0],
                                               "message": "hello all"}

        conns.pop().close()  # the third leaves
        assert clients_once(server, 2) == sorted(nicknames[:2])
        conns[1].send(json.dumps({"msg_type": "message", "nickname": nicknames[1],
                                  "message": "still here"}))
        for conn in conns:
            assert json.loads(conn.recv())["message"] == "still here"
    finally:
        for conn in conns:
            conn.close()
    clients_once(server, 0)


# -- Resource, WebSocketApplication, BaseProtocol ------------------------------------

@pytest.mark.parametrize("peer", PEERS)
def test_protocol_class_name_is_selected_when_offered(servers: Servers, peer: str) -> None:
    """An application whose ``protocol_class`` has PROTOCOL_NAME: a client
    offering it gets it selected; the protocol object reaches the app, the
    handler and the server."""
    server = servers(peer, "server")
    conn = connect(server, f"/proto?id={new_id()}", subprotocols=["other", "gws.test"])
    try:
        assert conn.getsubprotocol() == "gws.test"
        told = json.loads(conn.recv())
    finally:
        conn.close()
    assert told.pop("protocol_header").replace(" ", "").split(",") == ["other", "gws.test"]
    assert told == {"name": "gws.test", "protocol_name": "gws.test", "app": True,
                    "handler": True, "server": True}

    conn = connect(server, f"/proto?id={new_id()}")
    try:
        assert conn.getsubprotocol() is None
        assert json.loads(conn.recv())["protocol_header"] is None
    finally:
        conn.close()


@pytest.mark.parametrize("ending", ["close frame", "connection lost"])
@pytest.mark.parametrize("peer", PEERS)
def test_callbacks_at_the_close(servers: Servers, peer: str, ending: str) -> None:
    """on_open, on_message for each message, on_message(None) once, then
    on_close(None): what gevent-websocket's ``WebSocketApplication.handle``
    does (its BaseProtocol passes no reason).  ``ws.current_app`` is not the
    application instance (the Resource has no ``current_app``)."""
    server = servers(peer, "server")
    seq_id = new_id()
    conn = connect(server, f"/seq?id={seq_id}")
    try:
        for text in ("a", "b"):
            conn.send(text)
            assert conn.recv() == text
    finally:
        if ending == "close frame":
            conn.close()
        else:
            conn.sock.close()  # no close frame
    [found] = records(server, "sequence", seq_id)
    assert found["calls"] == [["on_open"], ["current_app", False, True],
                              ["on_message", "a"], ["on_message", "b"],
                              ["on_message", None], ["on_close", [None], {}]]
    assert found["closed"] is True


# -- a view that never checks for None; what the WebSocket tells ----------------------

@pytest.mark.parametrize("kind", ["server", "wsgiserver"])
@pytest.mark.parametrize("peer", PEERS)
def test_view_never_checking_for_none_ends(servers: Servers, peer: str, kind: str) -> None:
    """``while True: ws.receive()``: after the client leaves, receive()
    returns None once and raises WebSocketError on the next call, so the
    view ends.  The WebSocket tells the request: ``protocol`` (the header
    as sent), ``origin``, ``path``, ``version``, ``environ``,
    ``current_app`` (the server application's), ``logger`` (the
    handler's); the handler's ``server.clients`` and ``active_client``
    hold it, also under a plain WSGIServer."""
    server = servers(peer, kind)
    view_id = new_id()
    conn = connect(server, f"/view?id={view_id}", origin="http://example.test",
                   header=["Sec-WebSocket-Protocol: p1, p2"])
    try:
        told = json.loads(conn.recv())
    finally:
        conn.close()
    assert told == {
        "protocol": "p1, p2", "origin": "http://example.test", "path": "/view",
        "version": "13", "environ_is_request": True, "current_app_is_programs": True,
        "logger_is_a_logger": True, "logger_is_handlers": True, "in_clients": True,
        "active_client_ws": True, "active_client_address": True,
    }
    assert records(server, "view-ended", view_id) == [
        {"kind": "view-ended", "id": view_id, "ended_by": "WebSocketError", "receives": 1}]


# -- pre_start_hook ------------------------------------------------------------------

@pytest.mark.parametrize("peer", PEERS)
def test_pre_start_hook_true_serves_plain_wsgi(servers: Servers, peer: str) -> None:
    """``pre_start_hook(handler)`` returning true: the request is served as
    plain WSGI, an upgrade request too (no handshake)."""
    server = servers(peer, "server")
    assert http_get(server, "/hooked") == (200, "plain wsgi, websocket=None")
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        connect(server, "/hooked")
    assert info.value.status_code == 200
    # A false answer changes nothing.
    conn = connect(server, f"/echo?id={new_id()}")
    try:
        conn.send("still upgraded")
        assert conn.recv() == "still upgraded"
    finally:
        conn.close()


@pytest.mark.parametrize("peer", PEERS)
def test_prevent_wsgi_call_leaves_the_websocket_to_the_handler(servers: Servers,
                                                               peer: str) -> None:
    """A handler with ``prevent_wsgi_call`` performs the handshake only: its
    subclass gets ``self.websocket`` after ``run_application`` (here it sends
    one message and closes); the application (an echo) is not called."""
    server = servers(peer, "handshake-only")
    conn = connect(server, f"/echo?id={new_id()}")
    try:
        assert conn.recv() == "handshake only"
        opcode, _ = conn.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
    finally:
        conn.close()


# -- gunicorn ------------------------------------------------------------------------

@pytest.mark.parametrize("peer", PEERS)
def test_gunicorn_worker_chat_and_view(servers: Servers, peer: str) -> None:
    """Under gunicorn with each peer's worker (pyws:
    ``pyws.gunicorn.GeventWebSocketWorker``; gevent-websocket:
    ``geventwebsocket.gunicorn.workers.GeventWebSocketWorker``): the Flask
    chat broadcasts through ``server.clients``, ``active_client`` takes a
    nickname, and the WebSocket tells its request."""
    server = servers(peer, "gunicorn")
    names = [f"g{i}-{new_id()[:8]}" for i in range(2)]
    conns = [connect(server, f"/flask/chat?id={new_id()}") for _ in names]
    try:
        for conn, nickname in zip(conns, names):
            conn.send(json.dumps({"msg_type": "update_clients", "nickname": nickname}))
            assert nickname in json.loads(conn.recv())["clients"]
        conns[1].send(json.dumps({"msg_type": "message", "nickname": names[1],
                                  "message": "via gunicorn"}))
        for conn in conns:
            assert json.loads(conn.recv())["message"] == "via gunicorn"
    finally:
        for conn in conns:
            conn.close()
    view_id = new_id()
    conn = connect(server, f"/view?id={view_id}")
    try:
        told = json.loads(conn.recv())
    finally:
        conn.close()
    assert told["path"] == "/view" and told["in_clients"] and told["active_client_ws"]
    assert told["logger_is_handlers"] and told["current_app_is_programs"]
    assert records(server, "view-ended", view_id)[0]["ended_by"] == "WebSocketError"


# -- deliberate differences (pyws only) ----------------------------------------------

def test_pyws_unknown_server_keyword_is_a_type_error_at_construction() -> None:
    """Deliberate difference, pyws only: gevent-websocket hands an unknown
    keyword to gevent, which passes it to the ssl module at each connection,
    so the server starts and every connection fails.  pyws refuses it when
    the server is made; ``debug`` and ``pre_start_hook`` are accepted."""
    script = (
        "from pyws import WebSocketServer\n"
        "app = lambda environ, start_response: []\n"
        "server = WebSocketServer(('127.0.0.1', 0), app, debug=True,\n"
        "                         pre_start_hook=lambda handler: False)\n"
        "assert server.debug is True and server.clients == {}\n"
        "try:\n"
        "    WebSocketServer(('127.0.0.1', 0), app, bogus=1)\n"
        "except TypeError as exc:\n"
        "    print('TypeError:', exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], check=False, cwd=str(ROOT),
                            env=subprocess_env(), capture_output=True, text=True,
                            timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("TypeError:") and "'bogus'" in result.stdout


def test_pyws_without_debug_keeps_the_access_log(servers: Servers) -> None:
    """Deliberate difference, pyws only: without ``debug``, gevent-websocket
    writes no access log at all (its handler sends the lines to a logger
    that shows nothing unless ``debug``).  pyws keeps pywsgi's access log
    (``log=``, stderr by default; ``log=None`` silences it), WebSocket
    upgrades included as 101, and also gives the lines to the logger."""
    server = servers("pyws", "server")
    page_id = new_id()
    assert http_get(server, f"/page?id={page_id}") == (200, "a plain page\n")
    assert f'"GET /page?id={page_id} HTTP/1.1" 200' in server.log()
    assert "INFO in " not in server.log()  # not the debug format
