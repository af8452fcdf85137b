"""Section 7 -- close handling.

pyws answers a valid close frame with a close frame carrying the same code
(an empty one for an empty one) and then ends the TCP connection; after a
close frame it processes nothing more (7.1.x).  A close payload of one byte,
a control frame over 125 bytes or an invalid code fails the connection with
1002; an invalid UTF-8 reason with 1007.  Valid codes are 1000-1003,
1007-1014 and 3000-4999 (RFC 6455 7.4 and the IANA registry): the catalog's
7.7 list is all accepted, and 1012-1014, registered since, too (extras).
"""
from __future__ import annotations

from tests.conformance.checks import (
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    expect_close_reply,
    expect_failure,
    expect_text,
)
from tests.conformance.rawclient import close_body, frame

HELLO = b"Hello World!"


# -- 7.1: basic close behaviour ----------------------------------------------

def test_case_7_1_1_message_echoed_then_clean_close_1000(ws):
    ws.send(frame(OP_TEXT, HELLO))
    expect_text(ws, HELLO)
    ws.send_close(1000)
    expect_close_reply(ws, 1000)


def test_case_7_1_2_second_close_frame_is_ignored(ws):
    """Close 1000 then an empty close in one write: one reply, 1000."""
    ws.send(frame(OP_CLOSE, close_body(1000)) + frame(OP_CLOSE))
    expect_close_reply(ws, 1000)


def test_case_7_1_3_ping_after_close_gets_no_pong(ws):
    ws.send(frame(OP_CLOSE, close_body(1000)) + frame(OP_PING))
    expect_close_reply(ws, 1000)


def test_case_7_1_4_text_after_close_is_not_echoed(ws):
    ws.send(frame(OP_CLOSE, close_body(1000)) + frame(OP_TEXT, HELLO))
    expect_close_reply(ws, 1000)


def test_case_7_1_5_close_between_two_fragments_ends_the_connection(ws):
    """A close frame inside a fragmented message is legal (control frames may
    be interleaved): clean close with 1000, the message is never echoed."""
    ws.send(frame(OP_TEXT, b"fragment1", fin=False) + frame(OP_CLOSE, close_body(1000))
            + frame(OP_CONT, b"fragment2"))
    expect_close_reply(ws, 1000)


def test_case_7_1_6_large_message_then_message_then_close_then_ping(ws):
    """256 KiB text, a short text, close 1000 and a ping in one go: both
    messages were valid, so both are echoed, in order, before the close 1000
    (the echo of the peer's close waits for the application's replies); then
    the end of TCP, never a pong."""
    big = (b"BAsd7&jh23" * (256 * 1024 // 10 + 1))[:256 * 1024]
    ws.send(frame(OP_TEXT, big) + frame(OP_TEXT, HELLO) + frame(OP_CLOSE, close_body(1000))
            + frame(OP_PING))
    frames = ws.read_frames_until_close()
    data = [(f.opcode, f.fin, f.payload) for f in frames[:-1]]
    assert data == [(OP_TEXT, True, big), (OP_TEXT, True, HELLO)], [repr(f) for f in frames]
    close = frames[-1]
    assert close.close_code == 1000, close
    assert ws.expect_eof() == b""


def test_message_sharing_a_write_with_the_close_frame_is_answered_first(ws):
    """A message and the client's close frame in one TCP segment: the echo
    of the message, then the close reply."""
    ws.send(frame(OP_TEXT, HELLO) + frame(OP_CLOSE, close_body(1000, "bye")))
    frames = ws.read_frames_until_close()
    assert [(f.opcode, f.payload) for f in frames[:-1]] == [(OP_TEXT, HELLO)], frames
    assert frames[-1].close_code == 1000
    assert ws.expect_eof() == b""


# -- 7.3: close frame payload length -----------------------------------------

def test_case_7_3_1_empty_close_is_answered_with_empty_close(ws):
    """No code sent (1005 for the receiver), so the reply carries none."""
    ws.send(frame(OP_CLOSE, b""))
    expect_close_reply(ws, None)


def test_case_7_3_2_close_with_one_byte_payload_fails_with_1002(ws):
    ws.send(frame(OP_CLOSE, b"a"))
    expect_failure(ws, 1002)


def test_case_7_3_3_close_1000_is_answered_with_1000(ws):
    ws.send_close(1000)
    expect_close_reply(ws, 1000)


def test_case_7_3_4_close_1000_with_reason_is_answered_with_1000(ws):
    ws.send_close(1000, "Hello World!")
    expect_close_reply(ws, 1000)


def test_case_7_3_5_close_with_123_byte_reason_is_answered_with_1000(ws):
    ws.send_close(1000, "*" * 123)
    expect_close_reply(ws, 1000)


def test_case_7_3_6_close_with_124_byte_reason_fails_with_1002(ws):
    """126 bytes of close payload: a control frame over 125 bytes."""
    ws.send_close(1000, "*" * 124)
    expect_failure(ws, 1002)


# -- 7.5: close reason must be UTF-8 -----------------------------------------

def test_case_7_5_1_close_with_invalid_utf8_reason_fails_with_1007(ws):
    ws.send_close(1000, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited")
    expect_failure(ws, 1007)


# -- 7.7: valid codes are echoed; 7.9, 7.13: invalid codes fail --------------

VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999]


def _valid(name: str, number: str, code: int):
    def test(ws):
        ws.send_close(code)
        expect_close_reply(ws, code)

    test.__name__ = name
    test.__doc__ = f"{number}: close with valid code {code}: the server echoes {code}."
    return test


def _invalid(name: str, number: str, code: int):
    def test(ws):
        ws.send_close(code)
        expect_failure(ws, 1002)

    test.__name__ = name
    test.__doc__ = f"{number}: close with invalid code {code}: the server fails with 1002."
    return test


for _i, _code in enumerate(VALID_CODES, 1):
    _t = _valid(f"test_case_7_7_{_i}_valid_close_code_{_code}_is_echoed", f"7.7.{_i}", _code)
    globals()[_t.__name__] = _t

for _i, _code in enumerate(INVALID_CODES, 1):
    _t = _invalid(f"test_case_7_9_{_i}_invalid_close_code_{_code}_fails_with_1002",
                  f"7.9.{_i}", _code)
    globals()[_t.__name__] = _t

_t = _invalid("test_case_7_13_1_close_code_5000_fails_with_1002", "7.13.1", 5000)
globals()[_t.__name__] = _t
_t = _invalid("test_case_7_13_2_close_code_65535_fails_with_1002", "7.13.2", 65535)
globals()[_t.__name__] = _t

# pyws extras: codes registered with IANA after the catalog was written are
# valid; 1015 (TLS handshake failure) must never appear on the wire.
for _code in (1012, 1013, 1014):
    _t = _valid(f"test_extra_close_registered_code_{_code}_is_echoed", "extra", _code)
    globals()[_t.__name__] = _t
_t = _invalid("test_extra_close_code_1015_fails_with_1002", "extra", 1015)
globals()[_t.__name__] = _t
del _t
