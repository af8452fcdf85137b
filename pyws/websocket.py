"""The WebSocket object: socket I/O around a ``_core.Protocol`` engine.

All framing, masking, UTF-8 checks and the close handshake happen in the C
engine; this module only moves bytes between it and the socket, and keeps the
API of gevent-websocket's ``WebSocket`` so that porting code is a rename.
"""
from __future__ import annotations

import socket
import time
from collections import deque
from types import TracebackType
from typing import (Any, Callable, Deque, Dict, Iterator, NoReturn, Optional, Tuple,
                    Type, Union, cast)

from . import _core
from ._backend import Lock, new_lock
from .exceptions import ConnectionClosed, FrameTooLargeException, ProtocolError

__all__ = ["WebSocket", "Message"]

#: What ``receive()`` returns: ``str`` for text, ``bytes`` for binary messages.
Message = Union[str, bytes]

_READ_SIZE = 65536
_TEXT = _core.TEXT
_BINARY = _core.BINARY
_FAIL = _core.FAIL
_OPEN = _core.OPEN
_CLOSED = _core.CLOSED


class WebSocket:
    """One open WebSocket connection, client or server side.

    ``sock`` is the connected socket (stdlib or gevent), ``protocol`` the
    engine, already past the opening handshake.  Incoming bytes are read with
    ``rfile.read1`` when ``rfile`` is given (a buffered reader over ``sock``
    that may already hold bytes), else with ``sock.recv``; ``pending`` holds
    bytes already read from the stream, fed to the engine before anything else.

    Safe to share between threads or greenlets: one lock serialises every
    engine call together with the write of its output, and one reader at a
    time reads the socket.
    """

    __slots__ = (
        "_sock", "_proto", "_lock", "_read_lock", "_read", "_pending",
        "_messages", "_failure", "_dead", "_used",
        "environ", "path", "origin", "protocol", "version", "close_timeout",
    )

    def __init__(self, sock: socket.socket, protocol: _core.Protocol, *,
                 rfile: Optional[Any] = None,
                 environ: Optional[Dict[str, Any]] = None,
                 path: Optional[str] = None,
                 origin: Optional[str] = None,
                 subprotocol: Optional[str] = None,
                 version: str = "13",
                 close_timeout: Optional[float] = 5.0,
                 pending: bytes = b"") -> None:
        self._sock = sock
        self._proto = protocol
        self._lock: Lock = new_lock(sock)
        self._read_lock: Lock = new_lock(sock)
        self._read: Callable[[int], bytes] = (
            rfile.read1 if rfile is not None else sock.recv)
        self._pending = bytes(pending)
        self._messages: Deque[Message] = deque()
        self._failure: Optional[ProtocolError] = None
        # True once the socket was shut down; the engine is CLOSED by then.
        self._dead = False
        # Whether the application touched the connection (see the handler).
        self._used = False
        #: The WSGI environ of the upgrade request (server side), else None.
        self.environ = environ
        #: The request path (PATH_INFO on a server, the resource on a client).
        self.path = path
        #: The Origin header of the handshake, if any.
        self.origin = origin
        #: The subprotocol selected during the handshake, or None.
        self.protocol = subprotocol
        #: The WebSocket protocol version, "13".
        self.version = version
        #: Seconds ``close()`` waits for the peer's close frame (None: forever).
        self.close_timeout = close_timeout

    # -- state ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once a close frame was sent or received, or the socket died."""
        return self._dead or self._proto.state != _OPEN

    @property
    def close_code(self) -> Optional[int]:
        """The peer's close code (1005: none given; 1006: connection lost) or
        the code we failed the connection with; None while open."""
        return self._proto.close_code

    @property
    def close_reason(self) -> str:
        """The reason that came with ``close_code``."""
        return self._proto.close_reason

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<{type(self).__name__} {self.path!r} {state}>"

    # -- receiving -----------------------------------------------------------

    def receive(self) -> Optional[Message]:
        """Return the next message: ``str`` (text) or ``bytes`` (binary).

        Returns None once the connection is closed, and on every call after.
        Pings are answered and the closing handshake completed on the way.
        Raises ProtocolError (FrameTooLargeException for an oversized message)
        once if the peer broke the protocol; the connection is then failed.
        """
        try:
            return self._messages.popleft()
        except IndexError:
            return self._receive_slow()

    def _receive_slow(self) -> Optional[Message]:
        self._used = True
        messages = self._messages
        with self._read_lock:
            while True:
                if messages:
                    return messages.popleft()
                failure = self._failure
                if failure is not None:
                    self._failure = None
                    raise failure
                if self._dead:
                    return None
                data = self._next_chunk()
                if data:
                    self._feed(data)
                else:
                    self._eof()

    def __iter__(self) -> Iterator[Message]:
        """Yield messages until the connection closes."""
        while True:
            message = self.receive()
            if message is None:
                return
            yield message

    def _next_chunk(self) -> bytes:
        """The next bytes of the stream; b'' at EOF or on a socket error."""
        pending = self._pending
        if pending:
            self._pending = b""
            return pending
        try:
            return self._read(_READ_SIZE)
        except (OSError, ValueError):  # ValueError: the rfile was closed
            return b""

    def _feed(self, data: bytes) -> None:
        """Run ``data`` through the engine, write what it answers, queue events."""
        proto = self._proto
        error: Optional[OSError] = None
        with self._lock:
            proto.receive_data(data)
            out = proto.data_to_send()
            if out:
                try:
                    self._sock.sendall(out)
                except OSError as exc:
                    error = exc
                    if proto.state != _CLOSED:
                        proto.receive_eof()
            events = proto.events_received()
        append = self._messages.append
        for kind, value in events:
            if kind == _TEXT or kind == _BINARY:
                append(value)  # type: ignore[arg-type]
            elif kind == _FAIL:
                code, reason = cast(Tuple[int, str], value)
                cls = FrameTooLargeException if code == 1009 else ProtocolError
                self._failure = cls(reason or f"protocol error, connection "
                                              f"failed with code {code}", code)
            # PING: the engine already queued the pong, written above.
            # CLOSE: the engine queued the echo; the state says what to do.
        if error is not None or proto.state == _CLOSED:
            self._teardown()

    def _eof(self) -> None:
        """The stream ended (or broke): close the engine, then the socket."""
        proto = self._proto
        with self._lock:
            if proto.state != _CLOSED:
                proto.receive_eof()
        self._teardown()

    def _teardown(self) -> None:
        if self._dead:
            return
        self._dead = True
        sock = self._sock
        # shutdown() wakes any reader blocked on this socket (another thread
        # or greenlet) and sends FIN even while a buffered rfile keeps the
        # descriptor open.
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            sock.close()
        except OSError:
            pass

    # -- sending -------------------------------------------------------------

    def send(self, message: Union[str, bytes, bytearray, memoryview],
             binary: Optional[bool] = None) -> None:
        """Send one message.

        ``str`` goes as text and bytes-like as binary, unless ``binary`` says
        otherwise (text from bytes must be valid UTF-8: ValueError otherwise;
        binary from str is its UTF-8 encoding).  Raises ConnectionClosed when
        the connection is closed (so echoing ``receive()``'s None ends a loop
        that way), TypeError for None on an open connection or a non-bytes-like
        message.
        """
        if self._dead or message is None:
            self._refuse(message)
        self._used = True
        proto = self._proto
        error: OSError
        with self._lock:
            if isinstance(message, str):
                if binary:
                    proto.send_binary(message.encode("utf-8"))
                else:
                    proto.send_text(message)
            elif binary is None or binary:
                proto.send_binary(message)
            else:
                proto.send_text(message)
            try:
                self._sock.sendall(proto.data_to_send())
                return
            except OSError as exc:
                error = exc
                if proto.state != _CLOSED:
                    proto.receive_eof()
        self._teardown()
        raise ConnectionClosed(1006, f"socket error while sending: {error}") from error

    def _refuse(self, message: object) -> NoReturn:
        if self.closed:
            raise self._closed_error()
        raise TypeError(f"cannot send {type(message).__name__}: "
                        "a message is str or bytes-like")

    def _closed_error(self) -> ConnectionClosed:
        proto = self._proto
        return ConnectionClosed(proto.close_code or 1006, proto.close_reason)

    def ping(self, data: Union[str, bytes] = b"") -> None:
        """Send a ping (at most 125 bytes of payload, ValueError otherwise)."""
        if self.closed:
            raise self._closed_error()
        if isinstance(data, str):
            data = data.encode("utf-8")
        self._used = True
        proto = self._proto
        with self._lock:
            proto.send_ping(data)
            out = proto.data_to_send()
            try:
                self._sock.sendall(out)
                return
            except OSError as exc:
                error = exc
                if proto.state != _CLOSED:
                    proto.receive_eof()
        self._teardown()
        raise ConnectionClosed(1006, f"socket error while sending: {error}") from error

    # -- closing -------------------------------------------------------------

    def close(self, code: int = 1000,
              message: Union[str, bytes, None] = b"") -> None:
        """Close the connection: send a close frame with ``code`` and
        ``message`` (unless one was sent already), wait up to
        ``close_timeout`` seconds for the peer's close frame, discarding data
        messages meanwhile, then close the socket.  Idempotent.  ValueError
        for a code an endpoint may not send or a reason over 123 bytes."""
        self._used = True
        if self._dead:
            self._messages.clear()
            return
        proto = self._proto
        sent = True
        with self._lock:
            if proto.state == _OPEN:
                proto.send_close(code, message or b"")
                try:
                    self._sock.sendall(proto.data_to_send())
                except OSError:
                    sent = False
        if sent and not proto.close_received:
            self._await_close(self.close_timeout)
        self._messages.clear()
        self._failure = None
        self._eof()

    def _await_close(self, timeout: Optional[float]) -> None:
        """Read until the peer's close frame arrives, EOF, or ``timeout``."""
        if timeout is None:
            self._read_lock.acquire()
            deadline = None
        else:
            deadline = time.monotonic() + timeout
            # Another reader may hold the lock: it will see the close frame.
            if timeout <= 0 or not self._read_lock.acquire(timeout=timeout):
                return
        try:
            while not self._dead:
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return
                    try:
                        self._sock.settimeout(remaining)
                    except OSError:
                        return
                data = self._next_chunk()
                if not data:
                    return
                self._feed(data)
                self._messages.clear()
        finally:
            self._read_lock.release()

    def __enter__(self) -> WebSocket:
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()
