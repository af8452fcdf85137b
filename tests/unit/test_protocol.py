"""The sans-I/O protocol engine pyws._core.Protocol (RFC 6455 sections 5-7).

A client Protocol and a server Protocol are wired in memory; raw frames are
built by tests/wire.py.  Every input is fed both whole and one byte at a time
(the ``feed`` fixture).
"""
from __future__ import annotations

import struct

import pytest

from pyws import _core
from pyws.exceptions import ConnectionClosed
from tests import vectors
from tests.wire import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RSV1,
    RSV2,
    RSV3,
    build_frame,
    close_payload,
    parse_all_frames,
)

TEXT, BINARY, PING, PONG, CLOSE, FAIL = (_core.TEXT, _core.BINARY, _core.PING, _core.PONG,
                                         _core.CLOSE, _core.FAIL)
OPEN, CLOSING, CLOSED = _core.OPEN, _core.CLOSING, _core.CLOSED

MASK = vectors.MASK_KEY
MiB = 1 << 20


# ---------------------------------------------------------------------------
# helpers

def feed_whole(proto, data):
    proto.receive_data(data)


def feed_bytewise(proto, data):
    for i in range(len(data)):
        proto.receive_data(data[i:i + 1])


@pytest.fixture(params=["whole", "bytewise"])
def feed(request):
    return feed_whole if request.param == "whole" else feed_bytewise


def server(**kw):
    return _core.Protocol(server=True, **kw)


def client(**kw):
    return _core.Protocol(server=False, **kw)


def masked(opcode, payload=b"", **kw):
    """A frame as a client sends it (masked)."""
    return build_frame(opcode, payload, mask=MASK, **kw)


def unmasked(opcode, payload=b"", **kw):
    """A frame as a server sends it."""
    return build_frame(opcode, payload, **kw)


def frame_for(proto, opcode, payload=b"", **kw):
    """A valid-masking frame for a peer of ``proto``."""
    return masked(opcode, payload, **kw) if proto.is_server else unmasked(opcode, payload, **kw)


