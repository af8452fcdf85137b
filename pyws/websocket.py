"""The WebSocket object: socket I/O around a ``_core.Protocol`` engine.

All framing, masking, UTF-8 checks and the close handshake happen in the C
engine; this module only moves bytes between it and the socket, and keeps the
API of gevent-websocket's ``WebSocket`` so that porting code is a rename.
"""
from __future__ import annotations

import errno
import logging
import os
import select
import socket
import time
from collections import deque
from types import TracebackType
from typing import (Any, Callable, Deque, Dict, Iterator, List, NoReturn, Optional,
                    Tuple, Type, Union, cast)

from . import _core
from ._backend import getcurrent as _getcurrent
from ._backend import Event, Lock, new_event, new_lock, recv_function, spawn
from .exceptions import ConnectionClosed, FrameTooLargeException, ProtocolError

__all__ = ["WebSocket", "Message", "DEFAULT_CLOSE_TIMEOUT", "DEFAULT_PING_TIMEOUT",
           "check_non_negative", "drain_buffered"]

logger = logging.getLogger("pyws.websocket")

#: Seconds ``close()`` waits for the peer's close frame.
DEFAULT_CLOSE_TIMEOUT = 5.0
#: Seconds a keepalive ping waits for its pong (when ``ping_interval`` is set).
DEFAULT_PING_TIMEOUT = 20.0

#: What ``receive()`` returns: ``str`` for text, ``bytes`` for binary messages.
Message = Union[str, bytes]

_READ_SIZE = 65536
_TEXT = _core.TEXT
_BINARY = _core.BINARY
_FAIL = _core.FAIL
_PONG = _core.PONG
_OPEN = _core.OPEN
_CLOSED = _core.CLOSED
# Reads the keepalive task may do in one go while nobody else reads.
_POLL_READS = 16
# At most this long and this much is read (and discarded) after failing a
# connection, before closing it (see WebSocket._linger).
_LINGER_TIME = 2.0
_LINGER_BYTES = 16 << 20

#: Whether plain sockets are read and written by the C engine itself, on
#: their file descriptor (``Protocol.receive_from`` / ``send_to``): no bytes
#: objects in between, one call per message.  TLS and other socket types
#: always go through their Python methods.  False (or PYWS_PLAIN_IO=1 in the
#: environment) sends every socket that way; it is read once per WebSocket,
#: when it is created.  The two paths behave alike (tests compare them).
DIRECT_IO = os.environ.get("PYWS_PLAIN_IO", "") in ("", "0")
# What receive_from answers when it has no message (see _core.pyi).
_RECV_WAIT = 0
_RECV_EVENTS = 1


def check_non_negative(**options: Optional[float]) -> None:
    """ValueError naming the first option that is negative (None is fine)."""
    for name, value in options.items():
        if value is not None and value < 0:
            raise ValueError(f"{name} must be >= 0 or None, not {value}")


