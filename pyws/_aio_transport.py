"""The asyncio transports: how one WebSocket's bytes move under an event loop.

Chosen per connection by ``transport_for``, once the opening handshake is
over:

- ``AsyncioFdTransport``, for a plain TCP (or Unix) socket: the C engine
  reads and writes the socket itself, as under gevent; asyncio's transport
  of the connection is paused, and a reader callback on a duplicate of the
  descriptor reads for the waiting receive (see the class).
- ``AsyncioTransport``, for everything else (TLS, uvloop's or another
  loop's transports): the asyncio (buffered) protocol of the connection;
  asyncio's callbacks fill its buffers.

Either way the session's blocking calls run in pyws/_aio.py's worker
greenlets and wait on futures the loop's callbacks complete; a receive may
also await readiness in the coroutine itself (``read_soon``).

Flow control, both ways, with no unbounded buffer:

- reading: the fd transport reads only when a receive asks, so the peer's
  TCP window closes behind a slow reader; the other holds at most
  ``read_limit`` bytes (64 KiB) that no receive took, then pauses asyncio's
  reading until the session takes them;
- writing: the fd transport writes a frame at once, and a frame the socket
  does not take whole is finished as it drains while the next send waits;
  the other hands frames to asyncio's write buffer, and once asyncio says
  it is over its high-water mark (``pause_writing``) the send that put it
  there waits until it drains below the low-water mark (``resume_writing``).
"""
from __future__ import annotations

import asyncio
import errno
import os
import select
import socket
import sys
import threading
from typing import Any, Callable, List, Optional, Union

from . import _aio, _core
from ._timers import TimerQueue
from .transport import _WAIT, DIRECT_IO, EVENTS, Received, Transport, _FdTransport

__all__ = ["AsyncioTransport", "AsyncioFdTransport", "transport_for", "READ_LIMIT"]

#: Bytes received and not yet taken by the session before reading pauses.
READ_LIMIT = 64 * 1024


_READ_SIZE = 65536


class _Scratch(threading.local):
    """The buffer asyncio reads into (``get_buffer``), one per thread: asyncio
    calls ``get_buffer``, reads, and calls ``buffer_updated`` in one go, so
    the connections of a loop can share it.  A plain ``Protocol`` would get
    a new 256 KiB bytes object per read from asyncio, which glibc maps and
    unmaps each time (three system calls per message)."""

    def __init__(self) -> None:
        self.view = memoryview(bytearray(_READ_SIZE))


_scratch = _Scratch()


class _AsyncioWorld:
    """The concurrency of an asyncio connection's world: tasks of the loop,
    whose blocking session calls run in pyws/_aio.py's workers."""

    __slots__ = ()

    loop: asyncio.AbstractEventLoop

    def new_lock(self) -> Any:
        return _aio.Lock()

    def new_event(self) -> Any:
        return _aio.Event()

    def new_queue(self, maxsize: int) -> Any:
        return _aio.Queue(maxsize)

    def spawn(self, function: Callable[..., None], *args: Any, name: str = "pyws") -> None:
        _aio.spawn(function, *args)

    def timers(self) -> TimerQueue:
        return _aio.loop_timers()

    def call_soon(self, function: Callable[..., None], *args: Any) -> None:
        self.loop.call_soon(function, *args)

    def may_wait(self) -> bool:
        return _aio.in_worker()