def text_of_size(n):
    """A str whose UTF-8 encoding is exactly n bytes, with 1-4 byte chars."""
    unit = "a\u00e9\u20ac\U0001d11e"  # 1 + 2 + 3 + 4 bytes
    s = unit * (n // 10)
    s += "b" * (n - len(s.encode("utf-8")))
    assert len(s.encode("utf-8")) == n
    return s


def binary_of_size(n):
    return bytes((i * 31 + 7) & 0xFF for i in range(n)) if n < 70000 else \
        (bytes(range(256)) * (n // 256 + 1))[:n]


def expected_header(opcode, n, masked_=False):
    m = 0x80 if masked_ else 0
    if n <= 125:
        return bytes([0x80 | opcode, m | n])
    if n <= 0xFFFF:
        return bytes([0x80 | opcode, m | 126]) + struct.pack("!H", n)
    return bytes([0x80 | opcode, m | 127]) + struct.pack("!Q", n)


def assert_failed(proto, events, code, before=()):
    """``events`` end with FAIL(code); the output is exactly one close frame with
    that code, masked as the role requires; the protocol is closed; further
    input is ignored."""
    assert events, "no event at all: expected FAIL"
    assert events[:-1] == list(before), events
    kind, (got_code, reason) = events[-1]
    assert (kind, got_code) == (FAIL, code), events
    assert isinstance(reason, str)
    frames = parse_all_frames(proto.data_to_send())
    # Pings that arrived before the failure were answered first.
    pongs = [payload for kind, payload in before if kind == PING]
    assert [f.opcode for f in frames] == [OP_PONG] * len(pongs) + [OP_CLOSE]
    assert [f.payload for f in frames[:-1]] == pongs
    close = frames[-1]
    assert close.masked is (not proto.is_server)
    assert close.close_code == code
    assert len(close.payload) <= 125
    close.close_reason.decode("utf-8")
    assert proto.state == CLOSED
    assert proto.close_code == code
    # Nothing after a FAIL: further data is ignored.
    proto.receive_data(frame_for(proto, OP_TEXT, b"after"))
    proto.receive_data(frame_for(proto, OP_PING, b"after"))
    assert proto.events_received() == []
    assert proto.data_to_send() == b""


def only_frame(data):
    frames = parse_all_frames(data)
    assert len(frames) == 1, frames
    return frames[0]


# ---------------------------------------------------------------------------
# construction and state

def test_module_constants_are_distinct():
    assert len({TEXT, BINARY, PING, PONG, CLOSE, FAIL}) == 6
    assert len({OPEN, CLOSING, CLOSED}) == 3
    assert MiB == _core.DEFAULT_MAX_MESSAGE_SIZE


def test_new_protocol_defaults():
    p = _core.Protocol()
    assert p.is_server is True
    assert p.max_message_size == _core.DEFAULT_MAX_MESSAGE_SIZE
    assert p.state == OPEN
    assert p.close_sent is False and p.close_received is False
    assert p.close_code is None
    assert p.close_reason == ""
    assert p.output_size == 0
    assert p.data_to_send() == b""
    assert p.events_received() == []


def test_client_role_and_custom_max_message_size():
    p = _core.Protocol(server=False, max_message_size=1234)
    assert p.is_server is False
    assert p.max_message_size == 1234


def test_negative_max_message_size_raises_value_error():
    with pytest.raises(ValueError):
        _core.Protocol(max_message_size=-1)


def test_output_size_counts_queued_bytes():
    p = server()
    p.send_text("Hello")
    assert p.output_size == 7
    p.send_binary(b"x" * 200)
    assert p.output_size == 7 + 4 + 200
    assert len(p.data_to_send()) == 211
    assert p.output_size == 0
    assert p.data_to_send() == b""


# ---------------------------------------------------------------------------
# RFC 6455 section 5.7 vectors

def test_server_send_text_hello_is_the_rfc_unmasked_vector():
    p = server()
    p.send_text("Hello")
    assert p.data_to_send() == vectors.TEXT_HELLO_UNMASKED


def test_server_send_text_accepts_utf8_bytes():
    p = server()
    p.send_text(b"Hello")
    p.send_text(bytearray("\u00e9".encode()))
    assert p.data_to_send() == vectors.TEXT_HELLO_UNMASKED + b"\x81\x02\xc3\xa9"


def test_send_text_rejects_invalid_utf8_bytes():
    p = server()
    with pytest.raises(ValueError):
        p.send_text(b"\xff\xfe")
    assert p.data_to_send() == b""


def test_server_send_ping_hello_is_the_rfc_vector():
    p = server()
    p.send_ping(b"Hello")
    assert p.data_to_send() == vectors.PING_HELLO_UNMASKED


def test_server_send_binary_256_bytes_uses_16_bit_length():
    data = binary_of_size(256)
    p = server()
    p.send_binary(data)
    assert p.data_to_send() == vectors.BINARY_256_HEADER + data


def test_server_send_binary_64k_uses_64_bit_length():
    data = binary_of_size(65536)
    p = server()
    p.send_binary(data)
    assert p.data_to_send() == vectors.BINARY_64K_HEADER + data


def test_server_receives_rfc_masked_hello_as_text(feed):
    p = server()
    feed(p, vectors.TEXT_HELLO_MASKED)
    assert p.events_received() == [(TEXT, "Hello")]
    assert p.data_to_send() == b""


def test_server_receives_rfc_masked_pong(feed):
    p = server()
    feed(p, vectors.PONG_HELLO_MASKED)
    assert p.events_received() == [(PONG, b"Hello")]
    assert p.data_to_send() == b""


def test_client_receives_rfc_unmasked_hello_as_text(feed):
    p = client()
    feed(p, vectors.TEXT_HELLO_UNMASKED)
    assert p.events_received() == [(TEXT, "Hello")]


def test_client_receives_rfc_fragmented_hello_as_one_message(feed):
    p = client()
    first, last = vectors.TEXT_HELLO_FRAGMENTED_UNMASKED
    feed(p, first)
    assert p.events_received() == []
    feed(p, last)
    assert p.events_received() == [(TEXT, "Hello")]


def test_client_answers_rfc_ping_with_masked_pong(feed):
    p = client()
    feed(p, vectors.PING_HELLO_UNMASKED)
    assert p.events_received() == [(PING, b"Hello")]
    pong = only_frame(p.data_to_send())
    assert (pong.fin, pong.rsv, pong.opcode, pong.masked) == (True, 0, OP_PONG, True)
    assert pong.header[:2] == b"\x8a\x85"
    assert pong.payload == b"Hello"


def test_client_receives_rfc_256_and_64k_binary_vectors(feed):
    p = client()
    d256, d64k = binary_of_size(256), binary_of_size(65536)
    feed(p, vectors.BINARY_256_HEADER + d256 + vectors.BINARY_64K_HEADER + d64k)
    assert p.events_received() == [(BINARY, d256), (BINARY, d64k)]


# ---------------------------------------------------------------------------
# payload lengths, both directions, in memory

LENGTHS = [0, 125, 126, 65535, 65536, 3 * MiB]


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("kind", ["text", "binary"])
@pytest.mark.parametrize("direction", ["client-to-server", "server-to-client"])
def test_message_of_length_round_trips(feed, n, kind, direction):
    limit = 4 * MiB
    c, s = client(max_message_size=limit), server(max_message_size=limit)
    sender, receiver = (c, s) if direction == "client-to-server" else (s, c)
    opcode = OP_TEXT if kind == "text" else OP_BINARY
    if kind == "text":
        msg = text_of_size(n)
        sender.send_text(msg)
    else:
        msg = binary_of_size(n)
        sender.send_binary(msg)
    wire = sender.data_to_send()
    frame = only_frame(wire)
    header = frame.header[:-4] if frame.masked else frame.header
    assert header == expected_header(opcode, n, masked_=sender is c)
    expected_payload = msg.encode("utf-8") if kind == "text" else msg
    assert frame.payload == expected_payload
    if sender is c and n > 0:
        assert frame.raw_payload != expected_payload
    feed(receiver, wire)
    events = receiver.events_received()
    assert len(events) == 1
    assert events[0][0] == (TEXT if kind == "text" else BINARY)
    assert type(events[0][1]) is (str if kind == "text" else bytes)
    assert events[0][1] == msg
    assert receiver.data_to_send() == b""


def test_client_frames_are_masked_with_fresh_keys():
    p = client()
    plain = b"0123456789abcdef"
    p.send_binary(plain)
    p.send_binary(plain)
    p.send_text(plain.decode())
    p.send_ping(plain)
    p.send_pong(plain)
    frames = parse_all_frames(p.data_to_send())
    assert [f.opcode for f in frames] == [OP_BINARY, OP_BINARY, OP_TEXT, OP_PING, OP_PONG]
    for f in frames:
        assert f.masked and f.fin and f.rsv == 0
        assert f.payload == plain
        assert f.raw_payload != plain
    assert len({f.mask for f in frames}) == 5, "masking keys must not repeat"


def test_server_frames_are_not_masked():
    p = server()
    p.send_binary(b"abc")
    p.send_pong(b"p")
    frames = parse_all_frames(p.data_to_send())
    assert [(f.masked, f.raw_payload) for f in frames] == [(False, b"abc"), (False, b"p")]


def test_ping_and_pong_payload_over_125_bytes_raise_value_error():
    for p in (server(), client()):
        p.send_ping(b"x" * 125)
        p.send_pong(b"x" * 125)
        p.data_to_send()
        with pytest.raises(ValueError):
            p.send_ping(b"x" * 126)
        with pytest.raises(ValueError):
            p.send_pong(b"x" * 126)
        assert p.data_to_send() == b""


# ---------------------------------------------------------------------------
# masking rules

def test_unmasked_client_frame_fails_with_1002(feed):
    p = server()
    feed(p, unmasked(OP_TEXT, b"Hello"))
    assert_failed(p, p.events_received(), 1002)


def test_masked_frame_to_client_fails_with_1002(feed):
    p = client()
    feed(p, masked(OP_TEXT, b"Hello"))
    assert_failed(p, p.events_received(), 1002)


def test_unmasked_control_frame_to_server_fails_with_1002(feed):
    p = server()
    feed(p, unmasked(OP_PING, b"x"))
    assert_failed(p, p.events_received(), 1002)


# ---------------------------------------------------------------------------
# fragmentation and control frames

def test_server_reassembles_fragments_with_pings_interleaved(feed):
    p = server()
    feed(p, masked(OP_TEXT, b"Hel", fin=False)
         + masked(OP_PING, b"p1")
         + masked(OP_CONT, b"lo, ", fin=False)
         + masked(OP_PONG, b"x")
         + masked(OP_PING, b"p2")
         + masked(OP_CONT, b"world", fin=True))
    assert p.events_received() == [(PING, b"p1"), (PONG, b"x"), (PING, b"p2"),
                                   (TEXT, "Hello, world")]
    assert p.data_to_send() == b"\x8a\x02p1\x8a\x02p2"


def test_client_reassembles_binary_fragments_with_ping_interleaved(feed):
    p = client()
    feed(p, unmasked(OP_BINARY, b"\x00\x01", fin=False)
         + unmasked(OP_PING, b"")
         + unmasked(OP_CONT, b"\x02", fin=False)
         + unmasked(OP_CONT, b"\x03\xff", fin=True))
    assert p.events_received() == [(PING, b""), (BINARY, b"\x00\x01\x02\x03\xff")]
    pong = only_frame(p.data_to_send())
    assert (pong.opcode, pong.masked, pong.payload) == (OP_PONG, True, b"")


def test_many_one_byte_fragments_and_empty_fragments(feed):
    p = server()
    data = masked(OP_TEXT, b"", fin=False)
    for ch in b"fragmented":
        data += masked(OP_CONT, bytes([ch]), fin=False)
    data += masked(OP_CONT, b"", fin=True)
    feed(p, data)
    assert p.events_received() == [(TEXT, "fragmented")]


def test_empty_text_and_binary_messages(feed):
    p = server()
    feed(p, masked(OP_TEXT) + masked(OP_BINARY))
    assert p.events_received() == [(TEXT, ""), (BINARY, b"")]


def test_ping_is_answered_with_pong_of_same_payload(feed):
    p = server()
    payload = bytes(range(125))
    feed(p, masked(OP_PING, payload))
    assert p.events_received() == [(PING, payload)]
    assert p.data_to_send() == b"\x8a\x7d" + payload


def test_empty_ping_is_answered_with_empty_pong(feed):
    p = server()
    feed(p, masked(OP_PING))
    assert p.events_received() == [(PING, b"")]
    assert p.data_to_send() == b"\x8a\x00"


def test_ping_pong_between_client_and_server_in_memory():
    c, s = client(), server()
    c.send_ping(b"are you there")
    s.receive_data(c.data_to_send())
    assert s.events_received() == [(PING, b"are you there")]
    c.receive_data(s.data_to_send())
    assert c.events_received() == [(PONG, b"are you there")]


# ---------------------------------------------------------------------------
# close handshake

def test_close_handshake_client_initiated(feed):
    c, s = client(), server()
    c.send_close(1000, "bye")
    assert (c.state, c.close_sent, c.close_received) == (CLOSING, True, False)
    wire = c.data_to_send()
    frame = only_frame(wire)
    assert (frame.opcode, frame.masked, frame.close_code, frame.close_reason) == (
        OP_CLOSE, True, 1000, b"bye")
    feed(s, wire)
    assert s.events_received() == [(CLOSE, (1000, "bye"))]
    assert s.close_received is True
    assert (s.close_code, s.close_reason) == (1000, "bye")
    echo = s.data_to_send()
    assert echo == b"\x88\x05\x03\xe8bye"  # the code and the reason, echoed
    assert s.close_sent is True
    assert s.state == CLOSED
    feed(c, echo)
    assert c.events_received() == [(CLOSE, (1000, "bye"))]
    assert (c.state, c.close_sent, c.close_received) == (CLOSED, True, True)
    assert c.close_code == 1000
    assert c.data_to_send() == b""


def test_close_handshake_server_initiated(feed):
    c, s = client(), server()
    s.send_close(1001, "going away")
    wire = s.data_to_send()
    assert wire == b"\x88\x0c\x03\xe9going away"
    assert s.state == CLOSING
    feed(c, wire)
    assert c.events_received() == [(CLOSE, (1001, "going away"))]
    assert (c.close_code, c.close_reason) == (1001, "going away")
    echo_wire = c.data_to_send()
    echo = only_frame(echo_wire)
    assert (echo.opcode, echo.masked, echo.payload) == (OP_CLOSE, True, b"\x03\xe9going away")
    assert c.state == CLOSED
    feed(s, echo_wire)
    assert s.events_received() == [(CLOSE, (1001, "going away"))]
    assert s.state == CLOSED
    assert s.data_to_send() == b""


def test_simultaneous_close_does_not_echo_twice(feed):
    c, s = client(), server()
    c.send_close(1000)
    s.send_close(1001)
    c_wire, s_wire = c.data_to_send(), s.data_to_send()
    feed(s, c_wire)
    feed(c, s_wire)
    assert s.events_received() == [(CLOSE, (1000, ""))]
    assert c.events_received() == [(CLOSE, (1001, ""))]
    assert s.data_to_send() == b"" and c.data_to_send() == b""
    assert s.state == CLOSED and c.state == CLOSED


def test_close_without_code_reports_1005_and_echoes_empty_close(feed):
    p = server()
    feed(p, masked(OP_CLOSE))
    assert p.events_received() == [(CLOSE, (1005, ""))]
    assert p.close_code == 1005
    assert p.data_to_send() == b"\x88\x00"


def test_send_close_1005_sends_empty_close():
    p = server()
    p.send_close(1005)
    assert p.data_to_send() == b"\x88\x00"


def test_send_close_default_is_1000_without_reason():
    p = server()
    p.send_close()
    assert p.data_to_send() == b"\x88\x02\x03\xe8"


def test_send_close_accepts_reason_as_bytes_and_123_bytes_max():
    p = server()
    p.send_close(1000, b"r" * 123)
    assert p.data_to_send() == b"\x88\x7d\x03\xe8" + b"r" * 123


def test_messages_still_arrive_after_sending_close(feed):
    p = server()
    p.send_close(1000)
    p.data_to_send()
    feed(p, masked(OP_TEXT, b"late") + masked(OP_CLOSE, close_payload(1000)))
    assert p.events_received() == [(TEXT, "late")]
    assert p.events_received() == [(CLOSE, (1000, ""))]
    assert p.data_to_send() == b""
    assert p.state == CLOSED


def test_a_message_then_the_peers_close_in_one_read_lets_the_reply_go_first(feed):
    """The close frame's echo waits until the application took the message
    before it: what it sends in reply precedes our close frame."""
    p = server()
    feed(p, masked(OP_TEXT, b"last words") + masked(OP_CLOSE, close_payload(1000, "bye")))
    assert p.events_received() == [(TEXT, "last words")]
    assert (p.data_to_send(), p.state, p.close_code) == (b"", OPEN, None)
    p.send_text("echo: last words")
    assert p.events_received() == [(CLOSE, (1000, "bye"))]
    assert p.data_to_send() == unmasked(OP_TEXT, b"echo: last words") + \
        unmasked(OP_CLOSE, close_payload(1000, "bye"))
    assert (p.state, p.close_code) == (CLOSED, 1000)


def test_messages_before_a_protocol_error_are_answered_before_the_failure(feed):
    p = server()
    feed(p, masked(OP_TEXT, b"one") + masked(OP_BINARY, b"two") + masked(5) + masked(OP_PING))
    assert p.events_received() == [(TEXT, "one"), (BINARY, b"two")]
    assert (p.data_to_send(), p.state, p.close_code) == (b"", OPEN, None)
    p.send_text("one")
    p.send_binary(b"two")
    events = p.events_received()
    assert [kind for kind, _ in events] == [FAIL] and events[0][1][0] == 1002
    out = p.data_to_send()
    replies = unmasked(OP_TEXT, b"one") + unmasked(OP_BINARY, b"two")
    assert out.startswith(replies) and out[len(replies)] == 0x88
    assert (p.state, p.close_code) == (CLOSED, 1002)


def test_a_close_alone_is_answered_at_once(feed):
    p = server()
    feed(p, masked(OP_CLOSE, close_payload(1000)))
    assert p.data_to_send() == unmasked(OP_CLOSE, close_payload(1000))
    assert p.events_received() == [(CLOSE, (1000, ""))]


# RFC 6455 section 7.4 plus the codes IANA registered since (1012 service
# restart, 1013 try again later, 1014 bad gateway), which servers do send.
VALID_RECEIVED_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013,
                        1014, 3000, 3999, 4000, 4999]
INVALID_RECEIVED_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535]


@pytest.mark.parametrize("code", VALID_RECEIVED_CODES)
def test_valid_close_code_is_reported_and_echoed(feed, code):
    p = server()
    feed(p, masked(OP_CLOSE, close_payload(code, "why")))
    assert p.events_received() == [(CLOSE, (code, "why"))]
    assert p.data_to_send() == b"\x88\x05" + struct.pack("!H", code) + b"why"
    assert p.close_code == code


@pytest.mark.parametrize("code", INVALID_RECEIVED_CODES)
def test_invalid_close_code_fails_with_1002(feed, code):
    p = server()
    feed(p, masked(OP_CLOSE, close_payload(code)))
    assert_failed(p, p.events_received(), 1002)


def test_close_payload_of_one_byte_fails_with_1002(feed):
    p = server()
    feed(p, masked(OP_CLOSE, b"\x03"))
    assert_failed(p, p.events_received(), 1002)


def test_close_reason_invalid_utf8_fails_with_1007(feed):
    p = server()
    feed(p, masked(OP_CLOSE, close_payload(1000, b"bad \xff reason")))
    assert_failed(p, p.events_received(), 1007)


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                                  1012, 1014, 3000, 4999])
def test_send_close_accepts_sendable_codes(code):
    p = server()
    p.send_close(code, "r")
    assert p.data_to_send() == b"\x88\x03" + struct.pack("!H", code) + b"r"


