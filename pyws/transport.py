"""Transports: how one WebSocket's bytes move between its engine and its socket.

The session (pyws/websocket.py) is written once over this small interface;
a transport is chosen once, when the WebSocket is created, from what the
socket really is (``transport_for``):

- ``GeventTransport``: a plain gevent socket, monkey-patched or not.  The C
  engine reads and writes the descriptor itself and a waiting greenlet parks
  on the socket's watcher (pyws/_gevent.py); receiving a message is one C
  call (``Protocol.read_message``).  Greenlets do not preempt one another, so
  a send that the socket takes whole needs no lock (``cooperative``).
- ``BlockingTransport``: a plain stdlib socket under threads.  The engine
  does the I/O on the descriptor; waits are ``poll()`` calls.
- ``StreamTransport``: anything else (TLS, wrappers, gevent's TLS): the
  socket's own ``recv`` and ``sendall`` move the bytes.

Every method that moves bytes returns what the session must know and raises
``OSError`` when the socket fails or a wait times out (``socket.timeout``).
What ``fill`` returns: a message (``str`` or ``bytes``), or ``EVENTS`` (the
engine has events or output for the session to handle), or ``EOF``.
"""
from __future__ import annotations

import errno
import os
import select
import socket
import ssl
import threading
import time
from types import ModuleType
from typing import Any, Callable, Optional, Tuple, Union

from . import _core, _gevent
from ._timers import TimerQueue, thread_timers

__all__ = ["Transport", "GeventTransport", "BlockingTransport", "StreamTransport",
           "transport_for", "client_modules", "EVENTS", "EOF"]

# What Protocol.receive_from answers when it has no message (see _core.pyi).
_WAIT = 0
#: fill(): the engine has events or output for the session.
EVENTS = 1
#: fill(): the stream ended or broke.
EOF = 2

_READ_SIZE = 65536

Received = Union[str, bytes, int]


