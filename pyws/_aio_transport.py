"""The asyncio transport: one WebSocket's bytes through an asyncio transport.

``AsyncioTransport`` is both pyws's transport for the session
(pyws/transport.py's interface) and the asyncio ``Protocol`` of the
connection once the opening handshake is over: asyncio's callbacks fill its
buffers, and the session's blocking calls, which run in pyws/_aio.py's
worker greenlets, wait on futures that those callbacks complete.  It works
over any asyncio transport (plain TCP, TLS, uvicorn's, uvloop's).

Flow control, both ways, with no unbounded buffer:

- reading: bytes that arrived and that no ``receive()`` took yet are held
  here up to ``read_limit`` (64 KiB by default); then asyncio is told to
  pause reading, so the peer's TCP window closes, until the session takes
  them;
- writing: a frame goes into asyncio's write buffer at once; once asyncio
  says the buffer is over its high-water mark (``pause_writing``), the send
  that put it there waits until it drains below the low-water mark
  (``resume_writing``), as ``send()`` waits on a full socket elsewhere.
"""
from __future__ import annotations

import asyncio
import errno
import socket
import time
from typing import Any, Callable, List, Optional, Union

from . import _aio, _core
from ._timers import TimerQueue
from .transport import Transport

__all__ = ["AsyncioTransport", "READ_LIMIT"]

#: Bytes received and not yet taken by the session before reading pauses.
READ_LIMIT = 64 * 1024


class AsyncioTransport(Transport, asyncio.Protocol):
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

    def data_received(self, data: bytes) -> None:
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

    # -- the world: asyncio tasks, in worker greenlets ------------------------

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

    # -- the session's side ---------------------------------------------------

    def readable(self) -> bool:
        return bool(self._incoming) or self._eof

    def recv_raw(self, deadline: Optional[float]) -> bytes:
        while not self._incoming:
            if self._eof:
                return b""
            reader = self._reader = self.loop.create_future()
            try:
                _aio.wait_future(reader, None if deadline is None
                                 else max(deadline - time.monotonic(), 0.0))
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
            _aio.wait_future(drain, None if deadline is None
                             else max(deadline - time.monotonic(), 0.0))
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