@pytest.mark.parametrize("code", [-1, 0, 999, 1004, 1006, 1015, 2999, 5000, 65535,
                                  66536])
def test_send_close_rejects_unsendable_code_with_value_error(code):
    p = server()
    with pytest.raises(ValueError):
        p.send_close(code)
    assert p.data_to_send() == b""
    assert p.state == OPEN
    p.send_close(1000)  # still possible after the rejected call
    assert p.data_to_send() == b"\x88\x02\x03\xe8"


def test_send_close_rejects_reason_over_123_bytes():
    p = server()
    with pytest.raises(ValueError):
        p.send_close(1000, "r" * 124)
    with pytest.raises(ValueError):
        p.send_close(1000, "\u00e9" * 62)  # 124 UTF-8 bytes
    assert p.data_to_send() == b""
    assert p.state == OPEN


def test_send_close_1005_with_reason_raises_value_error():
    p = server()
    with pytest.raises(ValueError):
        p.send_close(1005, "reason")
    assert p.data_to_send() == b""


@pytest.mark.parametrize("method,args", [
    ("send_text", ("x",)), ("send_binary", (b"x",)), ("send_ping", (b"x",)),
    ("send_pong", (b"x",)), ("send_close", (1000, "")),
])
def test_send_after_send_close_raises_connection_closed(method, args):
    p = server()
    p.send_close(1000)
    p.data_to_send()
    with pytest.raises(ConnectionClosed):
        getattr(p, method)(*args)
    assert p.data_to_send() == b""