class Transport:
    """The interface, and the behaviour of a socket reached through its own
    Python methods (``StreamTransport``)."""

    #: Greenlets: nothing runs between a check and a write that does not wait.
    cooperative = False
    #: The engine reads and writes ``fileno()`` itself; the hub's fan-out may
    #: write a frame to it directly.
    direct = False

    __slots__ = ("sock", "fileno")

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        #: The descriptor, -1 once the socket is closed (so that a system
        #: call on a closed socket fails instead of reaching a reused number).
        self.fileno: Callable[[], int] = self._checked_fileno

    # -- concurrency of this socket's world ---------------------------------

    def new_lock(self) -> Any:
        """A non-reentrant lock that blocks as this socket blocks."""
        return threading.Lock()

    def new_event(self) -> Any:
        return threading.Event()

    def new_queue(self, maxsize: int) -> Any:
        import queue

        return queue.Queue(maxsize)

    def spawn(self, function: Callable[..., None], *args: Any, name: str = "pyws") -> None:
        """Run ``function(*args)`` concurrently (a daemon thread here)."""
        threading.Thread(target=function, args=args, name=name, daemon=True).start()

    def timers(self) -> TimerQueue:
        """The queue that runs the keepalive and idle timers of this
        world's connections (pyws/_timers.py)."""
        return thread_timers()

    # -- bytes ---------------------------------------------------------------

    def _checked_fileno(self) -> int:
        try:
            fd: int = self.sock.fileno()
        except (OSError, ValueError):
            return -1
        return fd

    def fill(self, proto: _core.Protocol, deadline: Optional[float] = None,
             deferred: bool = False) -> Received:
        """Read into ``proto`` until something is there for the session.
        ``deadline`` (time.monotonic()): give up then (socket.timeout);
        None: the socket's own timeout applies.  ``deferred``: output the
        session deferred need not hold back a complete message."""
        if proto.has_events:
            return EVENTS  # a close the session left for after its messages
        data = self.recv_raw(deadline)
        if not data:
            return EOF
        proto.receive_data(data)
        return EVENTS

    def readable(self) -> bool:
        """Is something there to read (data or EOF), without waiting?"""
        pending = getattr(self.sock, "pending", None)
        if pending is not None and pending():
            return True  # TLS: decrypted bytes the descriptor does not show
        try:
            return bool(select.select([self.sock], [], [], 0)[0])
        except (OSError, ValueError):
            return True  # closed or broken: a read will tell

    def send_message(self, proto: _core.Protocol, message: Any, binary: Optional[bool]) -> int:
        """Send one message; the bytes of it still to write (``flush``),
        or -errno if the socket failed."""
        proto.queue_message(message, binary)
        return self.flush(proto)

    def flush(self, proto: _core.Protocol) -> int:
        """Write the engine's output; what is left, or -errno."""
        data = proto.data_to_send()
        if data:
            try:
                self.sock.sendall(data)
            except OSError as exc:
                return -(exc.errno or errno.EPIPE)
        return 0

    def wait_writable(self, deadline: Optional[float] = None) -> None:
        """Only fd transports leave output behind (flush writes it all here)."""

    def send_all(self, data: Union[bytes, memoryview]) -> None:
        """Write bytes that bypass the engine (an encoded frame), all of
        them, waiting as the socket drains; OSError if it fails."""
        self.sock.sendall(data)

    def shutdown(self, how: int = socket.SHUT_RDWR) -> bool:
        """Shut the socket down (``how`` as for ``socket.shutdown``): a
        reader waiting on it sees the end.  False if that failed."""
        try:
            self.sock.shutdown(how)
        except OSError:
            return False
        return True

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def recv_raw(self, deadline: Optional[float]) -> bytes:
        """One read of at most 64 KiB, by ``deadline`` if given (else within
        the socket's own timeout), bypassing nothing but the engine; b'' at
        EOF.  ``socket.timeout`` when nothing came in time."""
        sock = self.sock
        if deadline is None:
            data: bytes = sock.recv(_READ_SIZE)
            return data
        saved = sock.gettimeout()
        sock.settimeout(max(deadline - time.monotonic(), 0.0))
        try:
            data = sock.recv(_READ_SIZE)
        except (BlockingIOError, ssl.SSLWantReadError) as exc:
            raise socket.timeout("timed out") from exc
        finally:
            try:
                sock.settimeout(saved)
            except OSError:
                pass
        return data


StreamTransport = Transport


class _FdTransport(Transport):
    """The engine reads and writes the descriptor itself."""

    direct = True
    __slots__ = ()

    def __init__(self, sock: Any, raw: Any) -> None:
        super().__init__(sock)
        # A stdlib socket's own fileno(), in C: -1 once it is closed.
        self.fileno = raw.fileno

    def fill(self, proto: _core.Protocol, deadline: Optional[float] = None,
             deferred: bool = False) -> Received:
        readable = False
        while True:
            got = proto.receive_from(self.fileno(), readable)
            if got.__class__ is not int or got != _WAIT:
                return got
            self.wait(False, deadline)
            readable = True

    def send_message(self, proto: _core.Protocol, message: Any, binary: Optional[bool]) -> int:
        left: int = proto.send_to(self.fileno(), message, binary)
        return left

    def flush(self, proto: _core.Protocol) -> int:
        left: int = proto.flush_to(self.fileno())
        return left

    def wait_writable(self, deadline: Optional[float] = None) -> None:
        self.wait(True, deadline)

    def wait(self, write: bool, deadline: Optional[float]) -> None:
        raise NotImplementedError

    def recv_raw(self, deadline: Optional[float]) -> bytes:
        while True:
            try:
                data: bytes = os.read(self.fileno(), _READ_SIZE)
                return data
            except BlockingIOError:
                self.wait(False, deadline)


class BlockingTransport(_FdTransport):
    """A plain stdlib socket under threads: waits are poll() calls (which
    release the GIL), bounded by the socket's timeout if it has one."""

    __slots__ = ()

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock, sock)

    def wait(self, write: bool, deadline: Optional[float]) -> None:
        fd = self.fileno()
        if fd < 0:
            raise OSError(errno.EBADF, "socket closed")
        if deadline is None:
            timeout = self.sock.gettimeout()
        else:
            timeout = max(deadline - time.monotonic(), 0.0)
        poller = select.poll()
        poller.register(fd, select.POLLOUT if write else select.POLLIN)
        if not poller.poll(None if timeout is None else timeout * 1000.0):
            raise socket.timeout("timed out")

    def recv_raw(self, deadline: Optional[float]) -> bytes:
        self.wait(False, deadline)  # the socket may be blocking: never read blind
        return super().recv_raw(deadline)


