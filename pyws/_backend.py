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

__all__ = ["Lock", "Event", "uses_gevent", "new_lock", "new_event", "new_queue",
           "spawn", "client_modules"]


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

