"""A frame-level WebSocket client for the conformance suite.

It writes whatever it is told to -- any opcode, reserved bits, FIN, any length
encoding (including non-minimal ones), masked or not -- in one write, in chops
of a given size, or one byte per write, and reads the server's frames back
with a deadline on every read (nothing here sleeps).

Reading is buffered: one ``bytearray`` with a read offset, filled with
``recv_into``, so a message of several MiB costs a handful of copies rather
than a Python loop over its bytes.  Server frames are unmasked, so payloads
are plain slices.
"""
from __future__ import annotations

import os
import socket
import ssl
import struct
import time
from dataclasses import dataclass
from typing import Any, Iterable, List, Optional, Sequence, Tuple

from tests.wire import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    HttpResponse,
    accept_for,
    apply_mask,
    parse_head,
    upgrade_request,
)

__all__ = [
    "OP_CONT", "OP_TEXT", "OP_BINARY", "OP_CLOSE", "OP_PING", "OP_PONG",
    "RFrame", "Client", "ServerClosed", "frame", "mask_payload", "close_body",
    "fragment_frames", "fragmented",
    "chops", "DEFAULT_TIMEOUT",
]

#: Seconds any single expectation may take before the test fails.
DEFAULT_TIMEOUT = 5.0

_RECV_SIZE = 1 << 20

OPCODE_NAMES = {0x0: "CONT", 0x1: "TEXT", 0x2: "BINARY", 0x8: "CLOSE",
                0x9: "PING", 0xA: "PONG"}


class ServerClosed(EOFError):
    """The server closed the TCP connection where a frame was expected."""


# -- building frames ---------------------------------------------------------

def mask_payload(payload: bytes, key: bytes) -> bytes:
    """``payload`` XOR the repeated 4-byte ``key`` (done on big integers, so it
    is fast for MiB payloads too)."""
    return apply_mask(payload, key)


def frame(opcode: int, payload: bytes | str = b"", *, fin: bool = True, rsv: int = 0,
          mask: Optional[bytes] | bool = True, length_form: Optional[int] = None,
          length: Optional[int] = None) -> bytes:
    """The bytes of one frame.

    ``rsv``: the three reserved bits as a number, RSV1 being 4 and RSV3 1.
    ``mask``: True for a random key, a 4-byte key, or False/None for an
    unmasked frame.  ``length_form``: 7, 16 or 64 to force an encoding of the
    payload length (None: the minimal one).  ``length``: the length to
    announce, when it should differ from the payload's (a header promising
    more than is sent).
    """
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    n = len(payload) if length is None else length
    if length_form is None:
        length_form = 7 if n <= 125 else (16 if n <= 0xFFFF else 64)
    if mask is True:
        mask = os.urandom(4)
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mbit = 0x80 if mask else 0
    if length_form == 7:
        if n > 125:
            raise ValueError(f"{n} does not fit the 7-bit length")
        head = bytes((b0, mbit | n))
    elif length_form == 16:
        head = bytes((b0, mbit | 126)) + struct.pack("!H", n)
    elif length_form == 64:
        head = bytes((b0, mbit | 127)) + struct.pack("!Q", n)
    else:
        raise ValueError(f"length_form must be 7, 16 or 64, not {length_form}")
    if mask:
        return head + mask + mask_payload(payload, mask)
    return head + payload


def fragment_frames(opcode: int, payload: bytes, size: int) -> List[bytes]:
    """A message as frames of ``size`` payload bytes (the last may be
    shorter), all masked with one key.  ``size`` must be a multiple of 4:
    then masking the whole payload once and cutting it gives each frame's
    masked payload, which keeps MiB messages in 64-byte frames cheap."""
    if size % 4:
        raise ValueError("the fragment size must be a multiple of 4")
    key = os.urandom(4)
    masked = mask_payload(payload, key)
    n = len(payload)
    out = []
    for start in range(0, max(n, 1), size):
        chunk = masked[start:start + size]
        head = frame(OP_CONT if start else opcode, b"", fin=start + size >= n,
                     mask=False, length=len(chunk))
        out.append(head[:1] + bytes((head[1] | 0x80,)) + head[2:] + key + chunk)
    return out


def fragmented(opcode: int, payload: bytes, size: int) -> bytes:
    """``fragment_frames`` joined, for one write."""
    return b"".join(fragment_frames(opcode, payload, size))


def close_body(code: Optional[int], reason: bytes | str = b"") -> bytes:
    """A close frame payload: the 2-byte code then the reason (empty payload
    when ``code`` is None)."""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    if code is None:
        return bytes(reason)
    return struct.pack("!H", code) + reason


def chops(data: bytes, size: int) -> List[bytes]:
    """``data`` cut into pieces of ``size`` bytes (the last may be shorter)."""
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


# -- reading frames ----------------------------------------------------------

