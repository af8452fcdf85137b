"""uvicorn's WebSocket options, honoured by the --ws implementation:
--ws-max-size, --ws-ping-interval / --ws-ping-timeout,
--ws-per-message-deflate, --ws-max-queue; and the server's default headers
(--header, --no-server-header) in the 101."""
from __future__ import annotations

import time

import pytest
from websockets.exceptions import ConnectionClosed

from tests.asgi.conftest import PING_INTERVAL, PING_TIMEOUT, SMALL_LIMIT
from tests.asgi.support import read_frames_until_close, ws_connect
from tests.wire import OP_BINARY, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawClient

DEFLATE_OFFER = ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")

# After a too-big message, the app's websocket.disconnect carries 1009 (the
# websockets implementation gives it 1006).
TOO_BIG_APP_CODES = {"websockets": {1006}, "websockets-sansio": {1009}, "wsproto": {1009},
                     "pyws": {1006, 1009}}


def _expect_1009(client: RawClient) -> None:
    frames, close = read_frames_until_close(client)
    assert frames == [], "the server echoed a message over --ws-max-size"
    assert close is not None, "no close frame"
    assert close.close_code == 1009, (close.close_code, close.close_reason)


def test_message_of_exactly_ws_max_size_is_accepted(small_limit_server):
    with RawClient(small_limit_server.port) as client:
        client.handshake("/echo")
        client.send_frame(OP_BINARY, b"x" * SMALL_LIMIT)
        frame = client.read_frame()
        assert (frame.opcode, len(frame.payload)) == (OP_BINARY, SMALL_LIMIT)


def test_message_over_ws_max_size_closes_with_1009(small_limit_server, impl, token):
    with RawClient(small_limit_server.port) as client:
        client.handshake(f"/echo?id={token}")
        client.send_frame(OP_BINARY, b"x" * (SMALL_LIMIT + 1))
        _expect_1009(client)
    record = small_limit_server.recorded_disconnect(token)
    assert record["code"] in TOO_BIG_APP_CODES[impl], record


