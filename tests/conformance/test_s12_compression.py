"""Section 12 -- permessage-deflate, compressed messages with the default
offer ("permessage-deflate; client_max_window_bits").

Each case sends COUNT compressed messages of one size, 16 B to 128 KiB as in
the catalog, one at a time, each echoed before the next; cases x.11 to x.18
cut the compressed payload into frames (RSV1 on the first only) of a given
size.  The catalog sends 1000 messages a case; COUNT keeps the section to a
few seconds.  Messages of one case share their vocabulary, so the
compressors' contexts carry over from message to message.

12.1 text, compressible    12.2 binary, compressible
12.3 text, random letters  12.4 binary, random bytes (incompressible)
12.5 text, multi-byte UTF-8

Every echo is checked as deflate.Session.read_echo says: one frame, RSV1,
inflated with the window the server agreed to, equal to what was sent.
"""
from __future__ import annotations

import random
import zlib

import pytest

from tests.conformance.checks import close_normally, expect_failure
from tests.conformance.deflate import RSV1, Offer, open_session
from tests.conformance.rawclient import OP_BINARY, OP_CONT, OP_PING, OP_TEXT, Client, frame
from tests.wire import upgrade_request

COUNT = 10
#: (payload size, fragment size of the compressed payload; 0: one frame).
CASES = [(16, 0), (64, 0), (256, 0), (1024, 0), (4096, 0), (8192, 0), (16384, 0),
         (32768, 0), (65536, 0), (131072, 0),
         (8192, 256), (16384, 256), (32768, 256), (65536, 256), (131072, 256),
         (131072, 1024), (131072, 4096), (131072, 32768)]
WORDS = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit",
         "sed", "do", "eiusmod", "tempor", "incididunt", "ut", "labore", "et", "dolore",
         "magna", "aliqua"]
UNICODE_WORDS = ("κόσμε", "日本語", "Grüße", "😀", "ascii", "🇫🇷", "ÿ")


