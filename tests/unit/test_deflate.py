"""permessage-deflate (RFC 7692) in the C engine: negotiation of the four
parameters, the specification's examples byte for byte, and the limits."""
from __future__ import annotations

import os
import zlib

import pytest

from pyws import PerMessageDeflate, _core
from pyws.exceptions import HandshakeError

EXT = "Sec-WebSocket-Extensions"
DEFAULTS = (False, False, 15, 15)
TAIL = b"\x00\x00\xff\xff"


def negotiate(*offers: str, settings=DEFAULTS):
    return _core.negotiate_deflate([(EXT, offer) for offer in offers], settings)


def pair(params=DEFAULTS, max_message_size=1 << 20):
    """A server and a client engine that agreed on ``params``."""
    return (_core.Protocol(server=True, deflate=params, max_message_size=max_message_size),
            _core.Protocol(server=False, deflate=params, max_message_size=max_message_size))


def frames_of(data: bytes):
    """(first byte, payload) of each unmasked frame in ``data``."""
    out, i = [], 0
    while i < len(data):
        b0, n = data[i], data[i + 1] & 0x7F
        i += 2
        if n == 126:
            n, i = int.from_bytes(data[i:i + 2], "big"), i + 2
        elif n == 127:
            n, i = int.from_bytes(data[i:i + 8], "big"), i + 8
        out.append((b0, data[i:i + n]))
        i += n
    return out


def masked(b0: int, payload: bytes, key: bytes = b"\x01\x02\x03\x04") -> bytes:
    assert len(payload) <= 125
    return bytes((b0, 0x80 | len(payload))) + key + bytes(
        x ^ key[i % 4] for i, x in enumerate(payload))


# -- negotiation, server side (RFC 7692 section 7.1) --------------------------------

@pytest.mark.parametrize("offer, answer, params", [
    ("permessage-deflate", "permessage-deflate", (False, False, 15, 15)),
    ("permessage-deflate; client_max_window_bits", "permessage-deflate",
     (False, False, 15, 15)),
    ("permessage-deflate; client_max_window_bits=10",
     "permessage-deflate; client_max_window_bits=10", (False, False, 15, 10)),
    ("permessage-deflate; server_max_window_bits=9",
     "permessage-deflate; server_max_window_bits=9", (False, False, 9, 15)),
    ("permessage-deflate; server_no_context_takeover",
     "permessage-deflate; server_no_context_takeover", (True, False, 15, 15)),
    ("permessage-deflate; client_no_context_takeover",
     "permessage-deflate; client_no_context_takeover", (False, True, 15, 15)),
    ("Permessage-Deflate ;\tServer_Max_Window_Bits = \"12\"",
     "permessage-deflate; server_max_window_bits=12", (False, False, 12, 15)),
])
def test_server_accepts_each_parameter(offer, answer, params):
    assert negotiate(offer) == (answer, params)


def test_server_settings_limit_windows_and_ask_for_no_context_takeover():
    settings = (True, True, 10, 11)
    # The client's window is limited only if it said it supports that.
    assert negotiate("permessage-deflate", settings=settings) == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=10", (True, True, 10, 15))
    assert negotiate("permessage-deflate; client_max_window_bits", settings=settings)[1] == (
        True, True, 10, 11)
    # A smaller window the client asks for wins over the server's setting.
    assert negotiate("permessage-deflate; server_max_window_bits=9; client_max_window_bits=8",
                     settings=settings)[1] == (True, True, 9, 8)


@pytest.mark.parametrize("bad", [
    "permessage-deflate; foo",                                  # unknown parameter
    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    "permessage-deflate; server_no_context_takeover=1",        # takes no value
    "permessage-deflate; server_max_window_bits",              # needs a value
    "permessage-deflate; server_max_window_bits=7",
    "permessage-deflate; server_max_window_bits=16",
    "permessage-deflate; server_max_window_bits=08",           # leading zero
    "permessage-deflate; client_max_window_bits=abc",
    "permessage-deflate; client_max_window_bits=\"1 5\"",      # not a token once unquoted
])
def test_server_declines_an_invalid_offer_and_takes_the_next(bad):
    assert negotiate(bad) is None
    assert negotiate(f"{bad}, permessage-deflate; client_no_context_takeover") == (
        "permessage-deflate; client_no_context_takeover", (False, True, 15, 15))
    # Offers may come in separate header fields, too.
    assert negotiate(bad, "permessage-deflate")[0] == "permessage-deflate"


