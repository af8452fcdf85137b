"""gunicorn with ``-k pyws.uvicorn.UvicornWorker``: an ASGI app's WebSockets
on pyws under gunicorn, and gunicorn's graceful stop."""
from __future__ import annotations

import signal
import sys
import time
from typing import Iterator

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.conftest import ServerProcess, free_port
from tests.wire import RawClient


@pytest.fixture
def gunicorn(tmp_path) -> Iterator[ServerProcess]:
    port = free_port()
    server = ServerProcess(
        "gunicorn -k pyws.uvicorn.UvicornWorker",
        [sys.executable, "-m", "gunicorn", "-k", "pyws.uvicorn.UvicornWorker", "-w", "1",
         "-b", f"127.0.0.1:{port}", "--graceful-timeout", "5",
         "tests.conformance.echo_over:asgi_echo"],
        tmp_path / "gunicorn.log")
    server.start_on_port(port)
    yield server
    server.stop()


def test_the_worker_serves_websockets_with_pyws(gunicorn):
    with connect(gunicorn.url("/ws"), max_size=None) as ws:
        ws.send("over gunicorn")
        assert ws.recv() == "over gunicorn"
        ws.send(b"\x00" * 200000)
        assert ws.recv() == b"\x00" * 200000
    # pyws's handshake checks answered, not another implementation's.
    with RawClient(gunicorn.port) as raw:
        raw.send(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")
        response = raw.read_http_response()
    assert response.status == 400
    assert b"WebSocket handshake failed" in response.body


def test_gunicorn_s_graceful_stop_closes_with_1012(gunicorn):
    with connect(gunicorn.url("/ws")) as ws:
        ws.send("before")
        assert ws.recv() == "before"
        assert gunicorn.proc is not None
        gunicorn.proc.send_signal(signal.SIGTERM)
        start = time.monotonic()
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1012
    assert gunicorn.proc.wait(10) == 0
    assert time.monotonic() - start < 10