def drain_buffered(rfile: Any, sock: socket.socket) -> bytes:
    """The bytes a buffered reader over ``sock`` already holds, without
    blocking.  A client may send frames in the same packet as its handshake,
    so they sit in the HTTP server's reader; taking them out once lets the
    WebSocket read the socket directly from then on."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        # peek() returns the buffer; when it is empty it makes one raw read,
        # which a non-blocking socket turns into "nothing" instead of a wait.
        buffered = rfile.peek()
        return rfile.read1(len(buffered)) if buffered else b""
    except (BlockingIOError, OSError):
        return b""
    finally:
        sock.settimeout(timeout)

class WebSocket(_core.WebSocketBase):
    """One open WebSocket connection, client or server side.

    ``sock`` is the connected socket (stdlib or gevent), ``protocol`` the
    engine, already past the opening handshake.  Incoming bytes are read with
    ``rfile.read1`` when ``rfile`` is given (a buffered reader over ``sock``
    that may already hold bytes), else with ``sock.recv``; ``pending`` holds
    bytes already read from the stream, fed to the engine before anything else.
    With ``close_socket=False``, the socket is shut down but not closed when
    the connection ends (its owner, an HTTP server, closes it).

    Safe to share between threads or greenlets: one lock serialises every
    engine call together with the write of its output, and one reader at a
    time reads the socket.

    Timers (all optional, in seconds): ``close_timeout`` bounds the wait for
    the peer's close frame in ``close()``.  With ``ping_interval``, a ping is
    sent that often and the connection is dropped (close code 1011) if its
    pong does not come within ``ping_timeout``.  With ``idle_timeout``, the
    connection is closed with 1001 when nothing arrived for that long.  The
    last two run in a background greenlet (or thread) that also reads the
    socket when the application is not in ``receive()``.
    """

    # receive() and send() are the base's, in C: their common case (a
    # message already queued; on a plain gevent socket, one engine call that
    # reads or writes) is the whole per-message work of most applications.
    # Everything else comes back here, to _receive_slow and _send_slow.  The
    # base holds the fields those methods read: _proto, _sock, _lock,
    # _read_lock, _messages, _rawsock, _wakeup, _last_rx, _direct, _fast,
    # _dead and _used.
    __slots__ = (
        "_read", "_pending", "_failure", "_ping_sent",
        "_ping_payload", "_close_callbacks", "_close_socket",
        "environ", "path", "origin", "protocol", "version", "close_timeout",
        "ping_interval", "ping_timeout", "idle_timeout",
        "__weakref__",  # so that applications can keep WeakSets of sockets
    )

    def __init__(self, sock: socket.socket, protocol: _core.Protocol, *,
                 rfile: Optional[Any] = None,
                 environ: Optional[Dict[str, Any]] = None,
                 path: Optional[str] = None,
                 origin: Optional[str] = None,
                 subprotocol: Optional[str] = None,
                 version: str = "13",
                 close_timeout: Optional[float] = DEFAULT_CLOSE_TIMEOUT,
                 ping_interval: Optional[float] = None,
                 ping_timeout: Optional[float] = DEFAULT_PING_TIMEOUT,
                 idle_timeout: Optional[float] = None,
                 pending: bytes = b"",
                 close_socket: bool = True) -> None:
        check_non_negative(close_timeout=close_timeout, ping_interval=ping_interval,
                           ping_timeout=ping_timeout, idle_timeout=idle_timeout)
        self._sock = sock
        self._proto = protocol
        _disable_nagle(sock)
        # False when the socket belongs to an HTTP server that closes it
        # itself (the upgrade on Werkzeug's or gunicorn's socket): it is then
        # only shut down, so the server never writes to a descriptor number
        # that was closed under it.
        self._close_socket = close_socket
        self._lock: Lock = new_lock(sock)
        self._read_lock: Lock = new_lock(sock)
        # How the Python path reads (recv_function), made on first use: the
        # direct path never needs it.
        self._read: Optional[Callable[[int], bytes]] = None
        # The direct path: how to wait until the socket is ready, and the
        # object whose fileno() gives the descriptor (gevent's inner socket;
        # -1 once closed, so a closed socket fails the system call instead of
        # reaching a reused number).
        self._direct = _direct_kind(sock) if DIRECT_IO else _NO_DIRECT
        self._rawsock = cast(Any, sock)._sock if self._direct == _GEVENT else sock
        # receive() takes its gevent fast path while this holds.
        if rfile is not None:
            pending = bytes(pending) + drain_buffered(rfile, sock)
            # Its buffer (8 KiB) is of no use from now on; closing the reader
            # frees it and leaves the socket open.
            try:
                rfile.close()
            except OSError:
                pass
        self._pending = bytes(pending)
        self._fast = self._direct == _GEVENT and not self._pending
        # Messages received, not yet returned; None when there are none (an
        # empty deque is 760 bytes, kept by every idle connection otherwise).
        self._messages: Optional[Deque[Message]] = None
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
        #: Seconds between keepalive pings (None: no pings).
        self.ping_interval = ping_interval
        #: Seconds a keepalive ping waits for its pong (None: forever).
        self.ping_timeout = ping_timeout
        #: Seconds without incoming data before closing with 1001 (None: never).
        self.idle_timeout = idle_timeout
        self._last_rx = self._ping_sent = time.monotonic()
        self._ping_payload: Optional[bytes] = None
        self._wakeup: Optional[Event] = None
        self._close_callbacks: List[Callable[[WebSocket], None]] = []
        if ping_interval is not None or idle_timeout is not None:
            self._wakeup = new_event(sock)
            spawn(sock, self._run_timers, name="pyws-keepalive")

    # -- state ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once a close frame was sent or received, or the socket died."""
        return self._dead or self._proto.state != _OPEN

    @property
    def is_server(self) -> bool:
        """True for the server side of a connection."""
        return self._proto.is_server

    @property
    def compressed(self) -> bool:
        """True when permessage-deflate was negotiated: messages are
        compressed on the wire (except broadcast frames, sent as encoded)."""
        return self._proto.deflate

    @property
    def socket(self) -> socket.socket:
        """The underlying socket (for select() and the like; reading or
        writing it directly would corrupt the stream)."""
        return self._sock

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

    def _receive_slow(self) -> Optional[Message]:
        self._used = True
        # acquire/release rather than `with`: a `with` keeps a bound
        # __exit__ alive for as long as the wait, on every idle connection.
        lock = self._read_lock
        lock.acquire()
        try:
            while True:
                messages = self._messages
                if messages:
                    return messages.popleft()
                failure = self._failure
                if failure is not None:
                    self._failure = None
                    raise failure
                if self._dead:
                    return None
                # Nothing queued: no queue while waiting (_process makes one).
                self._messages = messages = None
                if self._direct and not self._pending:
                    message = self._receive_direct()
                    if message is not None:
                        return message
                    continue
                data = self._next_chunk()
                if data:
                    self._feed(data)
                else:
                    self._eof()
        finally:
            lock.release()

    def _receive_direct(self) -> Optional[Message]:
        """The engine reads the socket itself until a message is complete;
        None when something else happened (events handled, EOF, waiting
        failed), for the caller to look again."""
        receive_from = self._proto.receive_from
        rawsock = self._rawsock
        timers = self._wakeup is not None
        gevent_direct = self._direct == _GEVENT
        readable = False
        while True:
            result = receive_from(rawsock.fileno(), readable)
            if result.__class__ is not int:
                if timers:
                    self._last_rx = time.monotonic()
                return result  # type: ignore[return-value]
            if result == _RECV_WAIT:
                try:
                    sock: Any = self._sock
                    event = sock._read_event if gevent_direct else None
                    if (event is not None and sock.timeout is None
                            and event.callback is None):
                        # _wait_ready's gevent wait, inlined: this is the
                        # wait of nearly every message.
                        event.start(_getcurrent().switch)
                        try:
                            sock.hub.switch()
                        finally:
                            event.stop()
                    else:
                        self._wait_ready(False)
                except OSError:  # timed out, or closed by another task
                    self._eof()
                    return None
                if self._dead:
                    return None
                readable = True
                continue
            if result == _RECV_EVENTS:
                if timers:
                    self._last_rx = time.monotonic()
                self._process()
            else:
                self._eof()
            return None

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
            self._fast = self._direct == _GEVENT
            return pending
        try:
            read = self._read
            if read is None:
                read = self._read = recv_function(self._sock)
            return read(_READ_SIZE)
        except (OSError, ValueError):  # ValueError: the rfile was closed
            return b""

    def _feed(self, data: bytes) -> None:
        """Run ``data`` through the engine, write what it answers, queue events."""
        self._last_rx = time.monotonic()
        self._process(data)

    def _process(self, data: Optional[bytes] = None) -> None:
        """Feed ``data`` (if any) to the engine, write what it answers, queue
        its events, tear down once it is closed."""
        proto = self._proto
        error: Optional[OSError] = None
        with self._lock:
            if data is not None:
                proto.receive_data(data)
            out = proto.data_to_send()
            if out:
                try:
                    _send_all(self._sock, out)
                except OSError as exc:
                    error = exc
                    if proto.state != _CLOSED:
                        proto.receive_eof()
            events = proto.events_received()
        messages = self._messages
        for kind, value in events:
            if kind == _TEXT or kind == _BINARY:
                if messages is None:
                    messages = self._messages = deque()
                messages.append(value)  # type: ignore[arg-type]
            elif kind == _PONG:
                if value == self._ping_payload:
                    self._ping_payload = None
            elif kind == _FAIL:
                code, reason = cast(Tuple[int, str], value)
                cls = FrameTooLargeException if code == 1009 else ProtocolError
                self._failure = cls(reason or f"protocol error, connection "
                                              f"failed with code {code}", code)
            # PING: the engine already queued the pong, written above.
            # CLOSE: the engine queued the echo; the state says what to do.
        if error is not None or proto.state == _CLOSED:
            self._teardown(linger=error is None and self._failure is not None)

    def _eof(self) -> None:
        """The stream ended (or broke): close the engine, then the socket."""
        proto = self._proto
        with self._lock:
            if proto.state != _CLOSED:
                proto.receive_eof()
        self._teardown()

    def _teardown(self, linger: bool = False) -> None:
        if self._dead:
            return
        self._dead = True
        if self._wakeup is not None:
            self._wakeup.set()
        sock = self._sock
        if linger:
            self._linger()
        # shutdown() wakes any reader blocked on this socket (another thread
        # or greenlet) and sends FIN even while a buffered rfile keeps the
        # descriptor open.
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if self._close_socket:
            try:
                sock.close()
            except OSError:
                pass
        callbacks, self._close_callbacks = self._close_callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                logger.exception("WebSocket %s: close callback failed", self.path)

    def _linger(self) -> None:
        """After failing the connection, while the peer may still be sending
        (the rest of an oversized message, say): send FIN behind our close
        frame and read what still comes, for a bounded time.  Closing with
        unread data would reset the connection, and the reset can destroy
        the close frame before the peer reads it, hiding the close code."""
        sock = self._sock
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            return
        deadline = time.monotonic() + min(self.close_timeout or _LINGER_TIME, _LINGER_TIME)
        drained = 0
        while drained < _LINGER_BYTES:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                sock.settimeout(remaining)
                data = sock.recv(_READ_SIZE)
            except OSError:
                return
            if not data:
                return
            drained += len(data)

    def add_close_callback(self, callback: Callable[[WebSocket], None]) -> None:
        """Call ``callback(ws)`` once, when the connection is gone (at once if
        it is already).  Rooms use it to forget closed members."""
        self._close_callbacks.append(callback)
        # _teardown may have taken the list just before the append: then the
        # callback is still in the (new) list, and it is ours to call.
        if self._dead and callback in self._close_callbacks:
            self._close_callbacks.remove(callback)
            callback(self)

    # -- sending -------------------------------------------------------------

    def _send_slow(self, message: Union[str, bytes, bytearray, memoryview],
                   binary: Optional[bool]) -> None:
        """send() past the base's checks, when its gevent fast path does not
        apply: a socket of another kind, or another sender holds the lock."""
        direct = self._direct
        if direct:
            self._send_direct(message, binary)
            return
        proto = self._proto
        if isinstance(message, str):
            if binary:
                self._write(proto.send_binary, message.encode("utf-8"))
            else:
                self._write(proto.send_text, message)
        elif binary is None or binary:
            self._write(proto.send_binary, message)
        else:
            self._write(proto.send_text, message)

    def _wait_ready(self, write: bool) -> None:
        """Wait until the socket is readable (or writable); OSError on its
        timeout or if it was closed meanwhile."""
        sock: Any = self._sock
        if self._direct == _GEVENT:
            # The socket's own watchers: a close from another greenlet
            # throws gevent's cancel_wait_ex (an OSError) into the waiter,
            # as in sock.recv().
            event = sock._write_event if write else sock._read_event
            if event is None:
                raise OSError(errno.EBADF, "socket closed")
            if sock.timeout is not None or event.callback is not None:
                # gevent's own wait: its timeout, or its error for a watcher
                # another greenlet already waits on.
                try:
                    sock._wait(event)
                except AssertionError as exc:  # gevent's ConcurrentObjectUseError
                    raise OSError(errno.EBUSY, str(exc)) from exc
                return
            # Waiting right at the hub, with the greenlet's own switch as the
            # callback: an idle connection's greenlet then keeps about 1 KiB
            # less of saved C stack than through gevent's wait layers.
            event.start(_getcurrent().switch)
            try:
                sock.hub.switch()
            finally:
                event.stop()
            return
        timeout = sock.gettimeout()
        poller = select.poll()
        try:
            poller.register(sock.fileno(), select.POLLOUT if write else select.POLLIN)
        except ValueError as exc:  # closed: fileno() is -1
            raise OSError(errno.EBADF, "socket closed") from exc
        if not poller.poll(None if timeout is None else timeout * 1000.0):
            raise socket.timeout("timed out")

    def _send_direct(self, message: Union[str, bytes, bytearray, memoryview],
                     binary: Optional[bool]) -> None:
        """send() on a plain socket: the engine writes the frame itself, from
        the message's buffer, and what the socket did not take once it is
        writable; under the send lock, like _write."""
        with self._lock:
            left = self._proto.send_to(self._rawsock.fileno(), message, binary)
            if left == 0:
                return
            error = self._flush_direct(left)
            if error is None:
                return
        self._teardown()
        raise ConnectionClosed(1006, f"socket error while sending: {error}") from error

    def _schedule_flush(self) -> None:
        """The base deferred a frame (a burst of messages is being answered,
        see defer_send in csrc/binding/py_websocket.c): make sure it goes out at the
        hub's next turn even if the application stops calling receive()."""
        self._sock.hub.loop.run_callback(self._flush_deferred, False)

    def _flush_deferred(self, wait: bool) -> None:
        """Write the frames send() deferred.  From receive() (``wait``), the
        rest goes out as the socket drains, as send() would; from the hub's
        callback, which must not block, by a task of its own."""
        if not self._deferred:
            return
        self._deferred = False
        if self._lock.locked():
            return  # its holder writes the engine's output, these frames first
        left = self._proto.flush_to(self._rawsock.fileno())
        if left == 0:
            return
        if wait:
            self._finish_quietly(left)
        else:
            spawn(self._sock, self._finish_quietly, left, name="pyws-flush")

    def _finish_quietly(self, left: int) -> None:
        """_finish_direct for deferred frames: a socket error ends the
        connection, which the application meets at its next call."""
        try:
            self._finish_direct(left)
        except ConnectionClosed:
            pass

    def _finish_direct(self, left: int) -> None:
        """The rest of a frame send_to began without the lock (see send)."""
        with self._lock:
            error = self._flush_direct(left)
            if error is None:
                return
        self._teardown()
        raise ConnectionClosed(1006, f"socket error while sending: {error}") from error

    def _flush_direct(self, left: int) -> Optional[OSError]:
        """Under the send lock: write the engine's output as the socket
        becomes writable, ``left`` bytes (or -errno) to start with.  None
        once all is written; else the error, the engine told of the EOF."""
        proto = self._proto
        error: Optional[OSError] = None
        while left > 0:
            try:
                self._wait_ready(True)
            except OSError as exc:
                error = exc
                break
            left = proto.flush_to(self._rawsock.fileno())
        if left == 0 and error is None:
            return None
        if error is None:
            error = OSError(-left, os.strerror(-left))
        if proto.state != _CLOSED:
            proto.receive_eof()
        return error

    def send_encoded(self, frame: bytes) -> None:
        """Write one complete frame encoded beforehand (by
        ``pyws._core.encode_frame``), as a broadcast does: the same bytes go
        to many sockets.  Server side only, since server frames are not
        masked.  Raises ConnectionClosed once a close frame was sent."""
        if not self._proto.is_server:
            raise ValueError("send_encoded() is for server-side WebSockets: "
                             "client frames must be masked one by one")
        self._write(None, frame)

    def _finish_frame(self, rest: Union[bytes, memoryview]) -> None:
        """Write ``rest``, the end of a frame whose start pyws.Hub's fan-out
        wrote to the socket directly.  The hub took the lock for this call
        then, so that nothing could come between the two parts; it is
        released here.  ConnectionClosed if the socket fails, as in _write."""
        proto = self._proto
        error: OSError
        try:
            self._sock.sendall(rest)
            return
        except OSError as exc:
            error = exc
            if proto.state != _CLOSED:
                proto.receive_eof()
        finally:
            self._lock.release()
        self._teardown()
        raise ConnectionClosed(1006, f"socket error while sending: {error}") from error

    def _write(self, queue: Optional[Callable[[Any], None]], data: Any) -> None:
        """Queue one frame with the engine (``queue(data)``) and write it, or
        write ``data`` itself, an encoded frame, when ``queue`` is None; under
        the lock, so that frames from concurrent senders never interleave."""
        proto = self._proto
        error: OSError
        with self._lock:
            if queue is None:
                if proto.close_sent or self._dead:
                    raise self._closed_error()
                # Frames send() deferred are still in the engine: first.
                queued = proto.data_to_send() if self._deferred else b""
                out = queued + data if queued else data
            else:
                queue(data)
                out = proto.data_to_send()
            try:
                _send_all(self._sock, out)
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
        self._write(self._proto.send_ping, data)

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
            self._messages = None
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
        self._messages = None
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
                self._messages = None
        finally:
            self._read_lock.release()

    # -- keepalive and idle timers -------------------------------------------

    def _run_timers(self) -> None:
        """Background task: keepalive pings and the idle timeout."""
        wakeup = self._wakeup
        assert wakeup is not None
        try:
            while not self._dead:
                delay = self._next_due() - time.monotonic()
                if delay > 0 and wakeup.wait(delay):
                    return  # torn down
                self._poll()
                if not self._dead:
                    self._check_timers(time.monotonic())
        except Exception:
            logger.exception("WebSocket %s: keepalive task failed", self.path)

    def _next_due(self) -> float:
        due = []
        if self.idle_timeout is not None:
            due.append(self._last_rx + self.idle_timeout)
        if self.ping_interval is not None:
            if self._ping_payload is None:
                due.append(self._ping_sent + self.ping_interval)
            elif self.ping_timeout is not None:
                due.append(self._ping_sent + self.ping_timeout)
        return min(due) if due else time.monotonic() + 3600.0

    def _poll(self) -> None:
        """Read what has arrived when no receive() is reading, so that pongs
        and activity are seen even while the application only sends."""
        if not self._read_lock.acquire(blocking=False):
            return  # a receive() is reading: it sees everything
        try:
            for _ in range(_POLL_READS):
                if self._dead or not _readable(self._sock):
                    return
                data = self._next_chunk()
                if not data:
                    self._eof()
                    return
                self._feed(data)
        finally:
            self._read_lock.release()

    def _check_timers(self, now: float) -> None:
        idle = self.idle_timeout
        if idle is not None and now - self._last_rx >= idle:
            logger.info("WebSocket %s: nothing received for %gs, closing", self.path, idle)
            self.close(1001, "idle timeout")
            return
        if self.ping_interval is None:
            return
        if self._ping_payload is not None:
            timeout = self.ping_timeout
            if timeout is not None and now - self._ping_sent >= timeout:
                logger.info("WebSocket %s: no pong within %gs, dropping", self.path, timeout)
                self._drop(1011, "keepalive ping timeout")
        elif now - self._ping_sent >= self.ping_interval:
            payload = os.urandom(4)
            self._ping_payload = payload
            self._ping_sent = now
            try:
                self.ping(payload)
            except (ConnectionClosed, OSError):
                pass

    def _drop(self, code: int, reason: str) -> None:
        """Send a close frame if possible, then close the socket at once:
        the peer is presumed gone, so its answer is not awaited."""
        proto = self._proto
        with self._lock:
            if proto.state == _OPEN:
                try:
                    proto.send_close(code, reason)
                    self._sock.sendall(proto.data_to_send())
                except OSError:
                    pass
        self._eof()

    def __enter__(self) -> WebSocket:
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()