@dataclass
class RFrame:
    """A frame as received from the server."""
    fin: bool
    rsv: int
    opcode: int
    masked: bool
    payload: bytes
    length_form: int

    @property
    def close_code(self) -> Optional[int]:
        assert self.opcode == OP_CLOSE, self
        if len(self.payload) < 2:
            return None
        return struct.unpack("!H", self.payload[:2])[0]

    @property
    def close_reason(self) -> bytes:
        assert self.opcode == OP_CLOSE, self
        return self.payload[2:]

    def __repr__(self) -> str:
        name = OPCODE_NAMES.get(self.opcode, hex(self.opcode))
        body = self.payload if len(self.payload) <= 64 else (
            self.payload[:48] + b"..." + f"({len(self.payload)} bytes)".encode())
        extra = "" if self.fin else " fin=0"
        extra += f" rsv={self.rsv}" if self.rsv else ""
        extra += " MASKED" if self.masked else ""
        return f"<{name}{extra} {body!r}>"


class Client:
    """One TCP connection to the server, with a buffered frame reader."""

    def __init__(self, port: int, host: str = "127.0.0.1",
                 timeout: float = DEFAULT_TIMEOUT, tls: bool = False):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:  # the test's own self-signed certificate: nothing to verify
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            self.sock = context.wrap_socket(self.sock)
        self._buf = bytearray()
        self._pos = 0
        self.eof = False
        self.reset = False
        #: Pings the server sent on its own, answered by read_frame.
        self.keepalive_pings = 0

    @classmethod
    def to(cls, server: Any, **kwargs: Any) -> Client:
        """A connection to a test server (over TLS if it serves TLS)."""
        return cls(server.port, tls=getattr(server, "tls", False), **kwargs)

    # -- lifetime --

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing --

    def send(self, data: bytes) -> None:
        """One ``sendall``."""
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def send_chopped(self, data: bytes, size: int) -> None:
        """``data`` in writes of ``size`` bytes each (TCP_NODELAY is on, so
        every write leaves as its own segment)."""
        self.sock.settimeout(self.timeout)
        view = memoryview(data)
        for i in range(0, len(data), size):
            self.sock.sendall(view[i:i + size])

    def send_bytewise(self, data: bytes) -> None:
        """``data`` one byte per write."""
        self.send_chopped(data, 1)

    def try_send(self, data: bytes, size: Optional[int] = None) -> bool:
        """Write ``data`` (in chops of ``size``) to a server that may already
        have failed the connection: False if the write met a closed socket."""
        try:
            if size is None:
                self.send(data)
            else:
                self.send_chopped(data, size)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def send_frame(self, opcode: int, payload: bytes | str = b"", **kw) -> None:
        """Build a frame (see ``frame``) and write it at once."""
        self.send(frame(opcode, payload, **kw))

    def send_close(self, code: Optional[int] = 1000, reason: bytes | str = b"") -> None:
        self.send_frame(OP_CLOSE, close_body(code, reason))

    # -- reading --

    def _avail(self) -> int:
        return len(self._buf) - self._pos

    def _fill(self, deadline: float, want: int = 1) -> bool:
        """Read until ``want`` more bytes are buffered; False at EOF.
        Raises TimeoutError once ``deadline`` passes."""
        buf = self._buf
        if self._pos and self._pos >= len(buf) // 2:
            del buf[:self._pos]
            self._pos = 0
        target = len(buf) + want
        while len(buf) < target:
            if self.eof:
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"timed out waiting for data from the server "
                    f"(have {self._avail()} unread bytes: "
                    f"{bytes(buf[self._pos:self._pos + 40])!r})")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(_RECV_SIZE)
            except socket.timeout:
                continue  # the deadline check above raises
            except ConnectionResetError:
                self.reset = True
                chunk = b""
            if not chunk:
                self.eof = True
                return False
            buf += chunk
        return True

    def _need(self, n: int, deadline: float, what: str) -> None:
        if self._avail() < n and not self._fill(deadline, n - self._avail()):
            if self._avail() == 0:
                raise ServerClosed(f"the server closed the connection; expected {what}")
            raise ServerClosed(
                f"the server closed the connection inside {what}: "
                f"{bytes(self._buf[self._pos:self._pos + 40])!r}")

    def read_frame(self, timeout: Optional[float] = None) -> RFrame:
        """The next frame; ServerClosed if the connection ends first,
        TimeoutError if nothing complete comes within ``timeout``.  A ping
        the server sends on its own (keepalive, on by default) is answered
        with its pong, as any client does, and not returned: no case here
        makes the server ping."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            got = self._read_one_frame(deadline)
            if got.opcode != OP_PING or got.masked:
                return got
            self.keepalive_pings += 1
            self.send(frame(OP_PONG, got.payload))

    def _read_one_frame(self, deadline: float) -> RFrame:
        self._need(2, deadline, "a frame")
        buf, p = self._buf, self._pos
        b0, b1 = buf[p], buf[p + 1]
        n = b1 & 0x7F
        head = 2
        form = 7
        if n == 126:
            head, form = 4, 16
        elif n == 127:
            head, form = 10, 64
        masked = bool(b1 & 0x80)
        if masked:
            head += 4
        self._need(head, deadline, "a frame header")
        buf, p = self._buf, self._pos
        if form == 16:
            n = struct.unpack_from("!H", buf, p + 2)[0]
        elif form == 64:
            n = struct.unpack_from("!Q", buf, p + 2)[0]
        self._need(head + n, deadline, f"a frame of {n} payload bytes")
        buf, p = self._buf, self._pos
        payload = bytes(buf[p + head:p + head + n])
        if masked:
            payload = mask_payload(payload, bytes(buf[p + head - 4:p + head]))
        self._pos = p + head + n
        return RFrame(fin=bool(b0 & 0x80), rsv=(b0 >> 4) & 7, opcode=b0 & 0xF,
                      masked=masked, payload=payload, length_form=form)

    def expect_silence(self, seconds: float) -> None:
        """Nothing arrives (and the connection stays open) for ``seconds``.
        Only for checking that the server has NOT reacted to a prefix that is
        still valid; it never orders events."""
        try:
            got = self._fill(time.monotonic() + seconds)
        except TimeoutError:
            return
        if got:
            raise AssertionError(f"the server sent {bytes(self._buf[self._pos:self._pos + 60])!r}"
                                 " although what it received so far is valid")
        raise AssertionError("the server closed the connection although what it "
                             "received so far is valid")

    def read_frames_until_close(self, timeout: Optional[float] = None) -> List[RFrame]:
        """Frames up to and including the first close frame."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        frames: List[RFrame] = []
        while True:
            try:
                f = self.read_frame(max(0.0, deadline - time.monotonic()))
            except ServerClosed as exc:
                raise ServerClosed(f"{exc}; frames before: {frames}") from None
            except TimeoutError as exc:
                raise TimeoutError(f"no close frame: {exc}; frames so far: {frames}") from None
            frames.append(f)
            if f.opcode == OP_CLOSE:
                return frames

    def read_message(self, timeout: Optional[float] = None) -> Tuple[int, bytes, int]:
        """(opcode, payload, number of frames) of the next data message,
        reassembled; control frames met on the way fail the assertion."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        first = self.read_frame(timeout)
        assert first.opcode in (OP_TEXT, OP_BINARY), f"expected a data message, got {first}"
        parts = [first.payload]
        count = 1
        last = first
        while not last.fin:
            last = self.read_frame(max(0.0, deadline - time.monotonic()))
            assert last.opcode == OP_CONT, f"expected a continuation frame, got {last}"
            parts.append(last.payload)
            count += 1
        return first.opcode, b"".join(parts), count

    def expect_eof(self, timeout: Optional[float] = None) -> bytes:
        """Wait for the server to end the TCP connection; return the bytes that
        arrived before the end (a test usually wants none)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        try:
            while self._fill(deadline, max(1, _RECV_SIZE)):
                pass
        except TimeoutError:
            raise TimeoutError("the server did not close the TCP connection "
                               f"within {self.timeout if timeout is None else timeout}s"
                               ) from None
        rest = bytes(self._buf[self._pos:])
        self._pos = len(self._buf)
        return rest

    # -- HTTP --

    def read_http_response(self, timeout: Optional[float] = None) -> HttpResponse:
        """Status line, headers and (for non-101) a Content-Length body."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while b"\r\n\r\n" not in self._buf[self._pos:]:
            if not self._fill(deadline):
                raise ServerClosed("connection closed before a complete response head: "
                                   f"{bytes(self._buf[self._pos:])!r}")
        end = self._buf.index(b"\r\n\r\n", self._pos)
        head = bytes(self._buf[self._pos:end])
        self._pos = end + 4
        status, reason, headers = parse_head(head)
        resp = HttpResponse(status, reason, headers, b"")
        if status != 101:
            length = resp.header("Content-Length")
            if length is not None:
                self._need(int(length), deadline, "the response body")
                resp.body = bytes(self._buf[self._pos:self._pos + int(length)])
                self._pos += int(length)
        return resp

    def handshake(self, path: str = "/ws", extra_headers: Sequence[Tuple[str, str]] = (),
                  then: bytes = b"") -> HttpResponse:
        """A valid opening handshake; ``then`` goes in the same write as the
        request.  Asserts a correct 101."""
        req, key = upgrade_request(f"{self.host}:{self.port}", path,
                                   extra=tuple(extra_headers))
        self.send(req + then)
        resp = self.read_http_response()
        assert resp.status == 101, (resp.status, resp.reason, resp.body)
        assert resp.header("Sec-WebSocket-Accept") == accept_for(key), resp.headers
        return resp


def frames_summary(frames: Iterable[RFrame]) -> str:
    return ", ".join(repr(f) for f in frames)
