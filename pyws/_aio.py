"""The asyncio world: how the one session waits under an event loop.

The session (pyws/websocket.py) is written once, in blocking style: a read
that would block waits, a lock that is held waits.  Under gevent a wait
parks the greenlet at the hub; here it parks a *worker* greenlet at the
coroutine that called into the session (``call``).  The coroutine awaits
what the worker waits for (a future) and switches back with its result, so
that the session's rules (one reader, frames never interleaved, the close
handshake, keepalive) run unchanged under asyncio, without a second copy of
them.  The loop's thread never blocks: every wait is an ``await``.

Workers are kept in a small pool per thread, since a greenlet's first
switch costs about 8 µs and a switch into a waiting one about 0.5 µs.

Also here: the locks, events and queues of this world (``Lock``, ``Event``,
``Queue``; their blocking methods may be called only in a worker), ``spawn``
(a task that runs a function in a worker) and the timer queue of each loop.
"""
from __future__ import annotations

import asyncio
import collections
import functools
import queue as stdqueue
import socket
import threading
import time
import weakref
from typing import Any, Awaitable, Callable, Deque, Optional, Set, Tuple, TypeVar

import greenlet

from ._timers import TimerQueue

__all__ = ["call", "wait", "wait_future", "wait_until", "in_worker", "Lock", "Event", "Queue",
           "spawn", "loop_timers"]

T = TypeVar("T")

# What a worker tells its caller when it switches back (in ``worker.out``).
_WAIT = 0  # (_WAIT, awaitable): await this and switch back with its result
_DONE = 1  # (_DONE, result)
_RAISE = 2  # (_RAISE, exception)

# Idle workers kept per thread (a busy server reuses them; more are made
# when needed and dropped on return).
_POOL_SIZE = 64


class _Worker(greenlet.greenlet):  # type: ignore[misc]
    """A greenlet that runs session calls, one after the other.  What it
    tells its caller goes in ``out``, not through ``switch``'s arguments:
    a suspended frame keeps the arguments of its pending call, and an idle
    worker must keep nothing of the last call alive."""

    __slots__ = ("out",)

    out: Optional[Tuple[int, Any]]

    def run(self, function: Callable[..., Any], args: Tuple[Any, ...]) -> None:
        while True:
            try:
                self.out = (_DONE, function(*args))
            except BaseException as exc:  # handed to the caller, who raises it
                self.out = (_RAISE, exc)
                del exc
            function = args = None  # type: ignore[assignment]
            function, args = self.parent.switch()


class _Pool(threading.local):
    """Idle workers, per thread (a greenlet runs only in its own thread)."""

    def __init__(self) -> None:
        self.workers: Deque[_Worker] = collections.deque()


_pool = _Pool()


async def call(function: Callable[..., T], *args: Any, **keywords: Any) -> T:
    """Run the blocking ``function(*args)`` in a worker greenlet; each time it
    waits, await what it waits for.  Cancelling the caller throws
    CancelledError into the wait, so the session unwinds (releasing its
    locks) and the error comes out here."""
    if keywords:
        function = functools.partial(function, **keywords)
    workers = _pool.workers
    worker = workers.pop() if workers else _Worker()
    current = greenlet.getcurrent()
    if worker.parent is not current:
        worker.parent = current
    worker.switch(function, args)
    kind, value = worker.out  # type: ignore[misc]
    while kind == _WAIT:
        try:
            result = await value
        except BaseException as exc:
            worker.throw(exc)
        else:
            worker.switch(result)
            del result
        kind, value = worker.out  # type: ignore[misc]
    worker.out = None
    if len(workers) < _POOL_SIZE:
        workers.append(worker)
    if kind == _RAISE:
        try:
            raise value
        finally:
            del value
    return value  # type: ignore[no-any-return]


def in_worker() -> bool:
    """Whether the caller runs in a worker (so that it may wait)."""
    return isinstance(greenlet.getcurrent(), _Worker)


def wait(awaitable: Awaitable[T]) -> T:
    """From session code in a worker: suspend until ``awaitable`` is done
    and return its result (or raise its exception)."""
    current = greenlet.getcurrent()
    if not isinstance(current, _Worker):
        raise RuntimeError("pyws: a blocking session call ran outside pyws.asyncio's "
                           "worker (call it through the asyncio WebSocket's methods)")
    current.out = (_WAIT, awaitable)
    return current.parent.switch()  # type: ignore[no-any-return]


