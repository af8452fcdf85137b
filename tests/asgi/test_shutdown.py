"""Graceful shutdown: SIGTERM or SIGINT to uvicorn while WebSocket clients
are connected (and one handshake is waiting for the app's accept).

uvicorn's implementations send every open connection a 1012 ("service
restart") close frame and close TCP without waiting for the reply, give the
app a websocket.disconnect with 1012, answer a handshake not yet accepted
with 500, then uvicorn runs the lifespan shutdown and exits."""
from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import pytest
from websockets.exceptions import ConnectionClosed

from tests.asgi.conftest import SELECTED_IMPLS, UvicornPool
from tests.asgi.support import read_frames_until_close, unique, ws_connect
from tests.wire import OP_TEXT, HttpResponse, RawClient, upgrade_request

SIGNALS = [signal.SIGTERM, signal.SIGINT]
EXIT_TIMEOUT = 10.0


@dataclass
class ShutdownOutcome:
    impl: str
    signum: int
    tokens: Dict[str, str]
    websockets_closes: List[Optional[tuple]] = field(default_factory=list)
    raw_close_payload: Optional[bytes] = None
    raw_eof: bool = False
    held_response: Optional[HttpResponse] = None
    exit_status: Optional[int] = None
    seconds_to_exit: float = 0.0
    disconnects: Dict[str, Optional[dict]] = field(default_factory=dict)
    lines: List[str] = field(default_factory=list)


@pytest.fixture(scope="module",
                params=[(impl, signum) for impl in SELECTED_IMPLS for signum in SIGNALS],
                ids=lambda p: f"{p[0]}-{signal.Signals(p[1]).name}")
def shutdown(request, uvicorn_pool: UvicornPool) -> ShutdownOutcome:
    impl, signum = request.param
    server = uvicorn_pool.fresh(impl)
    tokens = {name: unique(name) for name in ("ws1", "ws2", "raw", "held")}
    outcome = ShutdownOutcome(impl, signum, tokens)
    clients = [ws_connect(server.url(f"/record?id={tokens[name]}"), legacy=True)
               for name in ("ws1", "ws2")]
    raw = RawClient(server.port)
    held = RawClient(server.port)
    try:
        raw.handshake(f"/echo?id={tokens['raw']}")
        raw.send_frame(OP_TEXT, "up")
        assert raw.read_frame().payload == b"up"
        request_bytes, _ = upgrade_request(f"127.0.0.1:{server.port}",
                                           f"/hold-before-accept?id={tokens['held']}")
        held.send(request_bytes)
        assert server.wait_for_line(f"^HOLDING {tokens['held']}$", 10), \
            "the app never got the held connection"

        started = time.monotonic()
        server.send_signal(signum)

        for ws in clients:
            try:
                ws.recv(timeout=EXIT_TIMEOUT)
                outcome.websockets_closes.append(("a message instead of a close",))
            except ConnectionClosed as exc:
                outcome.websockets_closes.append(
                    None if exc.rcvd is None else (exc.rcvd.code, exc.rcvd.reason))
        _, close = read_frames_until_close(raw, timeout=EXIT_TIMEOUT)
        if close is not None:
            outcome.raw_close_payload = close.payload
        try:
            raw.expect_eof(EXIT_TIMEOUT)  # without answering the close
            outcome.raw_eof = True
        except TimeoutError:
            outcome.raw_eof = False
        try:
            outcome.held_response = held.read_http_response(EXIT_TIMEOUT)
        except (EOFError, TimeoutError):
            outcome.held_response = None

        outcome.exit_status = server.wait_exit(EXIT_TIMEOUT)
        outcome.seconds_to_exit = time.monotonic() - started
        for name, token in tokens.items():
            outcome.disconnects[name] = server.wait_for_disconnect_line(token, timeout=2)
        outcome.lines = list(server.lines)
    finally:
        for ws in clients:
            ws.close()
        raw.close()
        held.close()
        server.stop()
    return outcome


def test_shutdown_closes_every_open_connection_with_1012(shutdown):
    assert shutdown.websockets_closes == [(1012, ""), (1012, "")]
    assert shutdown.raw_close_payload == b"\x03\xf4", "expected a close frame: 1012, no reason"


def test_shutdown_closes_tcp_without_waiting_for_the_close_reply(shutdown):
    assert shutdown.raw_eof, "the server kept the connection open after its 1012"


def test_shutdown_gives_the_app_a_1012_disconnect(shutdown):
    for name in ("ws1", "ws2", "raw"):
        record = shutdown.disconnects[name]
        assert record is not None, f"the app printed no disconnect for {name}"
        assert record["code"] == 1012, record


def test_shutdown_answers_500_to_a_handshake_not_yet_accepted(shutdown):
    resp = shutdown.held_response
    assert resp is not None, "no HTTP response to the held handshake"
    assert resp.status == 500
    assert resp.body == b"Internal Server Error"
    record = shutdown.disconnects["held"]
    assert record is not None and record["code"] == 1006, record


def test_uvicorn_exits_after_the_shutdown(shutdown):
    assert shutdown.exit_status is not None, \
        f"uvicorn still running {EXIT_TIMEOUT}s after the signal"
    assert shutdown.exit_status in (0, -shutdown.signum), shutdown.exit_status
    assert shutdown.seconds_to_exit < EXIT_TIMEOUT
    assert "LIFESPAN shutdown" in shutdown.lines
    assert any("Finished server process" in line for line in shutdown.lines)
    assert not any("Traceback" in line for line in shutdown.lines), "\n".join(shutdown.lines)