def test_send_after_close_echo_raises_connection_closed():
    p = server()
    p.receive_data(masked(OP_CLOSE, close_payload(1000)))
    p.data_to_send()
    with pytest.raises(ConnectionClosed):
        p.send_text("x")


def test_send_after_fail_raises_connection_closed():
    p = server()
    p.receive_data(unmasked(OP_TEXT, b"x"))
    p.data_to_send()
    with pytest.raises(ConnectionClosed):
        p.send_binary(b"x")


def test_receive_eof_without_close_gives_1006():
    p = server()
    p.receive_eof()
    assert p.state == CLOSED
    assert p.close_code == 1006
    p.receive_data(masked(OP_TEXT, b"ignored"))
    assert [e for e in p.events_received() if e[0] in (TEXT, BINARY)] == []


def test_receive_eof_after_close_keeps_peer_code():
    p = server()
    p.receive_data(masked(OP_CLOSE, close_payload(4001, "x")))
    p.receive_eof()
    assert p.state == CLOSED
    assert (p.close_code, p.close_reason) == (4001, "x")


def test_receive_eof_mid_message_gives_1006():
    p = server()
    p.receive_data(masked(OP_TEXT, b"Hel", fin=False))
    p.receive_eof()
    assert p.state == CLOSED
    assert p.close_code == 1006
    assert [e for e in p.events_received() if e[0] == TEXT] == []


