"""Concurrency primitives matching the socket in use: gevent's or threading's.

gevent is optional, so it is imported only when it is already loaded or the
socket at hand is one of its own; plain-thread users never pay for it.
"""
from __future__ import annotations

import socket
import sys
import threading
from types import ModuleType
from typing import Any, Callable, Protocol, Tuple

try:  # greenlet comes with gevent; without it, no gevent path is ever taken
    from greenlet import getcurrent as _greenlet_getcurrent  # type: ignore[import-untyped, unused-ignore]
except ImportError:  # pragma: no cover
    _greenlet_getcurrent = None  # type: ignore[assignment]

#: The running greenlet (only called on gevent paths, where greenlet exists).
getcurrent: Callable[[], Any] = _greenlet_getcurrent  # type: ignore[assignment, unused-ignore]

__all__ = ["Lock", "Event", "uses_gevent", "new_lock", "new_event", "new_queue",
           "spawn", "client_modules", "recv_function", "getcurrent"]


class Lock(Protocol):
    """What pyws needs of a lock: ``threading.Lock`` and gevent's Semaphore fit."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...

    def release(self) -> object: ...

    def locked(self) -> bool: ...

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc_info: Any) -> Any: ...


def _gevent_patched_socket() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None:
        return False
    return bool(monkey.is_module_patched("socket"))


def uses_gevent(sock: object) -> bool:
    """True if ``sock`` is a gevent socket or gevent has patched ``socket``."""
    if type(sock).__module__.startswith("gevent."):
        return True
    return _gevent_patched_socket()


def new_lock(sock: object) -> Lock:
    """A fresh non-reentrant lock that blocks the way ``sock`` blocks."""
    if uses_gevent(sock):
        from gevent.lock import Semaphore  # type: ignore[import-untyped, unused-ignore]

        lock: Lock = Semaphore(1)
        return lock
    return threading.Lock()


class Event(Protocol):
    """What pyws needs of an event: ``threading.Event`` and gevent's fit."""

    def set(self) -> None: ...

    def is_set(self) -> bool: ...

    def wait(self, timeout: float) -> bool: ...


def new_event(sock: object) -> Event:
    """A fresh event whose ``wait`` blocks the way ``sock`` blocks."""
    if uses_gevent(sock):
        from gevent.event import Event as GeventEvent  # type: ignore[import-untyped, unused-ignore]

        event: Event = GeventEvent()
        return event
    return threading.Event()


def spawn(sock: object, function: Callable[..., None], *args: Any,
          name: str = "pyws") -> None:
    """Run ``function(*args)`` concurrently: in a greenlet when ``sock`` is
    gevent's, else in a daemon thread."""
    if uses_gevent(sock):
        import gevent  # type: ignore[import-untyped, unused-ignore]

        gevent.spawn(function, *args)
    else:
        threading.Thread(target=function, args=args, name=name, daemon=True).start()


def new_queue(sock: object, maxsize: int) -> Any:
    """A bounded FIFO queue whose ``get`` blocks the way ``sock`` blocks."""
    if uses_gevent(sock):
        from gevent.queue import Queue  # type: ignore[import-untyped, unused-ignore]

        return Queue(maxsize)
    import queue

    return queue.Queue(maxsize)


def recv_function(sock: socket.socket) -> Callable[[int], bytes]:
    """``sock.recv``, or for a plain gevent socket (not TLS) a function that
    reads the same way but waits for data closer to the hub.

    A greenlet blocked in a read keeps its C stack, copied to the heap, for
    as long as it waits: for an idle WebSocket, the life of the connection.
    gevent's ``recv`` waits through four compiled layers (wait_on_socket,
    wait_on_watcher, Waiter.get, Hub.switch); starting the socket's read
    watcher with the greenlet's own ``switch`` and switching to the hub keeps
    about 1 KiB less.  Timeouts and a close from another greenlet behave as
    with gevent's ``recv``: with a timeout set, gevent's ``recv`` does the
    wait; a close throws gevent's ``cancel_wait_ex`` (an OSError) into the
    waiting greenlet, as it does for its own waits.
    """
    if not uses_gevent(sock):
        return sock.recv
    import gevent.socket  # type: ignore[import-untyped, unused-ignore]

    if type(sock) is not gevent.socket.socket:
        return sock.recv  # TLS or another subclass: its own recv
    return _GeventReader(sock).recv


class _GeventReader:
    """``recv`` for ``recv_function``: a bound method of a slotted object
    (smaller than a closure; and the interpreter calls it without a C level,
    unlike a callable object or a partial)."""

    __slots__ = ("sock",)

    def __init__(self, sock: Any) -> None:
        self.sock = sock

    def recv(self, size: int) -> bytes:
        sock = self.sock
        while True:
            # gevent swaps ``_sock`` for a closed stand-in on close().
            try:
                data: bytes = sock._sock.recv(size)
                return data
            except BlockingIOError:
                pass
            watcher = sock._read_event
            if sock.timeout is not None or watcher.callback is not None:
                return sock.recv(size)  # type: ignore[no-any-return]  # gevent's timeout, or its usage error
            watcher.start(getcurrent().switch)
            try:
                sock.hub.switch()
            finally:
                watcher.stop()


def _in_gevent_greenlet() -> bool:
    if "gevent" not in sys.modules:
        return False
    import greenlet  # type: ignore[import-untyped, unused-ignore]

    # Every thread's main greenlet has no parent; greenlets spawned by gevent
    # run under the hub, so a parent means "inside a gevent task".
    return greenlet.getcurrent().parent is not None  # type: ignore[no-any-return, unused-ignore]


def client_modules() -> Tuple[ModuleType, ModuleType]:
    """The ``(socket, ssl)`` modules a client connection should use.

    The stdlib ones, which are gevent's when gevent has monkey-patched them;
    gevent's own when gevent is loaded, unpatched, and the caller runs in a
    greenlet other than its thread's main one (so it cooperates instead of
    blocking the hub).
    """
    if not _gevent_patched_socket() and _in_gevent_greenlet():
        import gevent.socket  # type: ignore[import-untyped, unused-ignore]
        import gevent.ssl  # type: ignore[import-untyped, unused-ignore]

        return gevent.socket, gevent.ssl
    import ssl

    return socket, ssl