def test_server_ignores_other_extensions_and_empty_elements():
    assert negotiate("x-webkit-deflate-frame; max_window_bits=10, , foo") is None
    assert negotiate(", x-foo;a=\"b\", permessage-deflate,")[0] == "permessage-deflate"


@pytest.mark.parametrize("malformed", [
    "permessage-deflate; =1", "permessage-deflate;", "permessage deflate",
    "permessage-deflate; a=\"unterminated", "permessage-deflate; a=", "@",
    "permessage-deflate, x-foo; ; a",
])
def test_server_refuses_a_malformed_header_with_400(malformed):
    with pytest.raises(HandshakeError) as info:
        negotiate(malformed)
    assert info.value.status == 400
    assert "Sec-WebSocket-Extensions" in str(info.value)


# -- negotiation, client side ----------------------------------------------------

def response(extensions=()):
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    head = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n")
    head += "".join(f"{EXT}: {value}\r\n" for value in extensions)
    return (head + "\r\n").encode(), key


def test_client_offer_says_what_it_asks_for():
    assert _core.deflate_offer(DEFAULTS) == "permessage-deflate; client_max_window_bits"
    assert _core.deflate_offer((True, True, 9, 10)) == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=9; client_max_window_bits=10")


@pytest.mark.parametrize("answers, settings, agreed", [
    ([], DEFAULTS, None),
    (["permessage-deflate"], DEFAULTS, (False, False, 15, 15)),
    (["permessage-deflate; server_max_window_bits=10; client_max_window_bits=9"],
     DEFAULTS, (False, False, 10, 9)),
    (["permessage-deflate; server_no_context_takeover; client_no_context_takeover"],
     DEFAULTS, (True, True, 15, 15)),
    (["permessage-deflate; server_max_window_bits=9"], (False, True, 10, 12),
     (False, True, 9, 12)),
])
def test_client_accepts_answers_that_fit_its_offer(answers, settings, agreed):
    head, key = response(answers)
    assert _core.check_response(head, key, None, settings)[3] == agreed


@pytest.mark.parametrize("answers, settings, why", [
    (["x-foo"], DEFAULTS, "not offered"),
    (["permessage-deflate", "permessage-deflate"], DEFAULTS, "more than once"),
    (["permessage-deflate; foo"], DEFAULTS, "parameter"),
    (["permessage-deflate; client_max_window_bits"], DEFAULTS, "parameter"),
    (["permessage-deflate; server_max_window_bits=16"], DEFAULTS, "parameter"),
    (["permessage-deflate"], (True, False, 15, 15), "server_no_context_takeover"),
    (["permessage-deflate"], (False, False, 10, 15), "server_max_window_bits"),
    (["permessage-deflate; server_max_window_bits=11"], (False, False, 10, 15),
     "server_max_window_bits"),
    (["permessage-deflate; client_max_window_bits=12"], (False, False, 15, 10),
     "client_max_window_bits"),
])
def test_client_refuses_answers_it_did_not_ask_for(answers, settings, why):
    head, key = response(answers)
    with pytest.raises(HandshakeError, match=why):
        _core.check_response(head, key, None, settings)


def test_client_that_offered_nothing_refuses_any_extension():
    head, key = response(["permessage-deflate"])
    with pytest.raises(HandshakeError, match="not offered"):
        _core.check_response(head, key)


# -- the examples of RFC 7692 section 7.2.3, byte for byte --------------------------

def test_rfc7692_7_2_3_1_a_message_compressed():
    server, client = pair()
    server.send_text("Hello")
    assert server.data_to_send() == bytes.fromhex("c107f248cdc9c90700")
    client.receive_data(bytes.fromhex("c107f248cdc9c90700"))
    assert client.events_received() == [(_core.TEXT, "Hello")]


def test_rfc7692_7_2_3_1_the_same_message_fragmented():
    _, client = pair()
    client.receive_data(bytes.fromhex("4103f248cd" "8004c9c90700"))
    assert client.events_received() == [(_core.TEXT, "Hello")]


