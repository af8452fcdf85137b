"""The WebSocket session: receive, send, close and keepalive, written once.

All framing, masking, UTF-8 checks and the close handshake happen in the C
engine (``_core.Protocol``); moving bytes between it and the socket, and
waiting while the socket would block, is the job of one transport, chosen
once from what the socket is (pyws/transport.py: gevent, threads, or the
socket's own methods for TLS and wrappers).  This module holds every rule of
the session (one reader at a time, frames never interleaved, replies to a
burst sent together, the close handshake, keepalive) for all of them, and
keeps the API of gevent-websocket's ``WebSocket`` so that porting code is a
rename.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from collections import deque
from types import TracebackType
from typing import (
    Any,
    Callable,
    Deque,
    Dict,
    Iterator,
    List,
    NoReturn,
    Optional,
    Tuple,
    Type,
    Union,
    cast,
)

from . import _core
from ._timers import TimerQueue
from .exceptions import ConnectionClosed
from .options import DEFAULTS, check_seconds
from .transport import EVENTS, GeventTransport, Transport, transport_for

__all__ = ["WebSocket", "FrameWriter", "Message", "drain_buffered", "close_quietly"]

logger = logging.getLogger("pyws.websocket")

#: What ``receive()`` returns: ``str`` for text, ``bytes`` for binary messages.
Message = Union[str, bytes]

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
# What close() keeps of the data messages that arrive while it waits for the
# peer's close frame, at most.
_CLOSING_KEEP = 4 << 20
# Replies deferred during a burst are written once they reach this size.
_DEFER_LIMIT = 64 << 10


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

class WebSocket:
    """One open WebSocket connection, client or server side.

    ``sock`` is the connected socket (stdlib or gevent, plain or TLS),
    ``engine`` the protocol engine, already past the opening handshake.  ``rfile``:
    a buffered reader over ``sock`` that may already hold bytes of the stream
    (they are taken out, and the reader closed); ``pending``: bytes already
    read from the stream, fed to the engine first.  With
    ``close_socket=False``, the socket is shut down but not closed when the
    connection ends (its owner, an HTTP server, closes it).  ``transport``:
    how the bytes move, when the caller made it (asyncio's); by default
    chosen from what ``sock`` is.

    Safe to share between threads or greenlets: one lock serialises the
    writes (frames never interleave), and one reader at a time reads.

    Timers (in seconds, defaults from ``pyws.options``; None turns one
    off): ``close_timeout`` bounds the wait for the peer's close frame in
    ``close()``.  With ``ping_interval``, a ping is sent that often and the
    connection is dropped (close code 1011) if its pong does not come within
    ``ping_timeout``.  With ``idle_timeout``, the connection is closed with
    1001 when nothing arrived for that long.  The last two are run by the
    process's timer queue (pyws/_timers.py), whose short task for this
    connection also reads the socket when the application is not in
    ``receive()``.
    """

    __slots__ = (
        "_sock", "_proto", "_transport", "_lock", "_read_lock", "_messages",
        "_dead", "_used", "_deferred", "_defers", "_timers", "_last_rx", "_ping_sent",
        "_ping_payload", "_close_callbacks", "_close_socket", "_writer", "_end_told",
        "environ", "path", "origin", "protocol", "subprotocol", "version", "handler",
        "close_timeout",
        "ping_interval", "ping_timeout", "idle_timeout",
        "__weakref__",  # so that applications can keep WeakSets of sockets
    )

    def __init__(self, sock: socket.socket, engine: _core.Protocol, *,
                 rfile: Optional[Any] = None,
                 environ: Optional[Dict[str, Any]] = None,
                 path: Optional[str] = None,
                 origin: Optional[str] = None,
                 subprotocol: Optional[str] = None,
                 protocol: Optional[str] = None,
                 version: str = "13",
                 close_timeout: Optional[float] = DEFAULTS.close_timeout,
                 ping_interval: Optional[float] = DEFAULTS.ping_interval,
                 ping_timeout: Optional[float] = DEFAULTS.ping_timeout,
                 idle_timeout: Optional[float] = DEFAULTS.idle_timeout,
                 pending: bytes = b"",
                 close_socket: bool = True,
                 transport: Optional[Transport] = None) -> None:
        # The timers of pyws.options.Options, checked the same way.
        for name, value in (("close_timeout", close_timeout), ("ping_interval", ping_interval),
                            ("ping_timeout", ping_timeout), ("idle_timeout", idle_timeout)):
            check_seconds(name, value)
        self._sock = sock
        self._proto = engine
        _disable_nagle(sock)
        if rfile is not None:
            pending = bytes(pending) + drain_buffered(rfile, sock)
            # Its buffer (8 KiB) is of no use from now on; closing the reader
            # frees it and leaves the socket open.
            try:
                rfile.close()
            except OSError:
                pass
        if transport is None:
            transport = transport_for(sock)
        self._transport = transport
        # False when the socket belongs to an HTTP server that closes it
        # itself (the upgrade on Werkzeug's or gunicorn's socket): it is then
        # only shut down, so the server never writes to a descriptor number
        # that was closed under it.
        self._close_socket = close_socket
        self._lock: Any = transport.new_lock()
        self._read_lock: Any = transport.new_lock()
        # Messages received and not yet returned; None when there are none
        # (an empty deque is 760 bytes, kept by every idle connection).
        self._messages: Optional[Deque[Message]] = None
        # Whether receive() returned the None that tells of the end (the
        # next call raises; see receive).
        self._end_told = False
        # True once the socket was shut down; the engine is CLOSED by then.
        self._dead = False
        # Whether the application sent or received (see the WSGI runner).
        self._used = False
        # Replies to a burst of received messages gather in the engine and
        # leave in one write (see send); True while some wait there.
        self._defers = isinstance(transport, GeventTransport)
        self._deferred = False
        self._writer: Optional[FrameWriter] = None
        #: The WSGI environ of the upgrade request (server side), else None.
        self.environ = environ
        #: The request path (PATH_INFO on a server, the resource on a client).
        self.path = path
        #: The Origin header of the handshake, if any.
        self.origin = origin
        #: The subprotocol selected during the handshake, or None.
        self.subprotocol = subprotocol
        #: The ``Sec-WebSocket-Protocol`` header of the opening request as
        #: it was sent (the subprotocols offered), or None: gevent-websocket's
        #: ``protocol``.  ``subprotocol`` is the one selected.
        self.protocol = protocol
        #: The gevent ``WebSocketHandler`` serving this connection (its
        #: ``server.clients``, ``active_client``, ``logger``), else None.
        self.handler: Any = None
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
        # The queue that runs this connection's timers (pyws/_timers.py),
        # None without any.
        self._timers: Optional[TimerQueue] = None
        self._close_callbacks: List[Callable[[WebSocket], None]] = []
        if pending:
            self._process(bytes(pending))
        if (ping_interval is not None or idle_timeout is not None) and not self._dead:
            self._timers = transport.timers()
            self._timers.add(self._next_due(), self)

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
    def transport(self) -> Transport:
        """How this connection's bytes move (see pyws.transport)."""
        return self._transport

    @property
    def close_code(self) -> Optional[int]:
        """The peer's close code (1005: none given; 1006: connection lost) or
        the code we failed the connection with; None while open."""
        return self._proto.close_code

    @property
    def close_reason(self) -> str:
        """The reason that came with ``close_code``."""
        return self._proto.close_reason

    @property
    def current_app(self) -> Any:
        """gevent-websocket's ``current_app``: the ``current_app`` of the
        server's application if it has one, else an object whose
        ``on_close`` does nothing."""
        server = getattr(self.handler, "server", None)
        app = getattr(getattr(server, "application", None), "current_app", None)
        return app if app is not None else _NO_APP

    @property
    def logger(self) -> logging.Logger:
        """The handler's logger (gevent-websocket's ``ws.logger``), else
        pyws's ``pyws.websocket``."""
        handler_logger = getattr(self.handler, "logger", None)
        return handler_logger if isinstance(handler_logger, logging.Logger) else logger

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<{type(self).__name__} {self.path!r} {state}>"

    # -- receiving -----------------------------------------------------------

    def receive(self) -> Optional[Message]:
        """Return the next message: str (text) or bytes (binary).

        gevent-websocket's contract: once the connection is over (closed by
        either side, failed, or lost) receive() returns None, once; the call
        after raises ConnectionClosed (a WebSocketError), so that a loop that
        never checks for None ends instead of spinning.  Messages that
        arrived before the end are all returned first.  ``close_code`` and
        ``close_reason`` tell how it ended: a protocol violation by the peer
        fails the connection with its close code (1002, 1007; 1009 for a
        message over ``max_message_size``), logged on ``pyws.websocket``.
        Pings are answered and the closing handshake completed on the way."""
        messages = self._messages
        if messages:
            return messages.popleft()
        message = self._receive(None)
        if message is None:
            if self._end_told:
                raise self._closed_error()
            self._end_told = True
        return message

    def _receive(self, deadline: Optional[float]) -> Optional[Message]:
        """The next message, or None once the connection is over;
        socket.timeout at ``deadline`` (time.monotonic()) if one is given."""
        messages = self._messages
        if messages:
            return messages.popleft()
        self._used = True
        proto = self._proto
        if self._deferred and not proto.message_ready:
            # The burst is over: what send() deferred during it goes out
            # before this receive() reads or waits.
            self._flush_deferred(True)
        # acquire/release rather than `with`: a `with` keeps a bound
        # __exit__ alive for as long as the wait, on every idle connection.
        fill = self._transport.fill
        lock = self._read_lock
        if deadline is None:
            lock.acquire()
        elif not lock.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
            raise socket.timeout("timed out")
        try:
            while True:
                messages = self._messages
                if messages:
                    return messages.popleft()
                if self._dead:
                    return None
                # Nothing queued: no queue while waiting (_process makes one).
                self._messages = None
                try:
                    got = fill(proto, deadline, self._deferred)
                except socket.timeout:
                    if deadline is not None:
                        raise
                    self._eof()  # the socket's own timeout: the connection is over
                    continue
                except OSError:  # closed by another task
                    self._eof()
                    continue
                if got.__class__ is int:
                    if got == EVENTS:
                        self._process()
                    else:
                        self._eof()
                    continue
                if self._timers is not None:
                    self._last_rx = time.monotonic()
                return got  # type: ignore[return-value]
        finally:
            lock.release()

    def __iter__(self) -> Iterator[Message]:
        """Yield messages until the connection is over (never raises at
        the end)."""
        while True:
            message = self.next_message()
            if message is None:
                return
            yield message

    def next_message(self) -> Optional[Message]:
        """The next message, or None once the connection is over, as often
        as asked: iteration's step (here and in pyws.asyncio)."""
        message = self._receive(None)
        if message is None:
            self._end_told = True
        return message

    def _process(self, data: Optional[bytes] = None) -> None:
        """Feed ``data`` (if any) to the engine, write what it answers, queue
        its events, tear down once it is closed."""
        proto = self._proto
        with self._lock:
            if data is not None:
                proto.receive_data(data)
            # Taken first: taking a close or failure puts our close frame in
            # the output (after the replies to the messages before it).
            events = proto.events_received()
            error = self._flush_locked(self._transport.flush(proto))
        if self._timers is not None:
            self._last_rx = time.monotonic()
        messages = self._messages
        failed = False
        for kind, value in events:
            if kind in (_TEXT, _BINARY):
                if messages is None:
                    messages = self._messages = deque()
                messages.append(value)  # type: ignore[arg-type]
            elif kind == _PONG:
                if value == self._ping_payload:
                    self._ping_payload = None
            elif kind == _FAIL:
                failed = True
                _log_failure(self, *cast(Tuple[int, str], value))
            # PING: the engine already queued the pong, written above.
            # CLOSE: the engine queued the echo; the state says what to do.
        if error is not None or proto.state == _CLOSED:
            self._teardown(linger=error is None and failed)

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
        transport = self._transport
        if linger:
            self._linger()
        # shutdown() wakes any reader blocked on this socket (another thread
        # or greenlet) and sends FIN even while a buffered rfile keeps the
        # descriptor open.
        transport.shutdown()
        if self._close_socket:
            transport.close()
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
        transport = self._transport
        if not transport.shutdown(socket.SHUT_WR):
            return
        deadline = time.monotonic() + min(self.close_timeout or _LINGER_TIME, _LINGER_TIME)
        drained = 0
        while drained < _LINGER_BYTES and time.monotonic() < deadline:
            try:
                data = transport.recv_raw(deadline)
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

    def send(self, message: Union[str, bytes, bytearray, memoryview],
             binary: Optional[bool] = None) -> None:
        """Send one message.

        str goes as text and bytes-like as binary, unless ``binary`` says
        otherwise (text from bytes must be valid UTF-8: ValueError otherwise;
        binary from str is its UTF-8 encoding).  Raises ConnectionClosed when
        the connection is closed (so echoing receive()'s None ends a loop that
        way), TypeError for None on an open connection or a message that is
        not bytes-like."""
        if self._dead or message is None:
            self._refuse(message)
        self._used = True
        proto = self._proto
        transport = self._transport
        lock = self._lock
        try:
            if transport.cooperative and not lock.locked():
                # Greenlets do not preempt one another and this write does
                # not wait, so nothing can come between the check and the
                # write; the lock is taken only if the socket does not take
                # the whole frame.
                if self._defers and proto.message_ready:
                    self._defer(message, binary)
                    return
                # The cooperative transport is gevent's fd transport: the
                # engine writes the frame from the message's own buffer.
                left = proto.send_to(transport.fileno(), message, binary)
                if left:
                    self._finish_write(left)
                return
            with lock:
                error = self._flush_locked(transport.send_message(proto, message, binary))
        except TypeError:
            # The engine takes str and bytes-like objects only; say so in
            # words a user can act on (not the buffer protocol's).
            if isinstance(message, (str, bytes, bytearray, memoryview)):
                raise
            self._refuse(message)
        if error is not None:
            self._fail_write(error)

    def _defer(self, message: Union[str, bytes, bytearray, memoryview],
               binary: Optional[bool]) -> None:
        """send() while the next received message is already complete: the
        application is answering a burst (pipelined requests), so its
        replies gather in the engine and leave in one write when the burst
        ends (the receive() that finds no message ready, or the hub's next
        turn), not in one system call and one TCP segment each."""
        queued = self._proto.queue_message(message, binary)
        if not self._deferred:
            self._deferred = True
            cast(GeventTransport, self._transport).call_soon(self._flush_deferred, False)
        if queued >= _DEFER_LIMIT:
            self._flush_deferred(True)

    def _flush_deferred(self, wait: bool) -> None:
        """Write the frames send() deferred.  From receive() (``wait``), the
        rest goes out as the socket drains, as send() would; from the hub's
        callback, which must not block, by a task of its own."""
        if not self._deferred:
            return
        self._deferred = False
        if self._lock.locked():
            return  # its holder writes the engine's output, these frames first
        left = self._transport.flush(self._proto)
        if left == 0:
            return
        if wait:
            self._finish_quietly(left)
        else:
            self._transport.spawn(self._finish_quietly, left, name="pyws-flush")

    def _finish_quietly(self, left: int) -> None:
        """_finish_write for deferred frames: a socket error ends the
        connection, which the application meets at its next call."""
        try:
            self._finish_write(left)
        except ConnectionClosed:
            pass

    def _finish_write(self, left: int) -> None:
        """The rest of a frame a lock-free send began (see send)."""
        with self._lock:
            error = self._flush_locked(left)
        if error is not None:
            self._fail_write(error)

    def _flush_locked(self, left: int) -> Optional[OSError]:
        """Under the send lock: write the engine's output as the socket
        becomes writable, ``left`` bytes (or -errno) to start with.  None
        once all is written; else the error, the engine told of the EOF."""
        self._deferred = False  # whatever waited in the engine goes out now
        transport = self._transport
        proto = self._proto
        error: Optional[OSError] = None
        while left > 0:
            try:
                transport.wait_writable()
                left = transport.flush(proto)
            except OSError as exc:
                error = exc
                break
        if left == 0 and error is None:
            return None
        if error is None:
            error = OSError(-left, os.strerror(-left))
        if proto.state != _CLOSED:
            proto.receive_eof()
        return error

    def _fail_write(self, error: OSError) -> NoReturn:
        self._teardown()
        raise ConnectionClosed(1006, f"socket error while sending: {error}") from error

    def _write_control(self, queue: Callable[[Any], None], data: Any) -> None:
        """Queue a control frame with the engine and write it, under the lock."""
        with self._lock:
            queue(data)
            error = self._flush_locked(self._transport.flush(self._proto))
        if error is not None:
            self._fail_write(error)

    def send_encoded(self, frame: bytes) -> None:
        """Write one complete frame encoded beforehand (by
        ``pyws._core.encode_frame``), as a broadcast does: the same bytes go
        to many sockets.  Server side only, since server frames are not
        masked.  Raises ConnectionClosed once a close frame was sent."""
        if not self._proto.is_server:
            raise ValueError("send_encoded() is for server-side WebSockets: "
                             "client frames must be masked one by one")
        proto = self._proto
        with self._lock:
            if proto.close_sent or self._dead:
                raise self._closed_error()
            # Frames send() deferred are still in the engine: they go first.
            error = self._flush_locked(self._transport.flush(proto))
            if error is None:
                error = self._send_bytes(frame)
        if error is not None:
            self._fail_write(error)

    def _send_bytes(self, data: Union[bytes, memoryview]) -> Optional[OSError]:
        """Under the lock: write bytes that bypass the engine (an encoded
        frame); None, or the error, the engine told of the EOF."""
        try:
            self._transport.send_all(data)
            return None
        except OSError as exc:
            if self._proto.state != _CLOSED:
                self._proto.receive_eof()
            return exc

    def _refuse(self, message: object) -> NoReturn:
        if self.closed:
            raise self._closed_error()
        hint = ""
        if isinstance(message, (dict, list, tuple)):
            hint = "; to send it as JSON: ws.send(json.dumps(message))"
        raise TypeError(f"cannot send {type(message).__name__}: a message is str (sent as "
                        f"text) or bytes-like (sent as binary){hint}")

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
        self._write_control(self._proto.send_ping, data)

    # -- the hub's way in ----------------------------------------------------

    def frame_writer(self) -> FrameWriter:
        """This connection's writer for pyws.Hub (package-internal)."""
        writer = self._writer
        if writer is None:
            writer = self._writer = FrameWriter(self)
        return writer

    # -- closing -------------------------------------------------------------

    def close(self, code: int = 1000,
              message: Union[str, bytes, None] = b"") -> None:
        """Close the connection: send a close frame with ``code`` and
        ``message`` (unless one was sent already), wait for the peer's close
        frame (at most ``close_timeout`` seconds), then close the socket.
        Data messages that arrive before the peer's close frame are kept for
        ``receive()`` (another thread's, or a later call; up to 4 MiB), then
        it returns None.  Idempotent.  ValueError for a code an endpoint may
        not send or a reason over 123 bytes."""
        self._used = True
        if self._dead:
            return
        proto = self._proto
        sent = True
        with self._lock:
            if proto.state == _OPEN:
                proto.send_close(code, message or b"")
                sent = self._flush_locked(self._transport.flush(proto)) is None
        if sent and not proto.close_received:
            self._await_close(self.close_timeout)
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
        proto = self._proto
        try:
            while not self._dead:
                if deadline is not None and time.monotonic() >= deadline:
                    return
                try:
                    got = self._transport.fill(proto, deadline)
                except OSError:
                    return
                if got.__class__ is not int:
                    # Sent by the peer before it saw our close: kept, as
                    # valid data, unless a flood makes that costly.
                    if self._messages is None:
                        self._messages = deque()
                    self._messages.append(got)  # type: ignore[arg-type]
                elif got != EVENTS:
                    return
                else:
                    self._process()
                messages = self._messages
                if messages and sum(map(len, messages)) > _CLOSING_KEEP:
                    logger.info("WebSocket %s: over %d bytes arrived while closing; "
                                "dropped", self.path, _CLOSING_KEEP)
                    self._messages = None
        finally:
            self._read_lock.release()

    # -- keepalive and idle timers -------------------------------------------

    def _timer_tick(self) -> None:
        """A timer of this connection may be due (run in a task of its own
        by its TimerQueue): read what arrived, then ping, drop or close as
        the timers say, and queue the next due time."""
        if self._dead:
            return
        try:
            if time.monotonic() >= self._next_due():  # else activity moved it
                self._poll()
                if not self._dead:
                    self._check_timers(time.monotonic())
        except Exception:
            logger.exception("WebSocket %s: keepalive task failed", self.path)
        timers = self._timers
        if timers is not None and not self._dead:
            timers.add(self._next_due(), self)

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
        transport = self._transport
        proto = self._proto
        try:
            for _ in range(_POLL_READS):
                if self._dead or not transport.readable():
                    return
                try:
                    got = transport.fill(proto, time.monotonic(), self._deferred)
                except socket.timeout:
                    return  # what was there is in the engine
                except OSError:
                    self._eof()
                    return
                if got.__class__ is not int:
                    self._last_rx = time.monotonic()
                    if self._messages is None:
                        self._messages = deque()
                    self._messages.append(got)  # type: ignore[arg-type]
                elif got == EVENTS:
                    self._process()
                else:
                    self._eof()
                    return
        finally:
            self._read_lock.release()

    def _check_timers(self, now: float) -> None:
        idle = self.idle_timeout
        if idle is not None and now - self._last_rx >= idle:
            logger.info("WebSocket %s: nothing received for %gs, closing", self.path, idle)
            WebSocket.close(self, 1001, "idle timeout")  # not a subclass's contract
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
                    self._flush_locked(self._transport.flush(proto))
                except OSError:
                    pass
        self._eof()

    def __enter__(self) -> WebSocket:
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()


class _NoApp:
    """``current_app`` when the server's application has none."""

    def on_close(self, *args: Any) -> None:
        pass


_NO_APP = _NoApp()


class FrameWriter:
    """What pyws.Hub may do with a member's connection, and nothing more:
    write a broadcast frame to the socket now when nothing else is on its
    way there, or hand it to the session's ordered send path.

    The fan-out (``_core.fanout``) writes one encoded frame to many
    descriptors with one non-blocking send each; ``direct_fd`` says whether
    this member may be one of them.  When a socket takes only part of a
    frame, ``reserve`` takes the connection's send lock at once, so that
    nothing comes between the two parts, and ``write_rest`` (from the
    member's writer task) writes the end and releases it."""

    __slots__ = ("_ws", "_lock", "_proto", "_transport", "direct")

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws
        self._lock = ws._lock
        self._proto = ws._proto
        self._transport = ws._transport
        #: Whether the fan-out may ever write this socket directly: a plain
        #: gevent socket (TLS has its own framing; with threads, another
        #: thread could close the descriptor between the check and the write).
        self.direct = ws._transport.direct and ws._transport.cooperative

    @property
    def transport(self) -> Transport:
        return self._transport

    def direct_fd(self) -> int:
        """The descriptor a frame may be written to right now, or -1: nobody
        else is writing (or stuck half-way through a frame), no replies the
        session deferred wait in the engine, and the connection is open.  The
        caller must not yield between this check and its write."""
        ws = self._ws
        if (self.direct and not self._lock.locked() and not ws._deferred
                and self._proto.state == _OPEN):
            return self._transport.fileno()
        return -1

    def reserve(self) -> None:
        """Take the send lock for ``write_rest`` (the lock is free: the
        caller saw ``direct_fd() >= 0`` without yielding since)."""
        self._lock.acquire()

    def write_rest(self, rest: Union[bytes, memoryview]) -> None:
        """Write the end of a frame whose start the fan-out wrote, and release
        the lock ``reserve`` took.  ConnectionClosed if the socket fails."""
        ws = self._ws
        try:
            error = ws._send_bytes(rest)
        finally:
            self._lock.release()
        if error is not None:
            ws._fail_write(error)

    def write(self, frame: bytes) -> None:
        """Write a whole encoded frame through the session's send path."""
        self._ws.send_encoded(frame)


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


#: Whether a message over the limit was refused yet in this process: the
#: first one is logged at WARNING (a program moved from a library without a
#: limit meets it there), the others at INFO.
_limit_warned = False


def _log_failure(ws: WebSocket, code: int, reason: str) -> None:
    """Log that the peer broke the protocol and the connection was failed."""
    global _limit_warned
    if code == 1009:
        limit = ws._proto.max_message_size
        if not _limit_warned:
            _limit_warned = True
            logger.warning(
                "WebSocket %s: a message over max_message_size (%d bytes) was refused "
                "and the connection closed with 1009; set max_message_size to a "
                "larger number of bytes (0: no limit) on the server, Sock or connect() "
                "to accept bigger messages (logged at WARNING once per process)",
                ws.path, limit)
            return
        logger.info("WebSocket %s: message over max_message_size (%d bytes), closed "
                    "with 1009", ws.path, limit)
        return
    logger.info("WebSocket %s: the peer broke the protocol: %s; closed with %d",
                ws.path, reason or "protocol error", code)


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
