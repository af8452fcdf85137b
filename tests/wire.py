"""Test-side WebSocket wire helpers, independent of pyws.

``build_frame`` writes any frame, including invalid ones (reserved bits,
bad opcodes, non-minimal lengths); ``parse_frames`` reads frames back;
``RawClient`` does the opening handshake by hand over a plain socket.
"""
from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import time
from dataclasses import dataclass
from typing import List, Optional, Tuple

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA

RSV1, RSV2, RSV3 = 0x4, 0x2, 0x1  # as ``rsv`` argument (3 bits, RSV1 high)


def apply_mask(data: bytes, key: bytes) -> bytes:
    if not data:
        return b""
    n = len(data)
    full = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(full, "big")).to_bytes(n, "big")


def build_frame(opcode: int, payload: bytes = b"", *, fin: bool = True,
                rsv: int = 0, mask: Optional[bytes] = None,
                length_form: Optional[int] = None,
                length: Optional[int] = None) -> bytes:
    """One frame.  ``mask``: 4-byte key or None (unmasked).  ``length_form``:
    7, 16 or 64 to force a length encoding (None = minimal).  ``length``:
    the length to announce (default len(payload))."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    n = len(payload) if length is None else length
    if length_form is None:
        length_form = 7 if n <= 125 else (16 if n <= 0xFFFF else 64)
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mbit = 0x80 if mask is not None else 0
    if length_form == 7:
        head = bytes([b0, mbit | n])
    elif length_form == 16:
        head = bytes([b0, mbit | 126]) + struct.pack("!H", n)
    elif length_form == 64:
        head = bytes([b0, mbit | 127]) + struct.pack("!Q", n)
    else:
        raise ValueError(length_form)
    if mask is not None:
        return head + mask + apply_mask(payload, mask)
    return head + payload


def close_payload(code: Optional[int], reason: bytes | str = b"") -> bytes:
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    if code is None:
        return b""
    return struct.pack("!H", code) + reason


@dataclass
class Frame:
    fin: bool
    rsv: int
    opcode: int
    masked: bool
    mask: Optional[bytes]
    payload: bytes  # unmasked
    raw_payload: bytes  # as on the wire
    header: bytes
    length_form: int

    @property
    def close_code(self) -> Optional[int]:
        assert self.opcode == OP_CLOSE
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    @property
    def close_reason(self) -> bytes:
        assert self.opcode == OP_CLOSE
        return self.payload[2:]


def parse_frame(data: bytes) -> Optional[Tuple[Frame, int]]:
    """(frame, bytes used) or None if incomplete."""
    if len(data) < 2:
        return None
    b0, b1 = data[0], data[1]
    n = b1 & 0x7F
    pos = 2
    form = 7
    if n == 126:
        if len(data) < 4:
            return None
        n = struct.unpack("!H", data[2:4])[0]
        pos, form = 4, 16
    elif n == 127:
        if len(data) < 10:
            return None
        n = struct.unpack("!Q", data[2:10])[0]
        pos, form = 10, 64
    masked = bool(b1 & 0x80)
    key = None
    if masked:
        if len(data) < pos + 4:
            return None
        key = bytes(data[pos:pos + 4])
        pos += 4
    if len(data) < pos + n:
        return None
    raw = bytes(data[pos:pos + n])
    payload = apply_mask(raw, key) if masked else raw
    frame = Frame(fin=bool(b0 & 0x80), rsv=(b0 >> 4) & 7, opcode=b0 & 0xF,
                  masked=masked, mask=key, payload=payload, raw_payload=raw,
                  header=bytes(data[:pos]), length_form=form)
    return frame, pos + n


def parse_frames(data: bytes) -> Tuple[List[Frame], bytes]:
    """All complete frames at the start of data, and the rest."""
    frames = []
    while True:
        r = parse_frame(data)
        if r is None:
            return frames, bytes(data)
        frame, used = r
        frames.append(frame)
        data = data[used:]


def parse_all_frames(data: bytes) -> List[Frame]:
    frames, rest = parse_frames(data)
    assert rest == b"", f"trailing bytes that are not a complete frame: {rest[:40]!r}"
    return frames


def accept_for(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode("ascii")


def upgrade_request(host: str, path: str = "/ws", key: Optional[str] = None,
                    extra: Tuple[Tuple[str, str], ...] = (), method: str = "GET",
                    version: str = "HTTP/1.1", ws_version: Optional[str] = "13",
                    omit: Tuple[str, ...] = ()) -> Tuple[bytes, str]:
    """An upgrade request; ``omit`` drops headers by lower-case name."""
    if key is None:
        key = base64.b64encode(os.urandom(16)).decode("ascii")
    headers = [("Host", host), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
               ("Sec-WebSocket-Key", key)]
    if ws_version is not None:
        headers.append(("Sec-WebSocket-Version", ws_version))
    headers.extend(extra)
    lines = [f"{method} {path} {version}"]
    lines += [f"{k}: {v}" for k, v in headers if k.lower() not in omit]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), key


@dataclass
class HttpResponse:
    status: int
    reason: str
    headers: List[Tuple[str, str]]
    body: bytes
    rest: bytes = b""

    def header(self, name: str) -> Optional[str]:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None


def parse_head(head: bytes) -> Tuple[int, str, List[Tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        k, _, v = line.partition(":")
        headers.append((k.strip(), v.strip()))
    return status, reason, headers


class RawClient:
    """A socket with a receive buffer and deadlines on every read."""

    def __init__(self, port: int, timeout: float = 5.0, host: str = "127.0.0.1"):
        self.port = port
        self.host = host
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # Reading.
    def _fill(self, deadline: float) -> bool:
        """Read more; False at EOF.  Raises TimeoutError past the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out waiting for data from the server")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(262144)
        except socket.timeout:
            raise TimeoutError("timed out waiting for data from the server") from None
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def read_head(self, timeout: Optional[float] = None) -> bytes:
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(deadline):
                raise EOFError(f"connection closed before a response head: {self.buf!r}")
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return head

    def read_http_response(self, timeout: Optional[float] = None) -> HttpResponse:
        deadline = time.monotonic() + (timeout or self.timeout)
        head = self.read_head(timeout)
        status, reason, headers = parse_head(head)
        resp = HttpResponse(status, reason, headers, b"")
        length = resp.header("Content-Length")
        if status == 101:
            return resp
        if length is not None:
            n = int(length)
            while len(self.buf) < n:
                if not self._fill(deadline):
                    break
            resp.body, self.buf = self.buf[:n], self.buf[n:]
        elif (resp.header("Transfer-Encoding") or "").lower() == "chunked":
            body = b""
            while True:
                while b"\r\n" not in self.buf:
                    if not self._fill(deadline):
                        raise EOFError("connection closed inside a chunked body")
                size_line, _, self.buf = self.buf.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                while len(self.buf) < size + 2:
                    if not self._fill(deadline):
                        raise EOFError("connection closed inside a chunked body")
                body += self.buf[:size]
                self.buf = self.buf[size + 2:]
                if size == 0:
                    break
            resp.body = body
        else:
            while self._fill(deadline):
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def read_frame(self, timeout: Optional[float] = None) -> Frame:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            r = parse_frame(self.buf)
            if r is not None:
                frame, used = r
                self.buf = self.buf[used:]
                return frame
            if not self._fill(deadline):
                raise EOFError(f"connection closed inside/before a frame: {self.buf[:40]!r}")

    def expect_eof(self, timeout: Optional[float] = None) -> bytes:
        """Wait until the server closes the TCP connection; return what came."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while self._fill(deadline):
            pass
        data, self.buf = self.buf, b""
        return data

    # Writing.
    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_bytewise(self, data: bytes) -> None:
        for i in range(len(data)):
            self.sock.sendall(data[i:i + 1])

    # WebSocket.
    def handshake(self, path: str = "/ws", extra_headers=(), then: bytes = b"") -> HttpResponse:
        """Upgrade; ``then`` is sent in the same write as the request."""
        req, key = upgrade_request(f"{self.host}:{self.port}", path, extra=tuple(extra_headers))
        self.send(req + then)
        resp = self.read_http_response()
        assert resp.status == 101, f"expected 101, got {resp.status} {resp.reason} {resp.body!r}"
        assert resp.header("Sec-WebSocket-Accept") == accept_for(key)
        return resp

    def send_frame(self, opcode: int, payload: bytes | str = b"", **kw) -> None:
        kw.setdefault("mask", os.urandom(4))
        self.send(build_frame(opcode, payload, **kw))