def test_rfc7692_7_2_3_2_sharing_the_window_across_messages():
    server, client = pair()
    server.send_text("Hello")
    server.send_text("Hello")
    data = server.data_to_send()
    assert data == bytes.fromhex("c107f248cdc9c90700" "c105f200110000")
    client.receive_data(data)
    assert client.events_received() == [(_core.TEXT, "Hello")] * 2


def test_rfc7692_7_2_3_2_no_context_takeover_compresses_each_message_alone():
    server, client = pair((True, False, 15, 15))
    server.send_text("Hello")
    server.send_text("Hello")
    data = server.data_to_send()
    assert data == bytes.fromhex("c107f248cdc9c90700") * 2
    client.receive_data(data)
    assert client.events_received() == [(_core.TEXT, "Hello")] * 2


@pytest.mark.parametrize("name, wire", [
    ("7.2.3.3 a stored (uncompressed) block", "c10b0005 00faff48656c6c6f00"),
    ("7.2.3.4 a block with BFINAL set", "c108f348cdc9c907 0000"),
    ("7.2.3.4 BFINAL ending the data", "c107f348cdc9c907 00"),
    ("7.2.3.5 two blocks in one message", "c10df248050000 00ffffcac9c90700"),
])
def test_rfc7692_other_encodings_of_hello(name, wire):
    _, client = pair()
    client.receive_data(bytes.fromhex(wire.replace(" ", "")))
    assert client.events_received() == [(_core.TEXT, "Hello")], name


def test_an_empty_message_is_one_zero_byte():
    server, client = pair()
    server.send_text("Hello")
    server.send_binary(b"")
    data = server.data_to_send()
    assert frames_of(data)[1] == (0xc2, b"\x00")
    client.receive_data(data)
    assert client.events_received() == [(_core.TEXT, "Hello"), (_core.BINARY, b"")]


# -- round trips and the agreement's windows -----------------------------------------

MESSAGES = [b"", b"a", b"Hello" * 1000, os.urandom(70000), "κόσμε 😀".encode() * 3000,
            bytes(3 << 20)]


@pytest.mark.parametrize("params", [DEFAULTS, (True, True, 9, 9), (False, True, 12, 8),
                                    (True, False, 8, 15)])
def test_round_trip_both_ways_in_any_split(params):
    server, client = pair(params, max_message_size=0)
    for message in MESSAGES:
        client.send_binary(message)
        data = client.data_to_send()
        # Fed a byte at a time for small messages, in odd chunks for big ones.
        step = 1 if len(data) < 2000 else 4093
        for i in range(0, len(data), step):
            server.receive_data(data[i:i + step])
        assert server.events_received() == [(_core.BINARY, message)]
        server.send_binary(message)
        client.receive_data(server.data_to_send())
        assert client.events_received() == [(_core.BINARY, message)]


def test_the_compressor_stays_inside_the_agreed_window():
    """Python's zlib, inflating with the agreed 9-bit window, rejects any
    back-reference further than 512 bytes."""
    server, _ = pair((False, False, 9, 15))
    block = os.urandom(400)
    message = (block + os.urandom(700)) * 20  # repeats 1100 bytes apart
    server.send_binary(message)
    (b0, payload), = frames_of(server.data_to_send())
    assert b0 == 0xc2
    assert zlib.decompressobj(wbits=-9).decompress(payload + TAIL) == message


def test_a_peer_reaching_past_its_agreed_window_is_decoded_however_its_bytes_arrive():
    """A client that agreed to a 9-bit window but refers 1100 bytes back: the
    message is what it means whether the frame arrives whole or a few bytes
    at a time (zlib alone would reject it only when a read ended between
    the reference and its target)."""
    message = (os.urandom(400) + os.urandom(700)) * 20
    compressor = zlib.compressobj(wbits=-15)
    payload = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert payload.endswith(TAIL)
    payload = payload[:-4]
    key = b"\x0a\x0b\x0c\x0d"
    assert 125 < len(payload) < 65536
    frame = (bytes((0xc2, 0xfe)) + len(payload).to_bytes(2, "big") + key +
             bytes(x ^ key[i % 4] for i, x in enumerate(payload)))
    for step in (len(frame), 1, 4, 7, 1000):
        server, _ = pair((False, False, 15, 9), max_message_size=0)
        for i in range(0, len(frame), step):
            server.receive_data(frame[i:i + step])
        assert server.events_received() == [(_core.BINARY, message)], step


