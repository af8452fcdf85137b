"""permessage-deflate with third-party peers, over real sockets: the
``websockets`` library as client of a pyws server and as server for
``pyws.connect``, and pyws on both ends.  A counting proxy between the two
shows that messages really travel compressed, both ways."""
from __future__ import annotations

import json
import os
import threading

import pytest

import pyws
from tests.conftest import _start_test_server
from tests.counting_proxy import CountingProxy
from tests.integration.clients import call_with_timeout

TIMEOUT = 10
#: 1 MiB that compresses to a few KiB.
COMPRESSIBLE = ("pyws compresses this text, " * 40000)[:1 << 20]


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory):
    """pyws.WebSocketServer with compression=False."""
    server = _start_test_server(tmp_path_factory, "no-compression-server",
                                "--kind", "server", "--app", "wsgi",
                                "--option", "compression=False")
    yield server
    server.stop()


def echo_round_trips(ws, messages) -> None:
    """Each message through a pyws client and back, then a clean close."""
    try:
        assert ws.compressed
        for message in messages:
            ws.send(message)
            assert call_with_timeout(ws.receive) == message
    finally:
        ws.close()


def websockets_connect(url: str, **kw):
    from websockets.sync.client import connect
    return connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT, max_size=None, **kw)


def test_websockets_client_negotiates_and_both_directions_travel_compressed(echo_server):
    with CountingProxy(echo_server.port) as proxy:
        with websockets_connect(f"ws://127.0.0.1:{proxy.port}/info") as ws:
            answer = ws.response.headers["Sec-WebSocket-Extensions"]
            assert answer.startswith("permessage-deflate")
            info = json.loads(ws.recv(timeout=TIMEOUT))
            assert info["compressed"] is True
            for message in (COMPRESSIBLE, COMPRESSIBLE.encode(), "", "κόσμε 😀" * 1000):
                ws.send(message)
                assert ws.recv(timeout=TIMEOUT) == message
        # 2 MiB of compressible messages each way, in a few KiB.
        assert proxy.upstream < 64 << 10, proxy.upstream
        assert proxy.downstream < 64 << 10, proxy.downstream


def test_websockets_client_with_every_parameter(echo_server):
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
    factory = ClientPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True,
        server_max_window_bits=9, client_max_window_bits=10)
    with websockets_connect(f"ws://127.0.0.1:{echo_server.port}/ws",
                            extensions=[factory], compression=None) as ws:
        answer = ws.response.headers["Sec-WebSocket-Extensions"]
        assert answer == ("permessage-deflate; server_no_context_takeover; "
                          "client_no_context_takeover; server_max_window_bits=9; "
                          "client_max_window_bits=10")
        for message in (COMPRESSIBLE, os.urandom(100000), COMPRESSIBLE[:5000]):
            ws.send(message)
            assert ws.recv(timeout=TIMEOUT) == message


def test_websockets_client_without_compression_still_works(echo_server):
    with websockets_connect(f"ws://127.0.0.1:{echo_server.port}/info",
                            compression=None) as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        assert json.loads(ws.recv(timeout=TIMEOUT))["compressed"] is False
        ws.send(COMPRESSIBLE)
        assert ws.recv(timeout=TIMEOUT) == COMPRESSIBLE


def test_server_with_compression_off_declines_the_offer(plain_server):
    with CountingProxy(plain_server.port) as proxy:
        with websockets_connect(f"ws://127.0.0.1:{proxy.port}/info") as ws:
            assert "Sec-WebSocket-Extensions" not in ws.response.headers
            assert json.loads(ws.recv(timeout=TIMEOUT))["compressed"] is False
            ws.send(COMPRESSIBLE)
            assert ws.recv(timeout=TIMEOUT) == COMPRESSIBLE
        assert proxy.downstream > 1 << 20


def test_pyws_client_and_server_compress_and_report_it(echo_server):
    with CountingProxy(echo_server.port) as proxy:
        ws = pyws.connect(f"ws://127.0.0.1:{proxy.port}/info", timeout=TIMEOUT)
        assert json.loads(call_with_timeout(ws.receive))["compressed"] is True
        echo_round_trips(ws, (COMPRESSIBLE, COMPRESSIBLE.encode(), b"", "é" * 70000))
        assert proxy.upstream < 64 << 10 and proxy.downstream < 64 << 10


def test_pyws_client_settings_and_switch(echo_server):
    settings = pyws.PerMessageDeflate(server_no_context_takeover=True,
                                      client_no_context_takeover=True,
                                      server_max_window_bits=10, client_max_window_bits=9,
                                      level=1)
    ws = pyws.connect(f"ws://127.0.0.1:{echo_server.port}/ws", timeout=TIMEOUT,
                      compression=settings)
    echo_round_trips(ws, (COMPRESSIBLE, COMPRESSIBLE[:1000]))
    ws = pyws.connect(f"ws://127.0.0.1:{echo_server.port}/info", timeout=TIMEOUT,
                      compression=False)
    try:
        assert not ws.compressed
        assert json.loads(call_with_timeout(ws.receive))["compressed"] is False
    finally:
        ws.close()


@pytest.fixture
def websockets_server():
    """A ``websockets`` echo server (sync API) in a thread; ``start(**kw)``."""
    from websockets.sync.server import serve
    servers = []

    def echo(conn):
        for message in conn:
            conn.send(message)

    def start(**kw):
        server = serve(echo, "127.0.0.1", 0, max_size=None, **kw)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.socket.getsockname()[1]

    yield start
    for server in servers:
        server.shutdown()


def test_pyws_client_against_websockets_server(websockets_server):
    port = websockets_server()
    with CountingProxy(port) as proxy:
        ws = pyws.connect(f"ws://127.0.0.1:{proxy.port}/", timeout=TIMEOUT)
        echo_round_trips(ws, (COMPRESSIBLE, COMPRESSIBLE.encode(), "", os.urandom(5000)))
        assert proxy.upstream < 64 << 10 and proxy.downstream < 64 << 10


def test_pyws_client_accepts_a_websockets_server_limiting_everything(websockets_server):
    from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
    port = websockets_server(compression=None, extensions=[ServerPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True,
        server_max_window_bits=9, client_max_window_bits=8,
        require_client_max_window_bits=False)])
    ws = pyws.connect(f"ws://127.0.0.1:{port}/", timeout=TIMEOUT)
    echo_round_trips(ws, (COMPRESSIBLE, COMPRESSIBLE[:300] * 3, os.urandom(3000)))