def test_ws_max_size_counts_utf8_bytes_of_text(small_limit_server):
    with RawClient(small_limit_server.port) as client:
        client.handshake("/echo")
        client.send_frame(OP_TEXT, "\u00e9" * (SMALL_LIMIT // 2))  # exactly the limit in bytes
        frame = client.read_frame()
        assert (frame.opcode, frame.payload) == (OP_TEXT, ("\u00e9" * (SMALL_LIMIT // 2)).encode())
        client.send_frame(OP_TEXT, "\u00e9" * (SMALL_LIMIT // 2 + 1))
        _expect_1009(client)


def test_ws_max_size_applies_to_the_whole_fragmented_message(small_limit_server):
    with RawClient(small_limit_server.port) as client:
        client.handshake("/echo")
        client.send_frame(OP_TEXT, "a" * 600, fin=False)
        client.send_frame(OP_CONT, "b" * 401, fin=True)
        _expect_1009(client)


def test_ws_max_size_default_is_16_mib(server):
    """uvicorn's default --ws-max-size: a message of 16 MiB + 1 byte (in two
    fragments, so the limit is crossed by the last byte) closes with 1009."""
    limit = 16 * 1024 * 1024
    with RawClient(server.port, timeout=30) as client:
        client.handshake("/echo")
        client.send_frame(OP_BINARY, bytes(limit), fin=False)
        client.send_frame(OP_CONT, b"!", fin=True)
        _expect_1009(client)


def test_websockets_client_sees_1009_over_ws_max_size(small_limit_server):
    with ws_connect(small_limit_server.url("/echo")) as ws:
        ws.send(b"y" * (SMALL_LIMIT + 1))
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009


def test_server_pings_at_ws_ping_interval_and_drops_a_client_that_never_answers(
        ping_server, token):
    with RawClient(ping_server.port) as client:
        client.handshake(f"/record?id={token}")
        started = time.monotonic()
        ping = client.read_frame(5)
        assert ping.opcode == OP_PING, "the first frame is not a keepalive ping"
        assert time.monotonic() - started < PING_INTERVAL + 2
        frames, close = read_frames_until_close(client, timeout=5, answer_pings=False)
        assert [f.opcode for f in frames if f.opcode != OP_PING] == []
        assert close is not None, "dropped without a close frame"
        assert (close.close_code, close.close_reason) == (1011, b"keepalive ping timeout")
        assert client.expect_eof(5) == b""
        assert time.monotonic() - started < PING_INTERVAL + PING_TIMEOUT + 3
    assert ping_server.recorded_disconnect(token)["code"] in (1005, 1006, 1011)


def test_client_that_answers_pings_stays_connected(ping_server):
    """Five keepalive rounds, each ping answered with its payload: the
    connection is still open and echoing."""
    with RawClient(ping_server.port) as client:
        client.handshake("/echo")
        payloads = set()
        while len(payloads) < 5:
            frame = client.read_frame(5)
            assert frame.opcode == OP_PING, (frame.opcode, frame.payload)
            payloads.add(frame.payload)
            client.send_frame(OP_PONG, frame.payload)
        client.send_frame(OP_TEXT, "still here")
        while True:
            frame = client.read_frame(5)
            if frame.opcode == OP_PING:
                client.send_frame(OP_PONG, frame.payload)
                continue
            assert (frame.opcode, frame.payload) == (OP_TEXT, b"still here")
            break


def test_answered_pings_come_every_ping_interval(ping_server):
    """With pongs coming back at once, uvicorn's implementations send the
    next ping one --ws-ping-interval (0.2 s) later, not after the
    --ws-ping-timeout (0.6 s) has run out."""
    with RawClient(ping_server.port) as client:
        client.handshake("/echo")
        times = []
        while len(times) < 6:
            frame = client.read_frame(5)
            assert frame.opcode == OP_PING
            times.append(time.monotonic())
            client.send_frame(OP_PONG, frame.payload)
    gaps = [round(b - a, 2) for a, b in zip(times, times[1:])]
    # Five intervals take 1.0 s; five timeouts would take 3.0 s.
    assert times[-1] - times[0] < 5 * (PING_INTERVAL + PING_TIMEOUT) / 2, \
        f"answered pings came every {gaps} s, not every {PING_INTERVAL} s"


def test_websockets_client_answering_pings_stays_connected(ping_server):
    with ws_connect(ping_server.url("/echo")) as ws:
        deadline = time.monotonic() + 5 * PING_INTERVAL
        n = 0
        while time.monotonic() < deadline:  # echo round trips for 1 s of pings
            ws.send(f"round {n}")
            assert ws.recv(timeout=5) == f"round {n}"
            n += 1
        ws.send("end")
        assert ws.recv(timeout=5) == "end"


def test_per_message_deflate_on_by_default(server):
    with RawClient(server.port) as client:
        resp = client.handshake("/echo", extra_headers=[DEFLATE_OFFER])
        extensions = resp.header("Sec-WebSocket-Extensions")
        assert extensions is not None
        assert extensions.split(";")[0].strip() == "permessage-deflate"


def test_no_extension_in_101_when_client_offers_none(server):
    with RawClient(server.port) as client:
        resp = client.handshake("/echo")
        assert resp.header("Sec-WebSocket-Extensions") is None


def test_per_message_deflate_false_declines_the_offer(alt_server):
    with RawClient(alt_server.port) as client:
        resp = client.handshake("/echo", extra_headers=[DEFLATE_OFFER])
        assert resp.header("Sec-WebSocket-Extensions") is None
        client.send_frame(OP_TEXT, "abc" * 1000)
        frame = client.read_frame()
        assert frame.rsv == 0 and frame.payload == b"abc" * 1000


def test_ws_max_queue_1_still_delivers_pipelined_messages_in_order(alt_server):
    messages = [f"m{i}" * 50 for i in range(100)]
    with ws_connect(alt_server.url("/echo")) as ws:
        for message in messages:
            ws.send(message)
        assert [ws.recv(timeout=10) for _ in messages] == messages


def test_server_header_option_and_extra_headers_option_apply_to_the_101(alt_server):
    with RawClient(alt_server.port) as client:
        resp = client.handshake("/echo")
        assert resp.header("server") is None  # --no-server-header
        assert resp.header("x-extra") == "from-cli"  # --header x-extra:from-cli
        assert resp.header("date") is not None