# ---------------------------------------------------------------------------
# UTF-8

def test_invalid_utf8_in_text_frame_fails_with_1007(feed):
    p = server()
    feed(p, masked(OP_TEXT, b"abc\xff"))
    assert_failed(p, p.events_received(), 1007)


def test_invalid_utf8_to_client_fails_with_1007(feed):
    p = client()
    feed(p, unmasked(OP_TEXT, b"\xc0\xaf"))
    assert_failed(p, p.events_received(), 1007)


@pytest.mark.parametrize("payload", [b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe0\x80\x80",
                                     b"a\xe2\x82"],
                         ids=["surrogate", "above-10FFFF", "overlong", "truncated"])
def test_invalid_utf8_kinds_fail_with_1007(feed, payload):
    p = server()
    feed(p, masked(OP_TEXT, payload))
    assert_failed(p, p.events_received(), 1007)


def test_invalid_utf8_split_across_fragments_fails_with_1007(feed):
    p = server()
    feed(p, masked(OP_TEXT, b"ok \xe2\x82", fin=False) + masked(OP_CONT, b"\x28", fin=True))
    assert_failed(p, p.events_received(), 1007)


def test_truncated_utf8_at_end_of_fragmented_message_fails_with_1007(feed):
    p = server()
    feed(p, masked(OP_TEXT, b"ok", fin=False) + masked(OP_CONT, b"\xe2\x82", fin=True))
    assert_failed(p, p.events_received(), 1007)


