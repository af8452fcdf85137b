"""Section 5 -- fragmentation: control frames must not be fragmented,
continuation frames need a message to continue, a new data frame may not
start inside a fragmented message (all 1002); valid fragmented messages are
reassembled and echoed, and pings between fragments are answered at once.

"One write", "frame-wise" (one write per frame) and "bytewise" (one byte per
write) are the catalog's chop variants of the same byte stream.
"""
from __future__ import annotations

from tests.conformance.checks import (
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    close_normally,
    expect_failure,
    expect_pong,
    expect_text,
    message_then_close,
)
from tests.conformance.rawclient import frame

F1, F2 = b"fragment1", b"fragment2"
PING = b"ping payload"


def _write(ws, frames, how):
    """Write the frames in one write, one write per frame, or bytewise.  The
    server may fail the connection before the end: later writes may then
    meet a closed socket, which is not an error here."""
    if how == "one":
        ws.try_send(b"".join(frames))
    elif how == "frame":
        for f in frames:
            if not ws.try_send(f):
                break
    else:
        for f in frames:
            if not ws.try_send(f, size=1):
                break


# 5.1, 5.2: fragmented control frames.

def test_case_5_1_ping_fragmented_into_two_frames_fails_with_1002(ws):
    ws.send(frame(OP_PING, F1, fin=False) + frame(OP_CONT, F2))
    expect_failure(ws, 1002)


def test_case_5_2_pong_fragmented_into_two_frames_fails_with_1002(ws):
    ws.send(frame(OP_PONG, F1, fin=False) + frame(OP_CONT, F2))
    expect_failure(ws, 1002)


# 5.3-5.5: a text message in two fragments.

def _two_fragments(ws, how):
    _write(ws, [frame(OP_TEXT, F1, fin=False), frame(OP_CONT, F2)], how)
    message_then_close(ws, OP_TEXT, F1 + F2)


def test_case_5_3_text_in_two_fragments_one_write_is_echoed(ws):
    _two_fragments(ws, "one")


def test_case_5_4_text_in_two_fragments_framewise_is_echoed(ws):
    _two_fragments(ws, "frame")


def test_case_5_5_text_in_two_fragments_bytewise_is_echoed(ws):
    _two_fragments(ws, "byte")


# 5.6-5.8: a ping between the two fragments: its pong comes first (the
# message is not complete before the last fragment), then the message.

def _ping_between(ws, how):
    _write(ws, [frame(OP_TEXT, F1, fin=False), frame(OP_PING, PING),
                frame(OP_CONT, F2)], how)
    expect_pong(ws, PING)
    message_then_close(ws, OP_TEXT, F1 + F2)


def test_case_5_6_ping_between_two_text_fragments_one_write_pong_then_echo(ws):
    _ping_between(ws, "one")


def test_case_5_7_ping_between_two_text_fragments_framewise_pong_then_echo(ws):
    _ping_between(ws, "frame")


def test_case_5_8_ping_between_two_text_fragments_bytewise_pong_then_echo(ws):
    _ping_between(ws, "byte")


# 5.9-5.11: a final continuation frame with nothing to continue, then a text
# message; 5.12-5.14: the same with a non-final continuation frame.

def _orphan_continuation(ws, fin, how):
    _write(ws, [frame(OP_CONT, b"non-continuation payload", fin=fin),
                frame(OP_TEXT, b"Hello, world!")], how)
    expect_failure(ws, 1002)


def test_case_5_9_final_continuation_without_message_one_write_fails_with_1002(ws):
    _orphan_continuation(ws, True, "one")


def test_case_5_10_final_continuation_without_message_framewise_fails_with_1002(ws):
    _orphan_continuation(ws, True, "frame")


def test_case_5_11_final_continuation_without_message_bytewise_fails_with_1002(ws):
    _orphan_continuation(ws, True, "byte")


def test_case_5_12_nonfinal_continuation_without_message_one_write_fails_1002(ws):
    _orphan_continuation(ws, False, "one")


def test_case_5_13_nonfinal_continuation_without_message_framewise_fails_1002(ws):
    _orphan_continuation(ws, False, "frame")


def test_case_5_14_nonfinal_continuation_without_message_bytewise_fails_1002(ws):
    _orphan_continuation(ws, False, "byte")


def test_case_5_15_message_then_orphan_continuation_fails_with_1002(ws):
    """A complete two-fragment message, then a continuation frame with
    nothing to continue: the message is valid, so its echo comes before the
    close frame, although it shares the write with the error."""
    ws.send(frame(OP_TEXT, F1, fin=False) + frame(OP_CONT, F2)
            + frame(OP_CONT, b"fragment3", fin=False) + frame(OP_TEXT, b"fragment4"))
    expect_failure(ws, 1002, first=[(OP_TEXT, F1 + F2)])


def _repeated(ws, first_fin, how):
    frames = []
    for _ in range(2):
        frames += [frame(OP_CONT, F1, fin=first_fin), frame(OP_TEXT, F2, fin=False),
                   frame(OP_CONT, b"fragment3")]
    _write(ws, frames, how)
    expect_failure(ws, 1002)


def test_case_5_16_twice_nonfinal_orphan_continuation_then_message_fails_1002(ws):
    _repeated(ws, False, "one")


def test_case_5_17_twice_final_orphan_continuation_then_message_fails_1002(ws):
    _repeated(ws, True, "one")


def test_case_5_18_second_fragment_with_text_opcode_fails_with_1002(ws):
    """Every frame after the first of a message must be a continuation."""
    ws.send(frame(OP_TEXT, F1, fin=False) + frame(OP_TEXT, F2))
    expect_failure(ws, 1002)


# 5.19, 5.20: five fragments with two pings in between.  The first pong must
# arrive while the message is still incomplete: the test waits for it before
# sending the rest (where the catalog waits one second).

FRAGS = [b"fragment1", b"fragment2", b"fragment3", b"fragment4", b"fragment5"]


def _five_fragments_two_pings(ws, how):
    _write(ws, [frame(OP_TEXT, FRAGS[0], fin=False), frame(OP_CONT, FRAGS[1], fin=False),
                frame(OP_PING, b"pongme 1!")], how)
    expect_pong(ws, b"pongme 1!")
    _write(ws, [frame(OP_CONT, FRAGS[2], fin=False), frame(OP_CONT, FRAGS[3], fin=False),
                frame(OP_PING, b"pongme 2!"), frame(OP_CONT, FRAGS[4])], how)
    expect_pong(ws, b"pongme 2!")
    expect_text(ws, b"".join(FRAGS))
    close_normally(ws)


def test_case_5_19_five_fragments_with_two_pings_pongs_come_at_once(ws):
    _five_fragments_two_pings(ws, "one")


def test_case_5_20_five_fragments_with_two_pings_framewise(ws):
    _five_fragments_two_pings(ws, "frame")
