"""pyws._core.fanout: one frame written to many sockets without blocking."""
from __future__ import annotations

import errno
import socket
from typing import List, Tuple

import pytest

from pyws import _core


def pairs(n: int) -> List[Tuple[socket.socket, socket.socket]]:
    return [socket.socketpair() for _ in range(n)]


def read_all(sock: socket.socket) -> bytes:
    sock.setblocking(False)
    out = b""
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except BlockingIOError:
            return out
        if not chunk:
            return out
        out += chunk


def test_every_socket_gets_the_whole_frame_and_nothing_is_reported() -> None:
    socks = pairs(3)
    frame = _core.encode_frame(_core.TEXT, b"hello")
    try:
        assert _core.fanout(frame, [a.fileno() for a, _ in socks]) == []
        for _, b in socks:
            assert read_all(b) == frame
    finally:
        for a, b in socks:
            a.close()
            b.close()


def test_buffer_like_frames_and_an_empty_list_are_accepted() -> None:
    a, b = socket.socketpair()
    try:
        assert _core.fanout(b"frame", []) == []
        assert _core.fanout(bytearray(b"ab"), [a.fileno()]) == []
        assert _core.fanout(memoryview(b"xcd")[1:], [a.fileno()]) == []
        assert read_all(b) == b"abcd"
    finally:
        a.close()
        b.close()


def test_a_full_socket_reports_what_it_took_and_never_blocks() -> None:
    (a, b), (c, d) = pairs(2)
    try:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        a.setblocking(True)  # MSG_DONTWAIT, not the descriptor's mode, decides
        frame = bytes(range(256)) * 4096  # 1 MiB: more than the buffers hold
        result = _core.fanout(frame, [a.fileno(), c.fileno()])
        # c's peer is not reading either, but its default buffers are larger:
        # only the indexes that fell short are listed, with what they took.
        short = dict(result)
        assert 0 in short and 0 < short[0] < len(frame)
        taken = short[0]
        # Full now: nothing more goes in.
        assert _core.fanout(frame, [a.fileno()]) == [(0, 0)]
        got = read_all(b)
        assert got == frame[:taken]  # the start of the frame, exactly
    finally:
        for s in (a, b, c, d):
            s.close()


def test_a_broken_socket_reports_its_error_and_the_others_still_get_the_frame() -> None:
    (a, b), (c, d) = pairs(2)
    try:
        b.close()
        frame = _core.encode_frame(_core.BINARY, b"\x00" * 10)
        assert _core.fanout(frame, [a.fileno(), c.fileno()]) == [(0, -errno.EPIPE)]
        assert read_all(d) == frame
    finally:
        for s in (a, c, d):
            s.close()


def test_a_descriptor_that_is_not_open_reports_ebadf() -> None:
    s = socket.socket()
    fd = s.fileno()
    s.close()
    assert _core.fanout(b"x", [fd]) == [(0, -errno.EBADF)]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        _core.fanout(b"x", [-1])
    with pytest.raises(TypeError):
        _core.fanout(b"x", ["3"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        _core.fanout(b"x", 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _core.fanout("text", [1])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _core.fanout(b"x")  # type: ignore[call-arg]
    with pytest.raises(OverflowError):
        _core.fanout(b"x", [1 << 70])