@pytest.mark.parametrize("first", [b"\xff", b"ok\xc0", b"ok\xed\xa0", b"\xf5"],
                         ids=["ff", "c0", "surrogate-prefix", "f5"])
def test_invalid_utf8_in_first_fragment_fails_before_the_final_fragment(feed, first):
    p = server()
    feed(p, masked(OP_TEXT, first, fin=False))
    assert_failed(p, p.events_received(), 1007)


def test_valid_prefix_in_first_fragment_does_not_fail_early(feed):
    p = server()
    feed(p, masked(OP_TEXT, b"ok\xf0\x9d", fin=False))
    assert p.events_received() == []
    assert p.data_to_send() == b""
    assert p.state == OPEN


def test_valid_multibyte_char_split_across_fragments_is_accepted(feed):
    p = server()
    feed(p, masked(OP_TEXT, b"G clef: \xf0\x9d", fin=False)
         + masked(OP_CONT, b"\x84", fin=False)
         + masked(OP_CONT, b"\x9e and euro \xe2", fin=False)
         + masked(OP_CONT, b"\x82\xac", fin=True))
    assert p.events_received() == [(TEXT, "G clef: \U0001d11e and euro \u20ac")]


def test_binary_message_is_not_utf8_checked(feed):
    p = server()
    feed(p, masked(OP_BINARY, b"\xff\xfe\xc0"))
    assert p.events_received() == [(BINARY, b"\xff\xfe\xc0")]


# ---------------------------------------------------------------------------
# framing errors

@pytest.mark.parametrize("rsv", [RSV1, RSV2, RSV3, RSV1 | RSV2 | RSV3],
                         ids=["rsv1", "rsv2", "rsv3", "all"])
def test_reserved_bits_fail_with_1002(feed, rsv):
    p = server()
    feed(p, masked(OP_TEXT, b"x", rsv=rsv))
    assert_failed(p, p.events_received(), 1002)


def test_reserved_bit_on_control_frame_fails_with_1002(feed):
    p = server()
    feed(p, masked(OP_PING, b"x", rsv=RSV1))
    assert_failed(p, p.events_received(), 1002)


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_opcode_fails_with_1002(feed, opcode):
    p = server()
    feed(p, masked(opcode, b"x"))
    assert_failed(p, p.events_received(), 1002)


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
def test_control_frame_with_126_byte_payload_fails_with_1002(feed, opcode):
    p = server()
    payload = close_payload(1000, "r" * 124) if opcode == OP_CLOSE else b"p" * 126
    assert len(payload) == 126
    feed(p, masked(opcode, payload))
    assert_failed(p, p.events_received(), 1002)


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
def test_fragmented_control_frame_fails_with_1002(feed, opcode):
    p = server()
    feed(p, masked(opcode, close_payload(1000) if opcode == OP_CLOSE else b"x", fin=False))
    assert_failed(p, p.events_received(), 1002)


@pytest.mark.parametrize("fin", [True, False])
def test_continuation_without_start_fails_with_1002(feed, fin):
    p = server()
    feed(p, masked(OP_CONT, b"x", fin=fin))
    assert_failed(p, p.events_received(), 1002)