def payload(kind: str, size: int, rng: random.Random) -> bytes:
    if kind == "text":
        data = " ".join(rng.choice(WORDS) for _ in range(size // 3 + 1)).encode()
    elif kind == "binary":
        data = bytes(rng.choice(b"\x00\x01\x02\xfe\xff") for _ in range(size // 8 + 1)) * 8
    elif kind == "letters":
        data = bytes(rng.randrange(97, 123) for _ in range(size))
    elif kind == "random":
        data = rng.randbytes(size)
    else:  # unicode: whole characters only, so the cut stays valid UTF-8
        text, n = [], 0
        while n < size:
            word = rng.choice(UNICODE_WORDS) + " "
            text.append(word)
            n += len(word.encode())
        return "".join(text).encode()[:size].decode("utf-8", "ignore").encode()
    return data[:size]


SECTIONS = {1: ("text", OP_TEXT), 2: ("binary", OP_BINARY), 3: ("letters", OP_TEXT),
            4: ("random", OP_BINARY), 5: ("unicode", OP_TEXT)}


@pytest.mark.parametrize("section, case", [
    pytest.param(s, c, id=f"12.{s}.{c}") for s in sorted(SECTIONS)
    for c in range(1, len(CASES) + 1)])
def test_12(echo, section: int, case: int) -> None:
    kind, opcode = SECTIONS[section]
    size, fragment = CASES[case - 1]
    rng = random.Random(f"12.{section}.{case}")
    offers = [Offer()]
    with Client.to(echo) as c:
        session = open_session(c, offers)
        for _ in range(COUNT):
            data = payload(kind, size, rng)
            c.send(session.message_frames(opcode, data, fragment))
            session.read_echo(c, opcode, data)
        close_normally(c)


# -- pyws extras: compressed input that must fail, and edge cases that must not.

def _session(c: Client):
    return open_session(c, [Offer()])


def test_extra_rsv1_on_continuation_frame_fails_with_1002(echo) -> None:
    with Client.to(echo) as c:
        session = _session(c)
        body = session.compress(b"Hello, world")
        c.send(frame(OP_TEXT, body[:4], fin=False, rsv=RSV1) +
               frame(OP_CONT, body[4:], rsv=RSV1))
        expect_failure(c, 1002)


@pytest.mark.parametrize("wire, code", [
    pytest.param(frame(OP_PING, b"x", rsv=RSV1), 1002, id="rsv1_on_a_ping"),
    pytest.param(frame(OP_TEXT, b"Hello", rsv=2), 1002, id="rsv2_even_with_deflate"),
    # BTYPE 11 is reserved: no valid DEFLATE stream starts with 0xff.
    pytest.param(frame(OP_BINARY, b"\xff\xff\xff\xff", rsv=RSV1), 1007,
                 id="invalid_deflate_data"),
    # What follows a final block is read as a new DEFLATE stream (RFC 7692
    # section 7.2.3.4's example has one byte of it); this one is invalid.
    pytest.param(frame(OP_TEXT, bytes.fromhex("f348cdc9c90700") + b"\xff", rsv=RSV1), 1007,
                 id="invalid_stream_after_a_final_block"),
])
def test_extra_broken_compressed_frames_fail_the_connection(echo, wire: bytes,
                                                            code: int) -> None:
    with Client.to(echo) as c:
        _session(c)
        c.send(wire)
        expect_failure(c, code)


def test_extra_compressed_invalid_utf8_fails_with_1007(echo) -> None:
    with Client.to(echo) as c:
        session = _session(c)
        c.send(frame(OP_TEXT, session.compress(b"valid, then \xff\xfe"), rsv=RSV1))
        expect_failure(c, 1007)


def test_extra_invalid_utf8_fails_before_a_large_compressed_message_ends(echo) -> None:
    """Fail-fast applies to the decompressed text: the first frame of a
    fragmented message already holds the invalid byte."""
    with Client.to(echo) as c:
        session = _session(c)
        body = session.compress(b"\xc0\xaf" + b"a" * 200000)
        c.send(frame(OP_TEXT, body[:len(body) // 2], fin=False, rsv=RSV1))
        expect_failure(c, 1007)


def test_extra_decompression_bomb_fails_with_1009(echo_default_limit) -> None:
    """64 MiB of zeros compress to about 64 KiB: the 1 MiB limit applies to
    the decompressed size, while decompressing."""
    zeros = bytes(1 << 20)
    with Client.to(echo_default_limit) as c:
        session = _session(c)
        comp = zlib.compressobj(wbits=-session.client_bits)
        body = b"".join(comp.compress(zeros) for _ in range(64))
        body += comp.flush(zlib.Z_SYNC_FLUSH)[:-4]
        assert len(body) < 100000
        c.try_send(frame(OP_BINARY, body, rsv=RSV1))
        expect_failure(c, 1009)


def test_extra_message_of_exactly_the_limit_once_decompressed_is_echoed(
        echo_default_limit) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    with Client.to(echo_default_limit) as c:
        session = _session(c)
        c.send(session.message_frames(OP_BINARY, data))
        session.read_echo(c, OP_BINARY, data, timeout=10)
        c.send(session.message_frames(OP_BINARY, data + b"!"))
        expect_failure(c, 1009)


def test_extra_final_block_and_uncompressed_messages_between_compressed_ones(echo) -> None:
    """RFC 7692 section 7.2.3.4: a message whose DEFLATE data has BFINAL set
    (the receiver starts afresh after it); a message with RSV1 clear is
    not compressed; an empty compressed message is one 0x00 byte."""
    with Client.to(echo) as c:
        session = open_session(c, [Offer(accept_no_context_takeover=True)])
        c.send(frame(OP_TEXT, bytes.fromhex("f348cdc9c90700"), rsv=RSV1))
        session.read_echo(c, OP_TEXT, b"Hello")
        c.send(frame(OP_TEXT, bytes.fromhex("f348cdc9c9070000"), rsv=RSV1))
        session.read_echo(c, OP_TEXT, b"Hello")
        c.send(frame(OP_TEXT, b"plain", rsv=0))
        session.read_echo(c, OP_TEXT, b"plain")
        c.send(frame(OP_TEXT, b"\x00", rsv=RSV1))
        session.read_echo(c, OP_TEXT, b"")
        c.send(session.message_frames(OP_TEXT, b"Hello again"))
        session.read_echo(c, OP_TEXT, b"Hello again")
        close_normally(c)


def test_extra_malformed_extensions_header_is_refused_with_400(echo) -> None:
    with Client.to(echo) as c:
        req, _ = upgrade_request(f"127.0.0.1:{echo.port}", "/ws",
                                 extra=(("Sec-WebSocket-Extensions", "permessage-deflate; ="),))
        c.send(req)
        resp = c.read_http_response()
        assert resp.status == 400
        assert b"Sec-WebSocket-Extensions" in resp.body


def test_extra_unknown_extensions_and_invalid_offers_are_declined(echo) -> None:
    """Offers pyws cannot accept (an unknown parameter, a repeated one, a
    window out of range) are skipped; an unknown extension is ignored; the
    first valid offer wins."""
    with Client.to(echo) as c:
        resp = c.handshake("/ws", [("Sec-WebSocket-Extensions",
                                    "x-webkit-deflate-frame, permessage-deflate; foo=1, "
                                    "permessage-deflate; server_max_window_bits=16, "
                                    "permessage-deflate; client_no_context_takeover; "
                                    "client_no_context_takeover, "
                                    "permessage-deflate; server_max_window_bits=\"10\"")])
        assert resp.header("Sec-WebSocket-Extensions") == (
            "permessage-deflate; server_max_window_bits=10")
    with Client.to(echo) as c:
        resp = c.handshake("/ws", [("Sec-WebSocket-Extensions",
                                    "permessage-deflate; server_max_window_bits=08")])
        assert resp.header("Sec-WebSocket-Extensions") is None