class _GeventTasks:
    """The concurrency of a gevent socket's world: greenlets and gevent's
    locks, events and queues."""

    __slots__ = ()

    def new_lock(self) -> Any:
        return _gevent.new_lock()

    def new_event(self) -> Any:
        return _gevent.new_event()

    def new_queue(self, maxsize: int) -> Any:
        return _gevent.new_queue(maxsize)

    def spawn(self, function: Callable[..., None], *args: Any, name: str = "pyws") -> None:
        _gevent.spawn(function, *args)

    def timers(self) -> TimerQueue:
        queue: TimerQueue = _gevent.per_hub("pyws.timers", _new_gevent_timers)
        return queue


def _new_gevent_timers() -> TimerQueue:
    return TimerQueue(_gevent.new_lock, _gevent.new_event, _gevent.spawn)


class GeventTransport(_GeventTasks, _FdTransport):
    """A plain gevent socket, patched or not (see the module docstring)."""

    cooperative = True
    __slots__ = ("waiter",)

    def __init__(self, sock: Any) -> None:
        waiter = self.waiter = _gevent.SocketWaiter(sock)
        super().__init__(sock, waiter.raw)

    def call_soon(self, function: Callable[..., None], *args: Any) -> None:
        """Run ``function(*args)`` at the hub's next turn (the session's
        replies to a burst, which only this transport defers)."""
        _gevent.call_soon(self.sock, function, *args)

    def fill(self, proto: _core.Protocol, deadline: Optional[float] = None,
             deferred: bool = False) -> Received:
        waiter = self.waiter
        if deadline is None and self.sock.timeout is None:
            # The common case, in C: read, park at the hub, read.
            got: Received = proto.read_message(self.fileno(), waiter.read_watcher,
                                               waiter.hub, deferred)
            return got
        return super().fill(proto, deadline if deadline is not None
                            else time.monotonic() + self.sock.timeout)

    def wait(self, write: bool, deadline: Optional[float]) -> None:
        timeout = self.sock.timeout if deadline is None else max(deadline - time.monotonic(), 0.0)
        self.waiter.wait(write, timeout)


class _GeventStreamTransport(_GeventTasks, Transport):
    """gevent's TLS (or another gevent socket subclass): its own methods,
    with gevent's locks and greenlets."""

    __slots__ = ()


#: Whether plain sockets get an fd transport (the engine does their I/O);
#: PYWS_PLAIN_IO=1 in the environment sends every socket through its Python
#: methods instead (tests compare the two).  Read once, at import.
DIRECT_IO = os.environ.get("PYWS_PLAIN_IO", "") in ("", "0")


def transport_for(sock: Any) -> Transport:
    """The transport for ``sock``, from what it is, never from class names:
    gevent first (under monkey-patching ``socket.socket`` is gevent's)."""
    if _gevent.is_gevent_socket(sock):
        if DIRECT_IO and _gevent.is_plain_socket(sock):
            return GeventTransport(sock)
        return _GeventStreamTransport(sock)
    if DIRECT_IO and type(sock) is socket.socket:
        return BlockingTransport(sock)
    return StreamTransport(sock)


def client_modules() -> Tuple[ModuleType, ModuleType]:
    """The ``(socket, ssl)`` modules a client connection should use: the
    stdlib ones (gevent's, when it patched them), or gevent's own when gevent
    is loaded unpatched and the caller runs in a gevent task (so that it
    cooperates instead of blocking the hub)."""
    if not _gevent.patched() and _gevent.in_greenlet():
        modules: Tuple[ModuleType, ModuleType] = _gevent.socket_modules()
        return modules
    import ssl

    return socket, ssl