@pytest.mark.parametrize("second", [OP_TEXT, OP_BINARY])
def test_new_data_frame_inside_fragmented_message_fails_with_1002(feed, second):
    p = server()
    feed(p, masked(OP_TEXT, b"a", fin=False) + masked(second, b"b", fin=True))
    assert_failed(p, p.events_received(), 1002)


@pytest.mark.parametrize("n,form", [(5, 16), (125, 16), (5, 64), (200, 64), (65535, 64)],
                         ids=["5-in-16bit", "125-in-16bit", "5-in-64bit", "200-in-64bit",
                              "65535-in-64bit"])
def test_non_minimal_length_encoding_fails_with_1002(feed, n, form):
    p = server()
    feed(p, masked(OP_BINARY, b"z" * n, length_form=form))
    assert_failed(p, p.events_received(), 1002)


def test_64_bit_length_with_most_significant_bit_set_fails_with_1002(feed):
    p = server(max_message_size=0)
    frame = bytes([0x82, 0x80 | 127]) + struct.pack("!Q", (1 << 63) + 5) + MASK + b"zzzzz"
    feed(p, frame)
    assert_failed(p, p.events_received(), 1002)


# ---------------------------------------------------------------------------
# max_message_size

def test_message_at_max_message_size_is_accepted(feed):
    p = server(max_message_size=1000)
    feed(p, masked(OP_BINARY, b"m" * 1000))
    assert p.events_received() == [(BINARY, b"m" * 1000)]


def test_message_over_max_message_size_fails_with_1009(feed):
    p = server(max_message_size=1000)
    feed(p, masked(OP_BINARY, b"m" * 1001))
    assert_failed(p, p.events_received(), 1009)


def test_text_message_over_max_message_size_fails_with_1009(feed):
    p = client(max_message_size=10)
    feed(p, unmasked(OP_TEXT, b"abcdefghijk"))
    assert_failed(p, p.events_received(), 1009)


def test_fragmented_message_at_max_message_size_is_accepted(feed):
    p = server(max_message_size=1000)
    feed(p, masked(OP_TEXT, b"a" * 500, fin=False) + masked(OP_CONT, b"b" * 500))
    assert p.events_received() == [(TEXT, "a" * 500 + "b" * 500)]


def test_fragmented_message_over_max_message_size_fails_with_1009(feed):
    p = server(max_message_size=1000)
    feed(p, masked(OP_TEXT, b"a" * 600, fin=False) + masked(OP_PING, b"p")
         + masked(OP_CONT, b"b" * 401))
    assert_failed(p, p.events_received(), 1009, before=[(PING, b"p")])


def test_default_max_message_size_accepts_1_mib_and_fails_1_mib_plus_one():
    p = server()
    p.receive_data(masked(OP_BINARY, b"\x01" * MiB))
    assert p.events_received() == [(BINARY, b"\x01" * MiB)]
    p = server()
    p.receive_data(masked(OP_BINARY, b"\x01" * (MiB + 1)))
    assert_failed(p, p.events_received(), 1009)


def test_max_message_size_zero_means_no_limit():
    p = server(max_message_size=0)
    data = binary_of_size(2 * MiB + 3)
    p.receive_data(masked(OP_BINARY, data))
    assert p.events_received() == [(BINARY, data)]


def test_oversize_frame_fails_with_1009_before_its_payload_arrives():
    # A header announcing 100 MiB against a 1 KiB limit must not make the
    # engine wait for (or buffer) the payload.
    p = server(max_message_size=1024)
    header = bytes([0x82, 0x80 | 127]) + struct.pack("!Q", 100 * MiB) + MASK
    p.receive_data(header + b"\x00" * 4096)
    assert_failed(p, p.events_received(), 1009)


# ---------------------------------------------------------------------------
# encode_frame and utf8_valid

def test_encode_frame_text_hello_is_the_rfc_vector():
    assert _core.encode_frame(OP_TEXT, "Hello") == vectors.TEXT_HELLO_UNMASKED
    assert _core.encode_frame(OP_TEXT, b"Hello") == vectors.TEXT_HELLO_UNMASKED


def test_encode_frame_ping_and_binary_vectors():
    assert _core.encode_frame(OP_PING, b"Hello") == vectors.PING_HELLO_UNMASKED
    d256, d64k = binary_of_size(256), binary_of_size(65536)
    assert _core.encode_frame(OP_BINARY, d256) == vectors.BINARY_256_HEADER + d256
    assert _core.encode_frame(OP_BINARY, memoryview(d64k)) == vectors.BINARY_64K_HEADER + d64k


def test_encode_frame_encodes_str_as_utf8():
    assert _core.encode_frame(OP_TEXT, "\u00e9\u20ac") == b"\x81\x05\xc3\xa9\xe2\x82\xac"


def test_encode_frame_masked():
    out = _core.encode_frame(OP_PONG, b"Hello", mask=True)
    f = only_frame(out)
    assert (f.fin, f.rsv, f.opcode, f.masked, f.payload) == (True, 0, OP_PONG, True, b"Hello")
    assert out[:2] == b"\x8a\x85"


