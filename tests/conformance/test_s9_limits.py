"""Section 9 -- limits and performance, at the catalog's sizes (the whole
section takes a few seconds, so nothing needed scaling down; the constants
below are where to scale it):

9.1.x / 9.2.x  one text / binary message of 64 KiB .. 16 MiB
9.3.x / 9.4.x  a 4 MiB text / binary message in fragments of 64 B .. 4 MiB
9.5.x / 9.6.x  a 1 MiB text / binary frame written in chops of 64 .. 2048 B
9.7.x / 9.8.x  COUNT text / binary messages of 0 .. 4096 B, one at a time,
               each echoed before the next is sent

The server runs with --max-message-size BIG_MAX (16 MiB, the largest
message here).  Every echo is checked byte for byte (the catalog checks
only lengths), then the connection is closed cleanly.  The extra_limit_* tests
(pyws extras) check the limit itself: a message over it fails the
connection with 1009, on a server with echo.py's default 1 MiB limit and on
the BIG_MAX one.
"""
from __future__ import annotations

import functools

from tests.conformance.checks import (
    OP_BINARY,
    OP_CONT,
    OP_TEXT,
    close_normally,
    expect_echo,
    expect_failure,
    message_then_close,
)
from tests.conformance.conftest import BIG_MAX, DEFAULT_MAX
from tests.conformance.rawclient import Client, fragmented, frame

KiB, MiB = 1 << 10, 1 << 20
TEXT_PATTERN = b"BAsd7&jh23"
BINARY_PATTERN = b"\x00\xfe\x23\xfa\xf0"

#: Seconds for one big message to go and come back.
BIG_TIMEOUT = 30.0
#: Messages per 9.7.x / 9.8.x case (the catalog sends 1000).
COUNT = 1000

WRITE_CHUNK = 256 * KiB


