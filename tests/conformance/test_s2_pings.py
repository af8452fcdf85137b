"""Section 2 -- pings and pongs: every ping is answered by a pong with the
same payload, control frames over 125 bytes fail the connection, unsolicited
pongs are ignored."""
from __future__ import annotations

from tests.conformance.checks import OP_PING, OP_PONG, close_normally, expect_failure, expect_pong
from tests.conformance.rawclient import frame


def test_case_2_1_ping_without_payload_gets_empty_pong(ws):
    ws.send(frame(OP_PING))
    expect_pong(ws, b"")
    close_normally(ws)


def test_case_2_2_ping_with_small_text_payload_gets_same_pong(ws):
    ws.send(frame(OP_PING, b"Hello, world!"))
    expect_pong(ws, b"Hello, world!")
    close_normally(ws)


def test_case_2_3_ping_with_small_binary_payload_gets_same_pong(ws):
    payload = b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"
    ws.send(frame(OP_PING, payload))
    expect_pong(ws, payload)
    close_normally(ws)


def test_case_2_4_ping_with_125_byte_payload_gets_same_pong(ws):
    payload = b"\xfe" * 125
    ws.send(frame(OP_PING, payload))
    expect_pong(ws, payload)
    close_normally(ws)


def test_case_2_5_ping_with_126_byte_payload_fails_with_1002(ws):
    """Control frames carry at most 125 bytes (RFC 6455 5.5)."""
    ws.send(frame(OP_PING, b"\xfe" * 126))
    expect_failure(ws, 1002)


def test_case_2_6_ping_125_bytes_written_bytewise_gets_same_pong(ws):
    payload = b"\xfe" * 125
    ws.send_bytewise(frame(OP_PING, payload))
    expect_pong(ws, payload)
    close_normally(ws)


def test_case_2_7_unsolicited_empty_pong_is_ignored(ws):
    """Nothing answers the pong: the next frame is the reply to our close."""
    ws.send(frame(OP_PONG))
    close_normally(ws)


def test_case_2_8_unsolicited_pong_with_payload_is_ignored(ws):
    ws.send(frame(OP_PONG, b"unsolicited pong payload"))
    close_normally(ws)


def test_case_2_9_unsolicited_pong_then_ping_gets_only_the_pings_pong(ws):
    ws.send(frame(OP_PONG, b"unsolicited pong payload"))
    ws.send(frame(OP_PING, b"ping payload"))
    expect_pong(ws, b"ping payload")
    close_normally(ws)


def test_case_2_10_ten_pings_get_ten_pongs_in_order(ws):
    payloads = [f"payload-{i}".encode() for i in range(10)]
    for p in payloads:
        ws.send(frame(OP_PING, p))
    for p in payloads:
        expect_pong(ws, p)
    close_normally(ws)


def test_case_2_11_ten_pings_written_bytewise_get_ten_pongs_in_order(ws):
    payloads = [f"payload-{i}".encode() for i in range(10)]
    for p in payloads:
        ws.send_bytewise(frame(OP_PING, p))
    for p in payloads:
        expect_pong(ws, p)
    close_normally(ws)