def test_encoded_frame_is_accepted_by_a_client_protocol():
    p = client()
    p.receive_data(_core.encode_frame(OP_TEXT, "broadcast")
                   + _core.encode_frame(OP_BINARY, b"\x00"))
    assert p.events_received() == [(TEXT, "broadcast"), (BINARY, b"\x00")]


UTF8_VALID = [b"", b"ascii", "\u00e9".encode(), "\u20ac".encode(), "\U0001d11e".encode(),
              b"\xf4\x8f\xbf\xbf", b"\xed\x9f\xbf", b"\xee\x80\x80", b"\x00", b"\x7f",
              b"\xc2\x80", b"\xdf\xbf", b"\xe0\xa0\x80", b"\xef\xbf\xbf", b"\xf0\x90\x80\x80"]
UTF8_INVALID = [b"\x80", b"\xbf", b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xe0\x9f\xbf",
                b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf0\x8f\xbf\xbf", b"\xf4\x90\x80\x80",
                b"\xf5\x80\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xfe", b"\xff", b"\xe2\x82",
                b"a\xe2\x82", b"\xc3", b"\xc3\x28", b"\xe2\x28\xa1", b"ok\xf0\x9d\x84"]


@pytest.mark.parametrize("data", UTF8_VALID, ids=lambda d: d.hex() or "empty")
def test_utf8_valid_accepts_valid_utf8(data):
    assert _core.utf8_valid(data) is True


@pytest.mark.parametrize("data", UTF8_INVALID, ids=lambda d: d.hex())
def test_utf8_valid_rejects_invalid_utf8(data):
    assert _core.utf8_valid(data) is False


def test_utf8_valid_agrees_with_python_decoder_on_random_input():
    import random
    rng = random.Random(1007)
    pieces = [b"a", b"\x80", b"\xc3", b"\xa9", b"\xe2", b"\x82", b"\xac", b"\xed", b"\xa0",
              b"\xf0", b"\x9d", b"\x84", b"\x9e", b"\xf4", b"\x90", b"\xbf", b"\xc0", b"\xff"]
    for _ in range(5000):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randrange(1, 8)))
        try:
            data.decode("utf-8")
            expected = True
        except UnicodeDecodeError:
            expected = False
        assert _core.utf8_valid(data) is expected, data


# A frame header that arrives without any of its payload is checked at once:
# the connection does not wait for payload that may never come.

def header_only(opcode, length, rsv=0):
    frame = masked(opcode, b"x" * length, rsv=rsv)
    return frame[:len(frame) - length]


def test_header_announcing_an_oversize_message_fails_with_1009_before_its_payload(feed):
    p = server(max_message_size=1000)
    feed(p, header_only(OP_BINARY, 1001))
    assert_failed(p, p.events_received(), 1009)


def test_header_with_reserved_bits_fails_with_1002_before_its_payload(feed):
    p = server()
    feed(p, header_only(OP_TEXT, 13, rsv=RSV1))
    assert_failed(p, p.events_received(), 1002)


def test_valid_header_alone_waits_for_its_payload(feed):
    p = server()
    frame = masked(OP_TEXT, b"patience")
    feed(p, frame[:-8])
    assert p.events_received() == [] and p.data_to_send() == b""
    feed(p, frame[-8:])
    assert p.events_received() == [(TEXT, "patience")]


def _rss_kib():
    with open("/proc/self/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0])


@pytest.mark.rss
def test_sending_one_large_message_does_not_pin_its_memory():
    # Once written out, an 8 MiB frame's buffer is released: 20 connections
    # that each sent one keep nothing like 20 x 8 MiB.
    before = _rss_kib()
    protocols = []
    for _ in range(20):
        p = server(max_message_size=0)
        p.send_binary(b"x" * (8 << 20))
        assert len(p.data_to_send()) == (8 << 20) + 10
        assert p.output_size == 0
        protocols.append(p)
    assert _rss_kib() - before < 16 * 1024


@pytest.mark.parametrize("size", [1, 15, 16, 33, 64, 100, 1000, 70001])
@pytest.mark.parametrize("split", [1, 7, 13, 4096])
def test_masked_payloads_unmask_exactly_at_any_size_and_split(size, split):
    # Unmasking goes 32, 16 and 8 bytes at a time: every length, and chunks
    # that start anywhere in the key cycle, must give the payload back.
    payload = bytes((i * 7 + 3) & 0xFF for i in range(size))
    text = ("a\u00e9" * size)[:size]
    proto = server(max_message_size=0)
    data = (build_frame(OP_BINARY, payload, mask=b"\x01\x82\x43\xc4")
            + build_frame(OP_TEXT, "x" * size, mask=b"\x9a\x00\xff\x10")
            + build_frame(OP_TEXT, text, mask=b"\x11\x22\x33\x44"))
    for i in range(0, len(data), split):
        proto.receive_data(data[i:i + split])
    assert proto.events_received() == [(_core.BINARY, payload), (_core.TEXT, "x" * size),
                                       (_core.TEXT, text)]