@functools.cache
def payload_of(pattern: bytes, length: int) -> bytes:
    return (pattern * (length // len(pattern) + 1))[:length]


def _big_echo(ws: Client, opcode: int, payload: bytes, data: bytes, chop=None) -> None:
    """Write ``data`` (in chops of ``chop`` bytes, else in large writes), then
    expect ``payload`` echoed and close cleanly."""
    ws.send_chopped(data, chop or WRITE_CHUNK)
    expect_echo(ws, opcode, payload, timeout=BIG_TIMEOUT)
    close_normally(ws)


# -- 9.1, 9.2: one big message -------------------------------------------------

SIZES = [64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB, 8 * MiB, 16 * MiB]


def _single(section: int, num: int, size: int):
    opcode, pattern, kind = ((OP_TEXT, TEXT_PATTERN, "text") if section == 1
                             else (OP_BINARY, BINARY_PATTERN, "binary"))

    def test(ws):
        payload = payload_of(pattern, size)
        _big_echo(ws, opcode, payload, frame(opcode, payload))

    test.__name__ = f"test_case_9_{section}_{num}_{kind}_message_of_{size // KiB}_KiB_echoed"
    test.__doc__ = f"9.{section}.{num}: one {kind} message of {size} bytes is echoed exactly."
    return test


# -- 9.3, 9.4: one 4 MiB message, fragment size sweep --------------------------

FRAG_MESSAGE = 4 * MiB
FRAG_SIZES = [64, 256, 1 * KiB, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB]


def _fragments(section: int, num: int, size: int):
    opcode, fill, kind = ((OP_TEXT, b"*", "text") if section == 3
                          else (OP_BINARY, b"\xfe", "binary"))

    def test(ws):
        payload = payload_of(fill, FRAG_MESSAGE)
        _big_echo(ws, opcode, payload, fragmented(opcode, payload, size))

    test.__name__ = (f"test_case_9_{section}_{num}_{kind}_4_MiB_in_fragments_of_{size}"
                     "_echoed")
    test.__doc__ = (f"9.{section}.{num}: a {kind} message of {FRAG_MESSAGE} bytes sent in "
                    f"fragments of {size} bytes is echoed whole and exact.")
    return test


# -- 9.5, 9.6: one 1 MiB frame, chop size sweep ---------------------------------

CHOP_MESSAGE = 1 * MiB
CHOP_SIZES = [64, 128, 256, 512, 1024, 2048]


def _chopped(section: int, num: int, chop: int):
    opcode, pattern, kind = ((OP_TEXT, TEXT_PATTERN, "text") if section == 5
                             else (OP_BINARY, BINARY_PATTERN, "binary"))

    def test(ws):
        payload = payload_of(pattern, CHOP_MESSAGE)
        _big_echo(ws, opcode, payload, frame(opcode, payload), chop=chop)

    test.__name__ = f"test_case_9_{section}_{num}_{kind}_1_MiB_written_in_chops_of_{chop}_echoed"
    test.__doc__ = (f"9.{section}.{num}: a {kind} frame of {CHOP_MESSAGE} bytes written in "
                    f"chops of {chop} bytes is echoed exactly.")
    return test


# -- 9.7, 9.8: many small messages, one round trip each -------------------------

RTT_SIZES = [0, 16, 64, 256, 1024, 4096]


def _round_trips(section: int, num: int, size: int):
    opcode, fill, kind = ((OP_TEXT, b"*", "text") if section == 7
                          else (OP_BINARY, b"\xfe", "binary"))

    def test(ws):
        payload = fill * size
        data = frame(opcode, payload)
        for _ in range(COUNT):
            ws.send(data)
            expect_echo(ws, opcode, payload)
        close_normally(ws)

    test.__name__ = f"test_case_9_{section}_{num}_{COUNT}_{kind}_messages_of_{size}_bytes"
    test.__doc__ = (f"9.{section}.{num}: {COUNT} {kind} messages of {size} bytes, each sent "
                    "after the previous one's echo, are all echoed exactly.")
    return test


for _section, _maker, _values in [(1, _single, SIZES), (2, _single, SIZES),
                                  (3, _fragments, FRAG_SIZES), (4, _fragments, FRAG_SIZES),
                                  (5, _chopped, CHOP_SIZES), (6, _chopped, CHOP_SIZES),
                                  (7, _round_trips, RTT_SIZES), (8, _round_trips, RTT_SIZES)]:
    for _num, _value in enumerate(_values, 1):
        _t = _maker(_section, _num, _value)
        globals()[_t.__name__] = _t
del _t


# -- pyws extras: the message size limit (server with the default 1 MiB) -------

def test_extra_limit_1_message_of_exactly_the_limit_is_echoed(echo_default_limit):
    payload = payload_of(BINARY_PATTERN, DEFAULT_MAX)
    with Client.to(echo_default_limit) as ws:
        ws.handshake()
        ws.send_chopped(frame(OP_BINARY, payload), WRITE_CHUNK)
        message_then_close(ws, OP_BINARY, payload)


def test_extra_limit_2_frame_announcing_one_byte_over_fails_with_1009_at_the_header(
        echo_default_limit):
    """Only the header is sent: the announced length alone is enough, and the
    server must not wait for payload it is going to refuse anyway."""
    with Client.to(echo_default_limit) as ws:
        ws.handshake()
        ws.send(frame(OP_TEXT, b"", length=DEFAULT_MAX + 1))
        expect_failure(ws, 1009)


def test_extra_limit_3_fragments_adding_up_to_one_byte_over_fail_with_1009(echo_default_limit):
    """Two fragments of half the limit are fine; a third one-byte fragment
    makes the message one byte too big."""
    half = payload_of(b"*", DEFAULT_MAX // 2)
    with Client.to(echo_default_limit) as ws:
        ws.handshake()
        ws.send_chopped(frame(OP_TEXT, half, fin=False) + frame(OP_CONT, half, fin=False),
                        WRITE_CHUNK)
        ws.send(frame(OP_CONT, b"*"))
        expect_failure(ws, 1009)


def test_extra_limit_4_frame_over_the_configured_limit_fails_with_1009(echo):
    """The limit is examples/echo.py's --max-message-size (BIG_MAX here; a
    message of exactly BIG_MAX is 9.1.6 / 9.2.6).  The frame announces one
    byte more; only its first payload byte is sent."""
    with Client.to(echo) as ws:
        ws.handshake()
        ws.send(frame(OP_BINARY, b"\xfe", length=BIG_MAX + 1))
        expect_failure(ws, 1009)