def test_a_window_of_8_bits_means_sending_uncompressed():
    """zlib cannot compress in a 256-byte window; uncompressed messages are
    allowed, and the other direction is still decompressed."""
    server, client = pair((False, False, 8, 15))
    server.send_text("Hello" * 100)
    (b0, payload), = frames_of(server.data_to_send())
    assert (b0, payload) == (0x81, b"Hello" * 100)
    client.send_text("Hello" * 100)
    server.receive_data(client.data_to_send())
    assert server.events_received() == [(_core.TEXT, "Hello" * 100)]
    assert server.deflate and client.deflate


# -- failures -----------------------------------------------------------------------

def fail_code(server, data: bytes):
    server.receive_data(data)
    events = server.events_received()
    assert events and events[-1][0] == _core.FAIL, events
    return events[-1][1][0]


def test_size_limit_applies_once_decompressed():
    server, client = pair(max_message_size=100000)
    client.send_binary(bytes(100000))
    server.receive_data(client.data_to_send())
    assert server.events_received() == [(_core.BINARY, bytes(100000))]
    client.send_binary(bytes(100001))
    data = client.data_to_send()
    assert len(data) < 1000
    assert fail_code(server, data) == 1009
    assert "decompressed" in server.close_reason


def test_a_decompression_bomb_is_stopped_at_the_limit():
    comp = zlib.compressobj(wbits=-15)
    chunk = bytes(1 << 20)
    body = b"".join(comp.compress(chunk) for _ in range(1024))  # 1 GiB of zeros
    body += comp.flush(zlib.Z_SYNC_FLUSH)[:-4]
    server, _ = pair()
    key = b"\x00\x00\x00\x00"
    head = bytes((0xc2, 0x80 | 127)) + len(body).to_bytes(8, "big") + key
    assert fail_code(server, head + body) == 1009


@pytest.mark.parametrize("wire, code", [
    (masked(0xc1, b"\xff\xff\xff"), 1007),                  # invalid DEFLATE data
    (masked(0x41, b"\xf2\x48") + masked(0xc0, b"\xcd"), 1002),  # RSV1 on a continuation
    (masked(0xc9, b""), 1002),                              # RSV1 on a ping
    (masked(0xa1, b"Hello"), 1002),                         # RSV2
    # After a final block, a new stream: this one has a reserved block type.
    (masked(0xc1, bytes.fromhex("f348cdc9c90700") + b"\xff"), 1007),
])
def test_broken_compressed_input_fails_the_connection(wire, code):
    server, _ = pair()
    assert fail_code(server, wire) == code


def test_compressed_invalid_utf8_fails_with_1007():
    server, _ = pair()
    comp = zlib.compressobj(wbits=-15)
    body = comp.compress(b"ok \xed\xa0\x80") + comp.flush(zlib.Z_SYNC_FLUSH)[:-4]
    assert fail_code(server, masked(0xc1, body)) == 1007


def test_rsv1_without_the_extension_fails_with_1002():
    server = _core.Protocol(server=True)
    assert fail_code(server, masked(0xc1, bytes.fromhex("f248cdc9c90700"))) == 1002
    assert not server.deflate


# -- settings -----------------------------------------------------------------------

def test_settings_are_validated():
    with pytest.raises(ValueError, match="8 to 15"):
        PerMessageDeflate(server_max_window_bits=16)
    with pytest.raises(ValueError, match="level"):
        PerMessageDeflate(level=10)
    with pytest.raises(ValueError, match="mem_level"):
        PerMessageDeflate(mem_level=0)
    with pytest.raises(ValueError):
        _core.Protocol(deflate=(False, False, 7, 15))
    with pytest.raises(TypeError):
        _core.Protocol(deflate=(False, False, 15))
    with pytest.raises(ValueError):
        _core.Protocol(deflate=DEFAULTS, deflate_level=11)
    assert PerMessageDeflate().params() == (False, False, 12, 12)
