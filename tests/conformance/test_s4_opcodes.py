"""Section 4 -- reserved opcodes: non-control 3-7 (4.1.x) and control
11-15 (4.2.x) fail the connection with 1002 (RFC 6455 5.2), with or without
a payload, and the ping sent after them gets no pong.

As in section 3: when a valid text message shares the write with the
offending frame, its echo may or may not come before the close frame; when
the stream is written byte by byte (4.1.5, 4.2.5) the test waits for the
echo before writing the reserved opcode, so the echo is required.
"""
from __future__ import annotations

from tests.conformance.checks import OP_PING, OP_TEXT, expect_failure, expect_text
from tests.conformance.rawclient import frame

HELLO = b"Hello, world!"
RESERVED_PAYLOAD = b"reserved opcode payload"


def _alone(ws, opcode, payload):
    ws.send(frame(opcode, payload))
    expect_failure(ws, 1002)


def _after_text_one_write(ws, opcode, payload):
    ws.send(frame(OP_TEXT, HELLO) + frame(opcode, payload) + frame(OP_PING))
    expect_failure(ws, 1002, first=[(OP_TEXT, HELLO)])


def _after_text_bytewise(ws, opcode, payload):
    ws.send_bytewise(frame(OP_TEXT, HELLO))
    expect_text(ws, HELLO)
    ws.try_send(frame(opcode, payload), size=1)
    ws.try_send(frame(OP_PING), size=1)
    expect_failure(ws, 1002)


def test_case_4_1_1_opcode_3_fails_with_1002(ws):
    _alone(ws, 3, b"")


def test_case_4_1_2_opcode_4_with_payload_fails_with_1002(ws):
    _alone(ws, 4, RESERVED_PAYLOAD)


def test_case_4_1_3_text_then_opcode_5_then_ping_fails_with_1002_no_pong(ws):
    _after_text_one_write(ws, 5, b"")


def test_case_4_1_4_text_then_opcode_6_with_payload_then_ping_fails_with_1002(ws):
    _after_text_one_write(ws, 6, HELLO)


def test_case_4_1_5_bytewise_text_then_opcode_7_with_payload_then_ping_fails(ws):
    _after_text_bytewise(ws, 7, HELLO)


def test_case_4_2_1_opcode_11_fails_with_1002(ws):
    _alone(ws, 11, b"")


def test_case_4_2_2_opcode_12_with_payload_fails_with_1002(ws):
    _alone(ws, 12, RESERVED_PAYLOAD)


def test_case_4_2_3_text_then_opcode_13_then_ping_fails_with_1002_no_pong(ws):
    _after_text_one_write(ws, 13, b"")


def test_case_4_2_4_text_then_opcode_14_with_payload_then_ping_fails_with_1002(ws):
    _after_text_one_write(ws, 14, HELLO)


def test_case_4_2_5_bytewise_text_then_opcode_15_with_payload_then_ping_fails(ws):
    _after_text_bytewise(ws, 15, HELLO)