class AsyncioTransport(_AsyncioWorld, Transport, asyncio.BufferedProtocol):
    """The session's transport over the asyncio transport ``aio`` (see the
    module docstring).  Make it the protocol of ``aio`` (``set_protocol``)
    or let asyncio create it; bytes that arrived before go in ``pending``
    of the WebSocket."""

    __slots__ = ("aio", "loop", "read_limit", "_incoming", "_size", "_eof", "_error",
                 "_reader", "_drain", "_reading_paused", "_writing_paused", "on_lost")

    def __init__(self, aio: Optional[asyncio.BaseTransport] = None,
                 read_limit: int = READ_LIMIT) -> None:
        super().__init__(None)
        self.aio: Any = None
        self.loop = asyncio.get_running_loop()
        self.read_limit = read_limit
        self._incoming: List[bytes] = []
        self._size = 0
        self._eof = False
        self._error: Optional[BaseException] = None
        self._reader: Optional[asyncio.Future[None]] = None
        self._drain: Optional[asyncio.Future[None]] = None
        self._reading_paused = False
        self._writing_paused = False
        #: Called once when the connection is lost (the server forgets it).
        self.on_lost: Optional[Callable[[], None]] = None
        if aio is not None:
            self.connection_made(aio)

    # -- asyncio's side -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.aio = transport
        self.sock = transport.get_extra_info("socket")

    def get_buffer(self, sizehint: int) -> memoryview:
        return _scratch.view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(_scratch.view[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        """Bytes that arrived (asyncio calls ``buffer_updated``; a caller
        that hands over bytes it read calls this)."""
        if self._eof:
            return
        self._incoming.append(data)
        self._size += len(data)
        if self._size >= self.read_limit and not self._reading_paused:
            self._reading_paused = True
            self.aio.pause_reading()
        self._wake_reader()

    def eof_received(self) -> Optional[bool]:
        self._eof = True
        self._wake_reader()
        return None  # asyncio closes the transport; our close frame is flushed first

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self._eof = True
        self._error = exc or ConnectionResetError(errno.ECONNRESET, "connection lost")
        self._wake_reader()
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)
        callback, self.on_lost = self.on_lost, None
        if callback is not None:
            callback()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    def _wake_reader(self) -> None:
        reader = self._reader
        if reader is not None and not reader.done():
            reader.set_result(None)

    # -- the session's side ---------------------------------------------------

    def readable(self) -> bool:
        return bool(self._incoming) or self._eof

    def recv_raw(self, deadline: Optional[float]) -> bytes:
        while not self._incoming:
            if self._eof:
                return b""
            reader = self._reader = self.loop.create_future()
            try:
                _aio.wait_until(reader, deadline)
            finally:
                self._reader = None
        incoming = self._incoming
        data = incoming[0] if len(incoming) == 1 else b"".join(incoming)
        incoming.clear()
        self._size = 0
        if self._reading_paused:
            self._reading_paused = False
            if not self._eof:
                self.aio.resume_reading()
        return data

    def flush(self, proto: _core.Protocol) -> int:
        """Hand the engine's output to asyncio; what the session must still
        wait for: the bytes asyncio holds while it asks us to stop writing."""
        data = proto.data_to_send()
        if data:
            return self.write_bytes(data)
        return self._backlog()

    def write_bytes(self, data: Union[bytes, memoryview]) -> int:
        """Write ``data`` (an encoded frame); as ``flush``."""
        aio = self.aio
        if self._error is not None or aio.is_closing():
            return -errno.EPIPE
        aio.write(data)
        return self._backlog()

    def _backlog(self) -> int:
        if self._writing_paused and self._error is None:
            return max(int(self.aio.get_write_buffer_size()), 1)
        return 0

    def wait_writable(self, deadline: Optional[float] = None) -> None:
        if not self._writing_paused or self._error is not None:
            return
        drain = self._drain = self.loop.create_future()
        try:
            _aio.wait_until(drain, deadline)
        finally:
            self._drain = None
        if self._error is not None:
            raise OSError(errno.EPIPE, f"connection lost: {self._error}")

    def send_all(self, data: Union[bytes, memoryview]) -> None:
        left = self.write_bytes(data)
        if left < 0:
            raise OSError(-left, "connection lost")
        while left > 0:
            self.wait_writable()
            left = self._backlog()

    def shutdown(self, how: int = socket.SHUT_RDWR) -> bool:
        """Stop writing after what is buffered (``SHUT_WR``), and, for
        ``SHUT_RDWR``, stop reading too: a waiting reader sees the end."""
        aio = self.aio
        if how != socket.SHUT_RD and not aio.is_closing():
            try:
                if aio.can_write_eof():
                    aio.write_eof()
            except (OSError, RuntimeError, NotImplementedError):
                return False
        if how != socket.SHUT_WR:
            self._eof = True
            self._wake_reader()
        return True

    def close(self) -> None:
        self._eof = True
        self._wake_reader()
        self.aio.close()


class AsyncioFdTransport(_AsyncioWorld, _FdTransport):
    """A plain TCP (or Unix) connection under asyncio: the C engine reads and
    writes the socket itself, as under gevent, and a wait is a future that a
    reader or writer callback of the loop completes.

    asyncio's own transport of the connection is paused and never written
    again; the loop refuses callbacks on a descriptor that a transport owns,
    so ours watch a duplicate of it (``os.dup``: the same socket under
    another number).  The reader stays registered while receives follow one
    another, and its callback reads for the waiting receive (one C call), so
    that a readiness the receive already consumed wakes nobody."""

    cooperative = True
    defers = True
    __slots__ = ("aio", "loop", "_fd", "_reader", "_reader_proto", "_deferred", "_watching",
                 "_kept", "_direct")

    def __init__(self, aio: asyncio.BaseTransport) -> None:
        original = aio.get_extra_info("socket")
        aio.pause_reading()  # type: ignore[attr-defined]
        raw = socket.socket(fileno=os.dup(original.fileno()))
        raw.setblocking(False)
        super().__init__(raw, raw)
        self.aio: Any = aio
        self.loop = asyncio.get_running_loop()
        self._fd = raw.fileno()
        self._reader: Optional[asyncio.Future[Any]] = None
        self._reader_proto: Optional[_core.Protocol] = None
        self._deferred = False
        self._watching = False
        # What the reader callback read for a receive cancelled before it
        # could take it: the next fill returns it, so no message is lost.
        self._kept: Optional[Received] = None
        self._direct = False  # a coroutine awaits the shared reader future itself

    @staticmethod
    def usable(aio: asyncio.BaseTransport) -> bool:
        """Whether ``aio`` can be served this way: a plain stream socket
        (not TLS), nothing left in asyncio's write buffer, a loop with
        reader callbacks, and direct I/O not turned off (PYWS_PLAIN_IO)."""
        sock = aio.get_extra_info("socket")
        return (DIRECT_IO and sock is not None and aio.get_extra_info("sslcontext") is None
                and sock.type == socket.SOCK_STREAM
                and hasattr(aio, "pause_reading")
                and aio.get_write_buffer_size() == 0  # type: ignore[attr-defined]
                and sys.platform != "win32")  # the Proactor loop has no reader callbacks

    def fill(self, proto: _core.Protocol, deadline: Optional[float] = None,
             deferred: bool = False) -> Received:
        while True:
            kept = self._kept
            if kept is not None:
                self._kept = None
                return kept
            got = proto.receive_from(self._fd, False, deferred)
            if got.__class__ is not int or got != _WAIT:
                return got
            self._wait_read(self.read_soon(proto, deferred), deadline)

    def take(self, proto: _core.Protocol, deferred: bool) -> Received:
        """A message the reader callback kept, or one read now without
        waiting; else an int as ``receive_from``'s (a kept one stays for
        ``fill``).  For ``WebSocket.take_ready``."""
        kept = self._kept
        if kept is not None:
            if kept.__class__ is int:
                return EVENTS
            self._kept = None
            return kept
        return proto.receive_from(self._fd, False, deferred)

    def read_soon(self, proto: Optional[_core.Protocol], deferred: bool,
                  direct: bool = False) -> Optional[asyncio.Future[None]]:
        """A future done once the socket was readable and, with ``proto``,
        its ``receive_from`` had more than a wait to say (kept for ``take``
        and ``fill``, so that a waiter cancelled meanwhile loses nothing).
        Every waiter of the moment shares it.  One coroutine may await it
        ``direct``ly (then call ``read_done``), which cancels it if that
        coroutine is cancelled; a second gets None.  Others wait on a future
        of their own chained to it (``_wait_read``), so that neither a
        cancellation nor a timeout of theirs reaches the shared one."""
        if self._fd < 0 or self.fileno() < 0:
            raise OSError(errno.EBADF, "socket closed")
        if direct:
            if self._direct:
                return None
            self._direct = True
        reader = self._reader
        if reader is None or reader.done():
            reader = self._reader = self.loop.create_future()
        self._reader_proto = proto
        self._deferred = deferred
        if not self._watching:
            self.loop.add_reader(self._fd, self._on_readable)
            self._watching = True
        return reader

    def read_done(self) -> None:
        """The direct waiter of ``read_soon`` is no longer waiting."""
        self._direct = False

    def _wait_read(self, reader: Optional[asyncio.Future[None]],
                   deadline: Optional[float]) -> None:
        assert reader is not None
        waiter: asyncio.Future[None] = self.loop.create_future()

        def wake(_: asyncio.Future[None]) -> None:
            if not waiter.done():
                waiter.set_result(None)  # done, failed or cancelled: look again

        reader.add_done_callback(wake)
        try:
            _aio.wait_until(waiter, deadline)
        finally:
            reader.remove_done_callback(wake)
        if reader.done() and not reader.cancelled() and reader.exception() is not None:
            raise reader.exception()  # type: ignore[misc]

    def _on_readable(self) -> None:
        reader = self._reader
        if reader is None or reader.done():
            # Nobody waits: stop watching (readiness would repeat every turn).
            self.loop.remove_reader(self._fd)
            self._watching = False
            return
        proto = self._reader_proto
        if proto is not None:
            try:
                got = proto.receive_from(self._fd, True, self._deferred)
            except BaseException as exc:
                reader.set_exception(exc)
                return
            if got.__class__ is int and got == _WAIT:
                return  # the readiness was consumed already, or the message is not complete
            self._kept = got
        reader.set_result(None)

    def wait(self, write: bool, deadline: Optional[float]) -> None:
        if not write:
            self._wait_read(self.read_soon(None, False), deadline)
            return
        if self.fileno() < 0:
            raise OSError(errno.EBADF, "socket closed")
        writer = self.loop.create_future()
        self.loop.add_writer(self._fd, _wake, writer)
        try:
            _aio.wait_until(writer, deadline)
        finally:
            self.loop.remove_writer(self._fd)

    def readable(self) -> bool:
        try:
            return bool(select.select([self._fd], [], [], 0)[0])
        except (OSError, ValueError):
            return True

    def send_all(self, data: Union[bytes, memoryview]) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = self.sock.send(view)
            except BlockingIOError:
                self.wait(True, None)
                continue
            view = view[sent:]

    def close(self) -> None:
        if self._watching:
            self.loop.remove_reader(self._fd)
            self._watching = False
        reader = self._reader
        if reader is not None and not reader.done():
            reader.set_exception(OSError(errno.EBADF, "socket closed"))
        super().close()  # the duplicate
        self.aio.close()  # the socket itself, through asyncio's bookkeeping


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def transport_for(aio: asyncio.BaseTransport) -> Transport:
    """The transport for a connection asyncio serves, past its handshake: the
    fd transport when it can be used, else one through asyncio's transport
    (made the protocol of ``aio`` here)."""
    if AsyncioFdTransport.usable(aio):
        return AsyncioFdTransport(aio)
    transport = AsyncioTransport(aio)
    aio.set_protocol(transport)
    return transport