# How the direct path waits for a socket (see _direct_kind).
_NO_DIRECT = 0
_GEVENT = 1
_POLL = 2


def _direct_kind(sock: socket.socket) -> int:
    """_GEVENT or _POLL for a plain stream socket (gevent's or the stdlib's),
    which the engine can read and write on its descriptor; _NO_DIRECT for any
    other (TLS, wrappers), which keeps its Python methods."""
    cls = type(sock)
    if cls is socket.socket:
        return _POLL
    if cls.__module__ == "gevent._socket3" and cls.__name__ == "socket":
        return _GEVENT
    return _NO_DIRECT


def _disable_nagle(sock: socket.socket) -> None:
    """TCP_NODELAY on a TCP socket: a message goes out when it is sent.
    With Nagle's algorithm, a small frame written while an earlier one is
    still unacknowledged waits for that ACK, which the peer may delay by
    tens of milliseconds (two quick broadcasts, a send right after a pong).
    Other sockets (Unix, wrappers without these attributes) are left alone."""
    try:
        if (sock.family in (socket.AF_INET, socket.AF_INET6)
                and sock.type == socket.SOCK_STREAM):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError):
        pass  # not a socket we can tune, or already closed: nothing lost


def close_quietly(ws: WebSocket, code: int, reason: str = "",
                  log: logging.Logger = logger) -> None:
    """Close ``ws`` with ``code`` unless it is closed already, as the end of
    a handler does; a failure to close is only logged (at debug level, on
    ``log``): the connection is over either way."""
    if ws.closed:
        return
    try:
        ws.close(code, reason)
    except Exception:
        log.debug("closing WebSocket %s failed", ws.path, exc_info=True)


def _readable(sock: socket.socket) -> bool:
    """Is there something to read (data or EOF), without waiting?"""
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True  # closed or broken: a read will tell


def _send_all(sock: socket.socket, data: bytes) -> None:
    """``sock.sendall(data)``, trying one plain ``send`` first: it usually
    takes everything, and gevent's ``sendall`` costs an extra system call
    (it asks for the send buffer size) on every call."""
    sent = sock.send(data)
    if sent < len(data):
        sock.sendall(memoryview(data)[sent:])
