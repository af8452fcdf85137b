"""Section 1 -- framing: text (1.1.x) and binary (1.2.x) messages of the
lengths around the 7-bit / 16-bit / 64-bit length boundaries, echoed exactly,
the last of each written in chops of 997 bytes.  Then a few framing rules the
catalog does not exercise (pyws extras): masking is mandatory, lengths must be
minimally encoded, and the 64-bit length's top bit must be 0."""
from __future__ import annotations

from tests.conformance.checks import (
    OP_BINARY,
    OP_TEXT,
    expect_echo,
    expect_failure,
    message_then_close,
)
from tests.conformance.rawclient import frame

# (case number within 1.1 / 1.2, payload length, chop size or None)
_CASES = [(1, 0, None), (2, 125, None), (3, 126, None), (4, 127, None),
          (5, 128, None), (6, 65535, None), (7, 65536, None), (8, 65536, 997)]


def _make(section: int, num: int, length: int, chop):
    opcode, fill, kind = ((OP_TEXT, b"*", "text") if section == 1
                          else (OP_BINARY, b"\xfe", "binary"))

    def test(ws):
        payload = fill * length
        data = frame(opcode, payload)
        if chop:
            ws.send_chopped(data, chop)
        else:
            ws.send(data)
        message_then_close(ws, opcode, payload)

    how = f", written in chops of {chop} bytes" if chop else ""
    test.__doc__ = (f"1.{section}.{num}: a {kind} message of {length} bytes{how} "
                    "is echoed exactly; then a clean close with 1000.")
    test.__name__ = (f"test_case_1_{section}_{num}_{kind}_{length}_bytes"
                     + (f"_chopped_{chop}" if chop else "") + "_echoed")
    return test


for _section in (1, 2):
    for _num, _length, _chop in _CASES:
        _t = _make(_section, _num, _length, _chop)
        globals()[_t.__name__] = _t
del _t


# -- pyws extras: framing rules outside the catalog ---------------------------

def test_extra_framing_1_unmasked_client_frame_fails_with_1002(ws):
    """RFC 6455 5.1: a server MUST close the connection on an unmasked frame."""
    ws.send(frame(OP_TEXT, b"not masked", mask=False))
    expect_failure(ws, 1002)


def test_extra_framing_2_all_zero_mask_key_is_accepted(ws):
    """A zero key is a valid (if useless) masking key."""
    ws.send(frame(OP_TEXT, b"zero key", mask=b"\x00\x00\x00\x00"))
    message_then_close(ws, OP_TEXT, b"zero key")


def test_extra_framing_3_16_bit_length_for_a_short_payload_fails_with_1002(ws):
    """RFC 6455 5.2: the minimal number of bytes MUST encode the length; 5
    bytes announced in the 16-bit form is malformed."""
    ws.send(frame(OP_TEXT, b"hello", length_form=16))
    expect_failure(ws, 1002)


def test_extra_framing_4_64_bit_length_for_a_16_bit_payload_fails_with_1002(ws):
    ws.send(frame(OP_BINARY, b"\x01" * 200, length_form=64))
    expect_failure(ws, 1002)


def test_extra_framing_5_64_bit_length_with_top_bit_set_fails_with_1002(ws):
    """RFC 6455 5.2: the most significant bit of the 64-bit length MUST be 0.
    Only the header is sent: the server must not wait for the payload."""
    ws.send(frame(OP_BINARY, b"", length_form=64, length=(1 << 63) | 200))
    expect_failure(ws, 1002)


def test_extra_framing_6_several_frames_in_one_write_and_one_frame_bytewise(ws):
    """Frames packed into one write are all echoed, in order; a frame written
    one byte per write is echoed too."""
    payloads = [b"one", b"two" * 50, b"three" * 20000]
    ws.send(b"".join(frame(OP_BINARY, p) for p in payloads))
    for p in payloads:
        expect_echo(ws, OP_BINARY, p)
    ws.send_bytewise(frame(OP_TEXT, "byte \u00e9 by byte \u20ac", length_form=None))
    message_then_close(ws, OP_TEXT, "byte \u00e9 by byte \u20ac")


def test_extra_framing_7_reserved_bit_fails_at_the_header_without_waiting_for_payload(ws):
    """A text frame with RSV1 announcing 13 bytes, of which none is sent: the
    error is in the first byte, so the server must fail the connection (1002)
    at once rather than wait for a payload it will refuse anyway."""
    ws.send(frame(OP_TEXT, b"", rsv=4, length=13))
    expect_failure(ws, 1002)
