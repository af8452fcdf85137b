"""A hand-written client over a raw socket: masked frames written one byte per
``sendall``, fragmentation with a ping in the middle, protocol errors and the
close codes the server answers them with."""
from __future__ import annotations

import os

import pytest

from tests.conftest import SMALL_MAX
from tests.wire import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RawClient,
    build_frame,
    close_payload,
)


@pytest.fixture
def raw(echo_server):
    with RawClient(echo_server.port, timeout=10) as c:
        yield c


def masked(opcode, payload=b"", **kw):
    return build_frame(opcode, payload, mask=os.urandom(4), **kw)


def expect_frame(raw, opcode, payload, fin=True):
    f = raw.read_frame()
    assert (f.opcode, f.fin, f.rsv, f.masked) == (opcode, fin, 0, False), f
    assert f.payload == payload
    return f


def expect_close(raw, code):
    """The server's close frame carries ``code``; then the server ends TCP."""
    f = raw.read_frame()
    assert f.opcode == OP_CLOSE, f
    assert f.masked is False
    assert f.close_code == code, (f.close_code, f.close_reason)
    f.close_reason.decode("utf-8")
    raw.expect_eof()
    return f


def test_frames_written_one_byte_at_a_time_are_echoed(raw):
    raw.handshake("/ws")
    raw.send_bytewise(masked(OP_TEXT, "byte by byte \u20ac"))
    expect_frame(raw, OP_TEXT, "byte by byte \u20ac".encode())
    data = bytes(range(256)) * 2
    raw.send_bytewise(masked(OP_BINARY, data))
    expect_frame(raw, OP_BINARY, data)


def test_fragmented_message_with_ping_in_the_middle_bytewise(raw):
    raw.handshake("/ws")
    raw.send_bytewise(masked(OP_TEXT, b"frag", fin=False)
                      + masked(OP_PING, b"ping in the middle")
                      + masked(OP_CONT, b"mented ", fin=False)
                      + masked(OP_CONT, b"message", fin=True))
    expect_frame(raw, OP_PONG, b"ping in the middle")
    expect_frame(raw, OP_TEXT, b"fragmented message")


def test_ping_gets_pong_with_same_payload(raw):
    raw.handshake("/ws")
    raw.send(masked(OP_PING, b"\x00hello\xff"))
    expect_frame(raw, OP_PONG, b"\x00hello\xff")


def test_message_in_same_write_as_handshake_is_echoed(raw):
    raw.handshake("/ws", then=masked(OP_TEXT, b"sent with the handshake")
                  + masked(OP_BINARY, b"\x01\x02"))
    expect_frame(raw, OP_TEXT, b"sent with the handshake")
    expect_frame(raw, OP_BINARY, b"\x01\x02")


def test_close_handshake_echoes_1000_and_ends_the_connection(raw):
    raw.handshake("/ws")
    raw.send(masked(OP_CLOSE, close_payload(1000, "bye")))
    expect_close(raw, 1000)


def test_unmasked_frame_gets_close_1002(raw):
    raw.handshake("/ws")
    raw.send(build_frame(OP_TEXT, b"not masked"))
    expect_close(raw, 1002)


def test_reserved_opcode_gets_close_1002(raw):
    raw.handshake("/ws")
    raw.send(masked(0x3, b"x"))
    expect_close(raw, 1002)


def test_invalid_utf8_gets_close_1007(raw):
    raw.handshake("/ws")
    raw.send(masked(OP_TEXT, b"bad \xff utf-8"))
    expect_close(raw, 1007)


def test_invalid_utf8_in_first_fragment_gets_close_1007_without_final_fragment(raw):
    raw.handshake("/ws")
    raw.send(masked(OP_TEXT, b"bad \xc0", fin=False))
    expect_close(raw, 1007)


@pytest.fixture
def small_raw(small_server):
    with RawClient(small_server.port, timeout=10) as c:
        yield c


def test_message_at_limit_is_echoed_by_small_max_server(small_raw):
    small_raw.handshake("/ws")
    small_raw.send(masked(OP_BINARY, b"L" * SMALL_MAX))
    expect_frame(small_raw, OP_BINARY, b"L" * SMALL_MAX)


def test_over_limit_message_gets_close_1009(small_raw):
    small_raw.handshake("/ws")
    small_raw.send(masked(OP_BINARY, b"L" * (SMALL_MAX + 1)))
    expect_close(small_raw, 1009)


def test_over_limit_fragmented_message_gets_close_1009(small_raw):
    small_raw.handshake("/ws")
    half = SMALL_MAX // 2
    small_raw.send(masked(OP_TEXT, b"a" * half, fin=False)
                   + masked(OP_CONT, b"b" * half, fin=False)
                   + masked(OP_CONT, b"c", fin=True))
    expect_close(small_raw, 1009)


def test_eof_without_close_frame_does_not_disturb_the_server(echo_server):
    with RawClient(echo_server.port, timeout=10) as c:
        c.handshake("/ws")
        c.send(masked(OP_TEXT, b"x", fin=False))
    with RawClient(echo_server.port, timeout=10) as c:
        c.handshake("/ws")
        c.send(masked(OP_TEXT, b"still serving"))
        expect_frame(c, OP_TEXT, b"still serving")


def test_handshake_written_one_byte_at_a_time_then_echo(echo_server):
    from tests.wire import accept_for, upgrade_request
    with RawClient(echo_server.port, timeout=10) as c:
        req, key = upgrade_request(f"127.0.0.1:{echo_server.port}", "/ws")
        c.send_bytewise(req + masked(OP_TEXT, b"after a slow handshake"))
        resp = c.read_http_response()
        assert resp.status == 101
        assert resp.header("Sec-WebSocket-Accept") == accept_for(key)
        expect_frame(c, OP_TEXT, b"after a slow handshake")


def test_default_server_limit_is_1_mib(raw):
    raw.handshake("/ws")
    raw.send(masked(OP_BINARY, b"\x07" * (1 << 20)))
    expect_frame(raw, OP_BINARY, b"\x07" * (1 << 20))
    raw.send(masked(OP_BINARY, b"\x07" * ((1 << 20) + 1)))
    expect_close(raw, 1009)
