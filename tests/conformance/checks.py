"""Expectations shared by the conformance tests.

pyws is strict, so these are too: an echo is the same opcode and the same
payload in one unmasked frame without reserved bits; a failed connection is a
close frame with the expected code followed by the end of the TCP connection,
with nothing in between; a clean close echoes the code it was sent.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

from tests.conformance.rawclient import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Client,
    RFrame,
    frames_summary,
)

#: Seconds the server has to fail a connection once the offending byte is in.
FAIL_TIMEOUT = 3.0


def _check_server_frame(f: RFrame) -> None:
    assert not f.masked, f"the server masked a frame: {f}"
    assert f.rsv == 0, f"the server set reserved bits: {f}"
    n = len(f.payload)
    minimal = 7 if n <= 125 else (16 if n <= 0xFFFF else 64)
    assert f.length_form == minimal, (
        f"the server encoded a length of {n} in {f.length_form} bits, not minimally")


def expect_frame(c: Client, opcode: int, payload: bytes, *, fin: bool = True,
                 timeout: Optional[float] = None) -> RFrame:
    f = c.read_frame(timeout)
    _check_server_frame(f)
    assert (f.opcode, f.fin) == (opcode, fin), f"expected opcode {opcode} fin={fin}, got {f}"
    assert f.payload == payload, (
        f"payload differs: expected {len(payload)} bytes {payload[:60]!r}, "
        f"got {len(f.payload)} bytes {f.payload[:60]!r}")
    return f


def expect_echo(c: Client, opcode: int, payload: bytes | str,
                timeout: Optional[float] = None) -> RFrame:
    """The server echoes a data message: pyws sends a message as one frame."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return expect_frame(c, opcode, payload, timeout=timeout)


def expect_text(c: Client, payload: bytes | str, timeout: Optional[float] = None) -> RFrame:
    return expect_echo(c, OP_TEXT, payload, timeout)


def expect_binary(c: Client, payload: bytes, timeout: Optional[float] = None) -> RFrame:
    return expect_echo(c, OP_BINARY, payload, timeout)


def expect_pong(c: Client, payload: bytes | str, timeout: Optional[float] = None) -> RFrame:
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return expect_frame(c, OP_PONG, payload, timeout=timeout)


def _expect_close_then_eof(c: Client, frames: Sequence[RFrame], code: Optional[int],
                           what: str) -> RFrame:
    close = frames[-1]
    _check_server_frame(close)
    assert close.fin, f"fragmented close frame: {close}"
    assert close.close_code == code, (
        f"{what}: expected close code {code}, got {close.close_code} "
        f"(reason {close.close_reason!r}); frames: {frames_summary(frames)}")
    # The reason, if any, must itself be valid UTF-8.
    close.close_reason.decode("utf-8")
    rest = c.expect_eof()
    assert rest == b"", f"{what}: the server sent bytes after its close frame: {rest[:80]!r}"
    return close


def expect_failure(c: Client, code: int, *,
                   first: Sequence[Tuple[int, bytes]] = (),
                   timeout: float = FAIL_TIMEOUT) -> RFrame:
    """The server fails the connection: exactly the frames of ``first``
    ((opcode, payload) pairs: the echoes of the valid messages that came
    before the offending frame, even in the same write), then a close frame
    with ``code``, then it ends TCP."""
    frames = c.read_frames_until_close(timeout)
    before = frames[:-1]
    assert len(before) == len(first), (
        f"expected {len(first)} frame(s) before the close: {frames_summary(frames)}")
    for f, (opcode, payload) in zip(before, first):
        _check_server_frame(f)
        assert (f.opcode, f.fin, f.payload) == (opcode, True, payload), (
            f"unexpected frame before the close: {f}; all: {frames_summary(frames)}")
    return _expect_close_then_eof(c, frames, code, "failing the connection")


def expect_close_reply(c: Client, code: Optional[int], timeout: Optional[float] = None
                       ) -> RFrame:
    """After we sent a close frame: the next frame is the server's close with
    ``code`` (None: an empty close payload), then TCP ends."""
    frames = c.read_frames_until_close(timeout)
    assert len(frames) == 1, f"frames before the close reply: {frames_summary(frames)}"
    return _expect_close_then_eof(c, frames, code, "closing handshake")


def close_normally(c: Client) -> None:
    """Our closing handshake with 1000: the server echoes 1000 and ends TCP."""
    c.send_close(1000)
    expect_close_reply(c, 1000)


def message_then_close(c: Client, opcode: int, payload: bytes | str) -> None:
    """The usual end of a passing case: the echo, then a clean close."""
    expect_echo(c, opcode, payload)
    close_normally(c)


__all__ = [
    "FAIL_TIMEOUT", "expect_frame", "expect_echo", "expect_text", "expect_binary",
    "expect_pong", "expect_failure", "expect_close_reply", "close_normally",
    "message_then_close", "OP_CONT", "OP_TEXT", "OP_BINARY", "OP_PING", "OP_PONG", "OP_CLOSE",
]
