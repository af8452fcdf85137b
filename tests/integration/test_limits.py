"""The server's limits and timers, each shown kept and enforced: the request
head size (431), the handshake timeout (408), the closing-handshake timeout,
keepalive pings with their timeout, and the idle timeout."""
from __future__ import annotations

import os
import socket
import struct
import time

import pytest

import pyws
from tests.conftest import _start_test_server
from tests.integration.clients import call_with_timeout
from tests.wire import OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, RawClient, build_frame, close_payload

HANDSHAKE_TIMEOUT = 0.5
MAX_REQUEST_SIZE = 4096
CLOSE_TIMEOUT = 0.5
PING_INTERVAL = 0.2
PING_TIMEOUT = 0.4
IDLE_TIMEOUT = 0.6


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory):
    server = _start_test_server(
        tmp_path_factory, "limited-server", "--kind", "server", "--app", "wsgi",
        "--option", f"handshake_timeout={HANDSHAKE_TIMEOUT}",
        "--option", f"max_request_size={MAX_REQUEST_SIZE}",
        "--option", f"close_timeout={CLOSE_TIMEOUT}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keepalive_server(tmp_path_factory):
    server = _start_test_server(
        tmp_path_factory, "keepalive-server", "--kind", "server", "--app", "wsgi",
        "--option", f"ping_interval={PING_INTERVAL}",
        "--option", f"ping_timeout={PING_TIMEOUT}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def idle_server(tmp_path_factory):
    server = _start_test_server(
        tmp_path_factory, "idle-server", "--kind", "server", "--app", "wsgi",
        "--option", f"idle_timeout={IDLE_TIMEOUT}")
    yield server
    server.stop()


def masked(opcode, payload=b""):
    return build_frame(opcode, payload, mask=os.urandom(4))


def echo_once(raw, text="still here"):
    raw.send(masked(OP_TEXT, text.encode()))
    frame = raw.read_frame()
    assert (frame.opcode, frame.payload) == (OP_TEXT, text.encode())


def test_request_head_over_max_request_size_gets_431(limited_server):
    with RawClient(limited_server.port, timeout=5) as raw:
        raw.send(b"GET /ws HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * MAX_REQUEST_SIZE + b"\r\n\r\n")
        resp = raw.read_http_response()
        assert resp.status == 431
        raw.expect_eof()


def test_request_head_within_max_request_size_is_upgraded(limited_server):
    with RawClient(limited_server.port, timeout=5) as raw:
        raw.handshake("/ws", extra_headers=[("X-Pad", "a" * (MAX_REQUEST_SIZE // 2))])
        echo_once(raw)


def test_silent_connection_gets_408_after_handshake_timeout(limited_server):
    with RawClient(limited_server.port, timeout=5) as raw:
        started = time.monotonic()
        resp = raw.read_http_response(timeout=HANDSHAKE_TIMEOUT + 5)
        waited = time.monotonic() - started
        assert resp.status == 408
        raw.expect_eof()
    assert HANDSHAKE_TIMEOUT * 0.8 <= waited < HANDSHAKE_TIMEOUT + 4


def test_dripping_request_head_is_cut_at_handshake_timeout(limited_server):
    # One byte every 50 ms never completes the head in time, although each
    # byte arrives well within the timeout: the deadline covers the whole head.
    request = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" * 3
    with RawClient(limited_server.port, timeout=5) as raw:
        started = time.monotonic()
        try:
            for i in range(len(request)):
                raw.send(request[i:i + 1])
                if time.monotonic() - started > HANDSHAKE_TIMEOUT + 4:
                    pytest.fail("the server kept reading a dripping head")
                time.sleep(0.05)  # pacing the drip is the point of this client
        except OSError:
            pass  # the server closed while we were still writing
        data = raw.expect_eof(timeout=HANDSHAKE_TIMEOUT + 5)
        assert data.startswith(b"HTTP/1.1 408")


def test_a_client_reset_during_its_request_head_logs_no_traceback(limited_server):
    """A client that resets its connection in the middle of its request head
    is gone: nothing to answer, nothing to report but a debug line (it used
    to log two tracebacks, the reset and a failed 400 to the dead socket)."""
    limited_server.mark_log()
    raw = RawClient(limited_server.port, timeout=5)
    raw.send(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()  # RST
    with RawClient(limited_server.port, timeout=5) as other:
        other.handshake()
        for _ in range(3):  # the server has run the reset connection's greenlet by now
            echo_once(other)
    log = limited_server.log_since_mark()
    assert "Traceback" not in log and "Error" not in log, log


def test_an_idle_keep_alive_connection_is_closed_quietly(limited_server):
    """After its request, a keep-alive connection that sends nothing more
    is closed at handshake_timeout without a 408 and without logging the
    previous request a second time (with the idle time as its duration)."""
    limited_server.mark_log()
    with RawClient(limited_server.port, timeout=5) as raw:
        raw.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert raw.read_http_response().status == 200
        assert raw.expect_eof(timeout=HANDSHAKE_TIMEOUT + 5) == b""
    log = limited_server.log_since_mark()
    assert log.count('"GET / HTTP/1.1" 200') == 1, log
    assert " 408 " not in log, log


def test_handshake_timeout_does_not_limit_an_upgraded_connection(limited_server):
    with RawClient(limited_server.port, timeout=5) as raw:
        raw.handshake("/ws")
        deadline = time.monotonic() + 3 * HANDSHAKE_TIMEOUT
        while time.monotonic() < deadline:
            echo_once(raw)
            time.sleep(0.1)


def test_server_drops_tcp_when_client_never_answers_its_close(limited_server):
    with RawClient(limited_server.port, timeout=5) as raw:
        raw.handshake("/close")  # echoes twice, then closes with 4000
        raw.send(masked(OP_TEXT, b"hi"))
        assert raw.read_frame().payload == b"hi"
        assert raw.read_frame().payload == b"hi"
        frame = raw.read_frame()
        started = time.monotonic()
        assert (frame.opcode, frame.close_code) == (OP_CLOSE, 4000)
        raw.expect_eof(timeout=CLOSE_TIMEOUT + 5)  # we never answer the close
        waited = time.monotonic() - started
    assert CLOSE_TIMEOUT * 0.5 <= waited < CLOSE_TIMEOUT + 4


def test_keepalive_pings_arrive_and_answered_pongs_keep_the_connection(keepalive_server):
    with RawClient(keepalive_server.port, timeout=5) as raw:
        raw.handshake("/ws")
        for _ in range(4):  # several intervals, answering each ping
            frame = raw.read_frame(timeout=PING_INTERVAL + 5)
            assert frame.opcode == OP_PING and len(frame.payload) == 4
            raw.send(masked(OP_PONG, frame.payload))
        echo_once(raw)


def test_unanswered_keepalive_ping_drops_the_connection_with_1011(keepalive_server):
    with RawClient(keepalive_server.port, timeout=5) as raw:
        raw.handshake("/ws")
        frame = raw.read_frame(timeout=PING_INTERVAL + 5)
        assert frame.opcode == OP_PING  # and we never answer it
        frame = raw.read_frame(timeout=PING_TIMEOUT + 5)
        assert (frame.opcode, frame.close_code) == (OP_CLOSE, 1011)
        assert frame.close_reason == b"keepalive ping timeout"
        raw.expect_eof()


def test_pong_with_the_wrong_payload_does_not_count(keepalive_server):
    with RawClient(keepalive_server.port, timeout=5) as raw:
        raw.handshake("/ws")
        frame = raw.read_frame(timeout=PING_INTERVAL + 5)
        assert frame.opcode == OP_PING
        raw.send(masked(OP_PONG, b"nope"))
        frame = raw.read_frame(timeout=PING_TIMEOUT + 5)
        assert (frame.opcode, frame.close_code) == (OP_CLOSE, 1011)


def test_idle_connection_is_closed_with_1001(idle_server):
    with RawClient(idle_server.port, timeout=5) as raw:
        raw.handshake("/ws")
        started = time.monotonic()
        frame = raw.read_frame(timeout=IDLE_TIMEOUT + 5)
        waited = time.monotonic() - started
        assert (frame.opcode, frame.close_code, frame.close_reason) == (
            OP_CLOSE, 1001, b"idle timeout")
        raw.send(masked(OP_CLOSE, close_payload(1001)))
        raw.expect_eof()
    assert IDLE_TIMEOUT * 0.8 <= waited < IDLE_TIMEOUT + 4


def test_active_connection_is_not_idle(idle_server):
    with RawClient(idle_server.port, timeout=5) as raw:
        raw.handshake("/ws")
        deadline = time.monotonic() + 3 * IDLE_TIMEOUT
        while time.monotonic() < deadline:
            echo_once(raw)
            time.sleep(IDLE_TIMEOUT / 4)


def test_client_keepalive_is_answered_by_the_server(echo_server):
    ws = pyws.connect(echo_server.url("/ws"), timeout=5, ping_interval=0.1, ping_timeout=2)
    try:
        # The client's background task pings while the application only
        # waits; the server's pongs keep the connection open.
        time.sleep(0.5)
        call_with_timeout(ws.send, "after pings")
        assert call_with_timeout(ws.receive) == "after pings"
        assert not ws.closed
    finally:
        call_with_timeout(ws.close)
    assert ws.close_code == 1000
