"""The gevent adapter: the one module that knows gevent's internals.

pyws drives gevent sockets below their Python methods: the C engine reads and
writes the descriptor itself, and a waiting greenlet parks on the socket's own
watcher, started with the greenlet's ``switch`` and followed by a switch to the
hub (the shortest wait gevent allows; an idle connection's greenlet keeps its
saved C stack for as long as it waits, so every layer saved is memory saved).
Everything pyws relies on for that is named here, and
tests/unit/test_gevent_adapter.py pins each of these so that a gevent release
that moves one fails one test with a clear message:

- ``gevent._socket3.socket`` is the class of a plain gevent socket, patched or
  not (under ``monkey.patch_all()`` it *is* ``socket.socket``); TLS sockets
  are a subclass of it, so "plain" means exactly that class;
- its ``_sock`` is the stdlib socket it wraps (a ``_socket.socket``), whose
  ``fileno()`` reads -1 once gevent has closed it;
- its ``_read_event`` / ``_write_event`` are libev/libuv watchers with
  ``start(callback)``, ``stop()`` and ``callback``, set to None on close;
- its ``hub`` has ``switch()`` and ``loop.run_callback()``;
- closing the socket from another greenlet throws ``cancel_wait_ex`` (an
  OSError) into a greenlet whose ``switch`` is a watcher's callback;
- a ``gevent.server.StreamServer`` keeps its spawn function (None, a pool's
  ``spawn`` or ``Greenlet.spawn``) in ``_spawn`` and its connection handler
  in ``_handle`` (WebSocketServer spawns connections itself, see
  ``server_spawn``).

gevent is imported lazily: a program that never uses it never pays for it.
"""
from __future__ import annotations

import errno
import sys
import weakref
from typing import Any, Callable, Dict, Optional

__all__ = ["loaded", "is_gevent_socket", "is_plain_socket", "patched", "in_greenlet",
           "SocketWaiter", "new_lock", "new_event", "new_queue", "spawn", "per_hub", "call_soon",
           "socket_modules", "server_spawn", "server_handle"]


def loaded() -> bool:
    """True once the program imported gevent (nothing of it is used before)."""
    return "gevent" in sys.modules


def _socket_class() -> Optional[type]:
    if not loaded():
        return None
    from gevent._socket3 import socket as gsocket  # type: ignore[import-untyped, unused-ignore]

    cls: type = gsocket
    return cls


def is_gevent_socket(sock: object) -> bool:
    """A gevent socket of any kind (plain or TLS), patched or not."""
    cls = _socket_class()
    return cls is not None and isinstance(sock, cls)


def is_plain_socket(sock: object) -> bool:
    """Exactly gevent's plain socket class: the C engine may read and write
    its descriptor (TLS and other subclasses keep their Python methods)."""
    cls = _socket_class()
    return cls is not None and type(sock) is cls


def patched() -> bool:
    """Has gevent monkey-patched the socket module?"""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("socket"))


def in_greenlet() -> bool:
    """Running in a greenlet other than the thread's main one (a gevent task)."""
    if not loaded():
        return False
    import greenlet  # type: ignore[import-untyped, unused-ignore]

    # Every thread's main greenlet has no parent.
    return greenlet.getcurrent().parent is not None  # type: ignore[no-any-return, unused-ignore]


class _TimedOut(Exception):
    """Private to SocketWaiter.wait: raised into the waiter by its timer."""


class SocketWaiter:
    """Waits for one plain gevent socket to become readable or writable.

    ``raw`` is the stdlib socket gevent wraps: its ``fileno()`` stays the
    connection's descriptor until gevent really closes it (after the waiters
    were woken, at the hub's next turn), then reads -1.  ``read_watcher`` and
    ``hub`` are what the C fast path needs for its own wait
    (``Protocol.read_message``).  Built once per WebSocket.
    """

    __slots__ = ("sock", "raw", "read_watcher", "hub")

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.raw = sock._sock
        self.read_watcher = sock._read_event
        self.hub = sock.hub

    def wait(self, write: bool, timeout: Optional[float]) -> None:
        """Park the current greenlet until the socket is ready.  OSError if it
        is (or gets) closed, ``socket.timeout`` after ``timeout`` seconds."""
        sock = self.sock
        watcher = sock._write_event if write else sock._read_event
        if watcher is None:
            raise OSError(errno.EBADF, "socket closed")
        if watcher.callback is not None:
            raise OSError(errno.EBUSY, "another greenlet is already waiting on this socket")
        from greenlet import getcurrent  # type: ignore[import-untyped, unused-ignore]

        timer = None
        if timeout is not None:
            from gevent import Timeout  # type: ignore[import-untyped, unused-ignore]

            timer = Timeout.start_new(timeout, _TimedOut)
        watcher.start(getcurrent().switch)
        try:
            self.hub.switch()
        except _TimedOut:
            import socket

            raise socket.timeout("timed out") from None
        finally:
            watcher.stop()
            if timer is not None:
                timer.close()


def new_lock() -> Any:
    from gevent.lock import Semaphore  # type: ignore[import-untyped, unused-ignore]

    return Semaphore(1)


def new_event() -> Any:
    from gevent.event import Event  # type: ignore[import-untyped, unused-ignore]

    return Event()


def new_queue(maxsize: int) -> Any:
    from gevent.queue import Queue  # type: ignore[import-untyped, unused-ignore]

    return Queue(maxsize)


def spawn(function: Callable[..., None], *args: Any) -> None:
    import gevent  # type: ignore[import-untyped, unused-ignore]

    gevent.spawn(function, *args)


#: Objects kept once per hub (per_hub), forgotten with their hub.
_per_hub: weakref.WeakKeyDictionary[Any, Dict[str, Any]] = weakref.WeakKeyDictionary()


def per_hub(key: str, factory: Callable[[], Any]) -> Any:
    """The object ``factory()`` made for the current thread's hub under
    ``key`` (made on first use): gevent has one hub per thread, and what
    belongs to a hub's greenlets must not be shared with another's."""
    import gevent  # type: ignore[import-untyped, unused-ignore]

    kept = _per_hub.setdefault(gevent.get_hub(), {})
    value = kept.get(key)
    if value is None:
        value = kept[key] = factory()
    return value


def call_soon(sock: Any, function: Callable[..., None], *args: Any) -> None:
    """Run ``function(*args)`` at the hub's next turn (it must not block)."""
    sock.hub.loop.run_callback(function, *args)


def socket_modules() -> Any:
    """gevent's own ``(socket, ssl)`` modules."""
    import gevent.socket  # type: ignore[import-untyped, unused-ignore]
    import gevent.ssl  # type: ignore[import-untyped, unused-ignore]

    return gevent.socket, gevent.ssl


def server_spawn(server: Any) -> Optional[Callable[..., Any]]:
    """How ``server`` (a gevent StreamServer) spawns a connection's task:
    None (handled in the accept loop), a pool's ``spawn``, or
    ``Greenlet.spawn`` (no pool)."""
    spawn: Optional[Callable[..., Any]] = server._spawn
    return spawn


def server_handle(server: Any, sock: Any, address: Any) -> None:
    """Run ``server``'s connection handler (what ``handle`` calls) on a
    connection, here, in the caller's task."""
    server._handle(sock, address)
