"""Section 6 -- UTF-8 handling.

6.1: empty fragments; 6.2: valid text split on and inside code points;
6.3: invalid text in one frame and in one-byte frames; 6.4: fail-fast -- the
server must fail the connection (1007) at the first byte that makes the text
invalid, so these tests send only up to that byte and never finish the
message; 6.5 - 6.23: one test per sequence of the UTF-8 stress list (see
utf8_sequences.py), each sent as one text message: valid ones are echoed
exactly, invalid ones fail the connection with 1007.
"""
from __future__ import annotations

from tests.conformance.checks import (
    OP_CONT,
    OP_PING,
    OP_TEXT,
    expect_failure,
    expect_pong,
    message_then_close,
)
from tests.conformance.rawclient import frame
from tests.conformance.utf8_sequences import GROUPS, KOSME

# -- 6.1: zero-length fragments ---------------------------------------------


def test_case_6_1_1_empty_text_message_is_echoed(ws):
    ws.send(frame(OP_TEXT, b""))
    message_then_close(ws, OP_TEXT, b"")


def test_case_6_1_2_three_empty_fragments_echo_an_empty_message(ws):
    ws.send(frame(OP_TEXT, b"", fin=False) + frame(OP_CONT, b"", fin=False)
            + frame(OP_CONT, b""))
    message_then_close(ws, OP_TEXT, b"")


def test_case_6_1_3_empty_first_and_last_fragment_echo_the_middle(ws):
    ws.send(frame(OP_TEXT, b"", fin=False) + frame(OP_CONT, b"middle frame payload", fin=False)
            + frame(OP_CONT, b""))
    message_then_close(ws, OP_TEXT, b"middle frame payload")


# -- 6.2: valid UTF-8, fragmented anywhere ----------------------------------

HELLO_UTF8 = "Hello-\u00b5@\u00df\u00f6\u00e4\u00fc\u00e0\u00e1-UTF-8!!".encode("utf-8")


def _one_byte_frames(payload: bytes) -> bytes:
    """A text message of one frame per payload byte (frames ending inside
    code points), all in one write."""
    n = len(payload)
    return b"".join(frame(OP_TEXT if i == 0 else OP_CONT, payload[i:i + 1], fin=(i == n - 1))
                    for i in range(n))


def test_case_6_2_1_valid_utf8_in_one_frame_is_echoed(ws):
    ws.send(frame(OP_TEXT, HELLO_UTF8))
    message_then_close(ws, OP_TEXT, HELLO_UTF8)


def test_case_6_2_2_valid_utf8_in_two_fragments_split_on_a_code_point(ws):
    first = "Hello-\u00b5@\u00df\u00f6\u00e4".encode("utf-8")
    second = "\u00fc\u00e0\u00e1-UTF-8!!".encode("utf-8")
    assert first + second == HELLO_UTF8
    ws.send(frame(OP_TEXT, first, fin=False) + frame(OP_CONT, second))
    message_then_close(ws, OP_TEXT, HELLO_UTF8)


def test_case_6_2_3_valid_utf8_in_one_byte_frames_is_echoed(ws):
    ws.send(_one_byte_frames(HELLO_UTF8))
    message_then_close(ws, OP_TEXT, HELLO_UTF8)


def test_case_6_2_4_kosme_in_one_byte_frames_is_echoed(ws):
    ws.send(_one_byte_frames(KOSME))
    message_then_close(ws, OP_TEXT, KOSME)


# -- 6.3: invalid UTF-8 ------------------------------------------------------

# Valid "kosme", then a lone surrogate (invalid at its second byte, 0xa0,
# the 13th byte of the message), then valid ASCII.
INVALID_SURROGATE = KOSME + b"\xed\xa0\x80" + b"edited"


def test_case_6_3_1_invalid_utf8_in_one_frame_fails_with_1007(ws):
    ws.send(frame(OP_TEXT, INVALID_SURROGATE))
    expect_failure(ws, 1007)


def test_case_6_3_2_invalid_utf8_in_one_byte_frames_fails_with_1007(ws):
    ws.send(_one_byte_frames(INVALID_SURROGATE))
    expect_failure(ws, 1007)