def wait_future(future: asyncio.Future[T], timeout: Optional[float]) -> T:
    """``wait(future)``, or socket.timeout after ``timeout`` seconds (the
    future is cancelled then)."""
    if timeout is None:
        return wait(future)
    loop = future.get_loop()
    handle = loop.call_later(timeout, _time_out, future)
    try:
        return wait(future)
    finally:
        handle.cancel()


def wait_until(future: asyncio.Future[T], deadline: Optional[float]) -> T:
    """``wait_future`` by ``deadline`` (time.monotonic(); None: no limit)."""
    return wait_future(future, None if deadline is None
                       else max(deadline - time.monotonic(), 0.0))


def _time_out(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(socket.timeout("timed out"))


# -- the locks, events and queues of this world -------------------------------

class Lock:
    """A non-reentrant lock for the tasks of one loop, with the interface of
    ``threading.Lock`` (``acquire`` waits only in a worker).  Release hands
    it to the first waiter, so nobody is starved."""

    __slots__ = ("_locked", "_waiters")

    def __init__(self) -> None:
        self._locked = False
        self._waiters: Optional[Deque[asyncio.Future[None]]] = None

    def locked(self) -> bool:
        return self._locked

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if not self._locked:
            self._locked = True
            return True
        if not blocking:
            return False
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters
        if waiters is None:
            waiters = self._waiters = collections.deque()
        waiters.append(future)
        try:
            wait_future(future, None if timeout is None or timeout < 0 else timeout)
        except socket.timeout:
            self._forget(future)
            return False
        except BaseException:
            if future.done() and not future.cancelled() and future.exception() is None:
                self.release()  # handed over just as the wait ended: pass it on
            else:
                self._forget(future)
            raise
        return True  # ownership was handed over by release()

    def _forget(self, future: asyncio.Future[None]) -> None:
        try:
            self._waiters.remove(future)  # type: ignore[union-attr]
        except ValueError:
            pass

    def release(self) -> None:
        if not self._locked:
            raise RuntimeError("release unlocked lock")
        waiters = self._waiters
        while waiters:
            future = waiters.popleft()
            if not future.done():
                future.set_result(None)  # stays locked: the waiter owns it now
                return
        self._locked = False

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


class Event:
    """``threading.Event`` for the tasks of one loop (``wait`` in a worker)."""

    __slots__ = ("_flag", "_waiters")

    def __init__(self) -> None:
        self._flag = False
        self._waiters: Set[asyncio.Future[None]] = set()

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        self._flag = True
        waiters, self._waiters = self._waiters, set()
        for future in waiters:
            if not future.done():
                future.set_result(None)

    def clear(self) -> None:
        self._flag = False

    def wait(self, timeout: Optional[float] = None) -> bool:
        if self._flag:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(future)
        try:
            wait_future(future, timeout)
        except socket.timeout:
            return self._flag
        finally:
            self._waiters.discard(future)
        return True


class Queue:
    """A bounded FIFO for the tasks of one loop, with the methods of
    ``queue.Queue`` that pyws uses (``get`` waits in a worker)."""

    __slots__ = ("_items", "maxsize", "_getters")

    def __init__(self, maxsize: int = 0) -> None:
        self._items: Deque[Any] = collections.deque()
        self.maxsize = maxsize
        self._getters: Deque[asyncio.Future[None]] = collections.deque()

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._items)

    def put_nowait(self, item: Any) -> None:
        if self.full():
            raise stdqueue.Full
        self._items.append(item)
        while self._getters:
            future = self._getters.popleft()
            if not future.done():
                future.set_result(None)
                break


    def get_nowait(self) -> Any:
        if not self._items:
            raise stdqueue.Empty
        return self._items.popleft()

    def get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        while not self._items:
            if not block:
                raise stdqueue.Empty
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._getters.append(future)
            try:
                wait_future(future, timeout)
            except socket.timeout:
                raise stdqueue.Empty from None
        return self._items.popleft()


# -- tasks --------------------------------------------------------------------

# Tasks spawned here, kept alive until done (the loop keeps only weak
# references to its tasks).
_tasks: Set[asyncio.Task[Any]] = set()


def spawn(function: Callable[..., Any], *args: Any) -> None:
    """Run ``function(*args)`` in a worker, in a new task of the running loop;
    an exception it raises is logged by asyncio's handler."""
    task = asyncio.get_running_loop().create_task(call(function, *args))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TimerQueue] = \
    weakref.WeakKeyDictionary()


def loop_timers() -> TimerQueue:
    """The timer queue of the running loop (pyws/_timers.py)."""
    loop = asyncio.get_running_loop()
    queue = _queues.get(loop)
    if queue is None:
        queue = _queues[loop] = TimerQueue(Lock, Event, spawn)
    return queue
