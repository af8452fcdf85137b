"""websocket.receive / websocket.send under uvicorn: text and bytes, order,
fragments, large messages, control frames, compression, protocol errors."""
from __future__ import annotations

import zlib

import pytest
import websocket as websocket_client

from tests.asgi.support import read_frames_until_close, ws_connect, wsc_connect
from tests.wire import OP_BINARY, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawClient, build_frame

UNICODE = "h\u00e9llo w\u00f6rld \u4e16\u754c \U0001f600"


@pytest.mark.parametrize("message", [
    "plain ascii", UNICODE, "", b"\x00\x01\xfe\xff", bytes(range(256)) * 10, b""],
    ids=["text-ascii", "text-unicode", "text-empty", "binary-short", "binary-2560",
         "binary-empty"])
def test_a_message_echoes_with_its_type(server, message):
    """Text comes back as text (str), binary as binary (bytes)."""
    with ws_connect(server.url("/echo")) as ws:
        ws.send(message)
        reply = ws.recv(timeout=10)
        assert type(reply) is type(message)
        assert reply == message


def test_websocket_client_gets_text_and_binary_opcodes_back(server):
    ws = wsc_connect(server.url("/echo"))
    try:
        ws.send(UNICODE)
        opcode, data = ws.recv_data()
        assert (opcode, data.decode()) == (websocket_client.ABNF.OPCODE_TEXT, UNICODE)
        ws.send_binary(b"\x00bin\xff")
        opcode, data = ws.recv_data()
        assert (opcode, data) == (websocket_client.ABNF.OPCODE_BINARY, b"\x00bin\xff")
    finally:
        ws.close()


def test_pipelined_messages_echo_in_order(server):
    """200 messages, text and binary mixed, sent before reading any echo."""
    messages = [f"text {i}" if i % 2 else f"bytes {i}".encode() for i in range(200)]
    with ws_connect(server.url("/echo")) as ws:
        for message in messages:
            ws.send(message)
        replies = [ws.recv(timeout=10) for _ in messages]
    assert replies == messages


def test_frames_from_server_are_unmasked_and_final(server):
    with RawClient(server.port) as client:
        client.handshake("/echo")
        client.send_frame(OP_TEXT, "unmasked?")
        frame = client.read_frame()
        assert (frame.opcode, frame.fin, frame.masked, frame.rsv) == (OP_TEXT, True, False, 0)
        assert frame.payload == b"unmasked?"


def test_fragmented_message_with_interleaved_ping_is_one_message(server):
    with RawClient(server.port) as client:
        client.handshake("/echo")
        client.send_frame(OP_TEXT, "frag1-", fin=False)
        client.send_frame(OP_PING, b"in between")
        client.send_frame(OP_CONT, "frag2-", fin=False)
        client.send_frame(OP_CONT, "frag3", fin=True)
        pong = client.read_frame()
        assert (pong.opcode, pong.payload) == (OP_PONG, b"in between")
        echo = client.read_frame()
        assert (echo.opcode, echo.payload) == (OP_TEXT, b"frag1-frag2-frag3")


def test_fragmented_binary_message_is_reassembled(server):
    parts = [bytes([i]) * 1000 for i in range(5)]
    with RawClient(server.port) as client:
        client.handshake("/echo")
        client.send_frame(OP_BINARY, parts[0], fin=False)
        for part in parts[1:-1]:
            client.send_frame(OP_CONT, part, fin=False)
        client.send_frame(OP_CONT, parts[-1], fin=True)
        echo = client.read_frame()
        assert (echo.opcode, echo.payload) == (OP_BINARY, b"".join(parts))


def test_ping_from_client_is_answered_with_same_payload(server):
    with RawClient(server.port) as client:
        client.handshake("/echo")
        client.send_frame(OP_PING, b"are you there")
        frame = client.read_frame()
        assert (frame.opcode, frame.payload) == (OP_PONG, b"are you there")
        client.send_frame(OP_TEXT, "still open")
        assert client.read_frame().payload == b"still open"


def test_unsolicited_pong_from_client_is_ignored(server):
    with RawClient(server.port) as client:
        client.handshake("/echo")
        client.send_frame(OP_PONG, b"nobody asked")
        client.send_frame(OP_TEXT, "after the pong")
        frame = client.read_frame()
        assert (frame.opcode, frame.payload) == (OP_TEXT, b"after the pong")


def test_two_mib_message_echoes_under_uvicorns_default_16_mib_limit(server):
    """uvicorn's ws_max_size defaults to 16 MiB (pyws's own default is 1 MiB:
    the server must take uvicorn's)."""
    message = bytes(range(256)) * (2 * 1024 * 1024 // 256)
    with ws_connect(server.url("/echo")) as ws:
        ws.send(message)
        assert ws.recv(timeout=20) == message


def test_server_sends_a_four_mib_message_whole(server):
    size = 4 * 1024 * 1024
    with ws_connect(server.url(f"/big?size={size}")) as ws:
        data = ws.recv(timeout=20)
    assert data == bytes(range(256)) * (size // 256)


def test_compressed_echo_round_trip_with_websockets_client(server):
    text = "compress me please " * 5000
    with ws_connect(server.url("/echo"), compression="deflate") as ws:
        assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
        for message in (text, text.encode(), UNICODE, ""):
            ws.send(message)
            assert ws.recv(timeout=10) == message


def test_server_compresses_its_frames_when_deflate_is_negotiated(server):
    text = "abcdefgh" * 2000
    with RawClient(server.port) as client:
        resp = client.handshake("/echo", extra_headers=[
            ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")])
        assert resp.header("Sec-WebSocket-Extensions").split(";")[0] == "permessage-deflate"
        client.send_frame(OP_TEXT, text)  # a client may send uncompressed frames
        frame = client.read_frame()
        assert frame.opcode == OP_TEXT and frame.rsv == 4, "expected RSV1 (compressed)"
        assert len(frame.payload) < len(text) // 10
        inflated = zlib.decompressobj(-15).decompress(frame.payload + b"\x00\x00\xff\xff")
        assert inflated == text.encode()


# The wsproto implementation drops TCP without a close frame after a
# protocol error (its app still gets the code); the others send the frame.
SENDS_CLOSE_FRAME_ON_PROTOCOL_ERROR = {"websockets", "websockets-sansio", "pyws"}


@pytest.mark.parametrize("frame, code", [
    (build_frame(OP_TEXT, b"\xff\xfe", mask=b"abcd"), 1007),
    (build_frame(OP_TEXT, b"not masked"), 1002),
    (build_frame(0x3, b"reserved opcode", mask=b"abcd"), 1002),
    (build_frame(OP_PING, b"x" * 126, mask=b"abcd"), 1002),
], ids=["invalid-utf8", "unmasked", "reserved-opcode", "long-ping"])
def test_protocol_error_from_client_closes_with_its_code(server, impl, frame, code):
    with RawClient(server.port) as client:
        client.handshake("/echo")
        client.send(frame)
        frames, close = read_frames_until_close(client)
        assert frames == []
        if impl in SENDS_CLOSE_FRAME_ON_PROTOCOL_ERROR:
            assert close is not None, "no close frame before EOF"
        if close is not None:
            assert close.close_code == code
            client.expect_eof()
