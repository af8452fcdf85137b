"""Section 3 -- reserved bits: no extension is negotiated, so a frame with
any RSV bit set fails the connection with 1002 (RFC 6455 5.2).

When a valid message precedes the offending frame in the same write (3.2),
the server may fail the connection before its application has echoed that
message -- RFC 6455 does not order the two -- so the echo is allowed, not
required, before the close frame.  Where the frames are written separately
(3.3, 3.4), the test waits for the echo before writing the offending frame,
so the echo is required.  In every case the ping after the offending frame
must not be answered: once failed, the connection processes nothing more.
"""
from __future__ import annotations

from tests.conformance.checks import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_TEXT,
    expect_failure,
    expect_text,
)
from tests.conformance.rawclient import frame

HELLO = b"Hello, world!"


def test_case_3_1_text_with_rsv_1_fails_with_1002(ws):
    ws.send(frame(OP_TEXT, HELLO, rsv=1))
    expect_failure(ws, 1002)


def test_case_3_2_text_then_text_with_rsv_2_then_ping_fails_with_1002_no_pong(ws):
    ws.send(frame(OP_TEXT, HELLO) + frame(OP_TEXT, HELLO, rsv=2) + frame(OP_PING))
    expect_failure(ws, 1002, first=[(OP_TEXT, HELLO)])


def test_case_3_3_framewise_text_echoed_then_rsv_3_fails_with_1002_no_pong(ws):
    ws.send(frame(OP_TEXT, HELLO))
    expect_text(ws, HELLO)
    ws.send(frame(OP_TEXT, HELLO, rsv=3))
    ws.try_send(frame(OP_PING))
    expect_failure(ws, 1002)


def test_case_3_4_bytewise_text_echoed_then_rsv_4_fails_with_1002_no_pong(ws):
    ws.send_bytewise(frame(OP_TEXT, HELLO))
    expect_text(ws, HELLO)
    ws.try_send(frame(OP_TEXT, HELLO, rsv=4), size=1)
    ws.try_send(frame(OP_PING), size=1)
    expect_failure(ws, 1002)


def test_case_3_5_binary_with_rsv_5_fails_with_1002(ws):
    ws.send(frame(OP_BINARY, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff", rsv=5))
    expect_failure(ws, 1002)


def test_case_3_6_ping_with_rsv_6_fails_with_1002_no_pong(ws):
    """The catalog's description says Ping (its code sends a binary frame;
    binary with RSV bits is 3.5 already), so this sends a ping."""
    ws.send(frame(OP_PING, HELLO, rsv=6))
    expect_failure(ws, 1002)


def test_case_3_7_close_with_rsv_7_fails_with_1002(ws):
    """Not a close to echo: the reserved bits make it a protocol error."""
    ws.send(frame(OP_CLOSE, rsv=7))
    expect_failure(ws, 1002)