# -- 6.4: fail fast ----------------------------------------------------------

# "kosme", then U+110000 in the 4-byte pattern (f4 90 80 80: invalid at its
# second byte, 0x90, byte 13 of the message), then "edited".
PART1 = KOSME
PART2 = b"\xf4\x90\x80\x80"
PART3 = b"edited"
MESSAGE = PART1 + PART2 + PART3
BAD = 12  # index of the first byte that makes MESSAGE invalid
assert MESSAGE[BAD] == 0x90

# Seconds with nothing from the server after a prefix that is still valid
# (6.4.3, 6.4.4: inside one frame, where no ping can probe the connection).
QUIET = 0.25


def test_case_6_4_1_fails_fast_on_the_fragment_that_makes_text_invalid(ws):
    """Fragment 1 (valid) is accepted -- a ping after it is answered --;
    fragment 2 (f4 90 80 80) fails the connection with 1007 although the
    message is not finished: fragment 3 is never sent."""
    ws.send(frame(OP_TEXT, PART1, fin=False))
    ws.send(frame(OP_PING, b"still open?"))
    expect_pong(ws, b"still open?")
    ws.send(frame(OP_CONT, PART2, fin=False))
    expect_failure(ws, 1007)


def test_case_6_4_2_fails_fast_on_a_one_byte_fragment_making_text_invalid(ws):
    """Fragment 1 ends with the lead byte f4 (still a valid prefix: a ping is
    answered); fragment 2 is the single byte 0x90 that makes it invalid:
    1007 at once."""
    ws.send(frame(OP_TEXT, MESSAGE[:BAD], fin=False))
    ws.send(frame(OP_PING, b"still open?"))
    expect_pong(ws, b"still open?")
    ws.send(frame(OP_CONT, MESSAGE[BAD:BAD + 1], fin=False))
    expect_failure(ws, 1007)


def test_case_6_4_3_fails_fast_inside_one_frame_written_bytewise(ws):
    """One text frame announcing the whole message; header and part 1
    written byte by byte (no reaction), then part 2 byte by byte: 1007 while
    the frame is still incomplete (part 3 is never sent)."""
    data = frame(OP_TEXT, MESSAGE)
    header_len = len(data) - len(MESSAGE)
    ws.send_bytewise(data[:header_len + len(PART1)])
    ws.expect_silence(QUIET)
    ws.try_send(data[header_len + len(PART1):header_len + len(PART1) + len(PART2)], size=1)
    expect_failure(ws, 1007)


def test_case_6_4_4_fails_fast_inside_one_frame_at_the_invalid_byte(ws):
    """As 6.4.3, but the second part is only the byte 0x90 that makes the
    text invalid."""
    data = frame(OP_TEXT, MESSAGE)
    header_len = len(data) - len(MESSAGE)
    ws.send_bytewise(data[:header_len + BAD])
    ws.expect_silence(QUIET)
    ws.send(data[header_len + BAD:header_len + BAD + 1])
    expect_failure(ws, 1007)


# -- 6.5 - 6.23: the UTF-8 stress sequences ----------------------------------

def _make(group: int, num: int, title: str, valid: bool, payload: bytes):
    def test(ws):
        ws.send(frame(OP_TEXT, payload))
        if valid:
            message_then_close(ws, OP_TEXT, payload)
        else:
            expect_failure(ws, 1007)

    verdict = "echoed" if valid else "fails_with_1007"
    test.__name__ = f"test_case_6_{group}_{num}_{'valid' if valid else 'invalid'}_{verdict}"
    test.__doc__ = (f"6.{group}.{num} ({title}): text payload {payload.hex()} is "
                    + ("valid UTF-8 and is echoed." if valid
                       else "not valid UTF-8: the connection fails with 1007."))
    return test


for _group, _title, _seqs in GROUPS:
    for _num, (_valid, _payload) in enumerate(_seqs, 1):
        _t = _make(_group, _num, _title, _valid, _payload)
        globals()[_t.__name__] = _t
del _t
