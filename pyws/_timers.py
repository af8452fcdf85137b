"""The keepalive and idle timers of every connection, run by one task.

Each WebSocket with a ping interval or an idle timeout puts its next due time
in the ``TimerQueue`` of its world (one per gevent hub, one for the threads
of the process).  One task sleeps until the earliest due time and starts a
short task for each connection that is due (``WebSocket._timer_tick``: read
what arrived, send a ping, drop a peer whose pong is late, close an idle
connection), which puts the connection back in the queue.

Why not a task per connection, parked between its timers: under gevent that
greenlet and its saved stack nearly doubled the memory of an idle connection
(docs/benchmarks.md, "Measurements behind design choices"), and under
threads it was a thread per connection; a queue entry is a tuple and a weak
reference.
A connection's work runs in a task of its own because it may wait (a ping
behind a slow writer, ``close()`` waiting for the peer's answer), and one
slow connection must not hold up the timers of the others.
"""
from __future__ import annotations

import heapq
import itertools
import threading
import time
import weakref
from typing import Any, Callable, List, Optional, Protocol, Tuple

__all__ = ["TimerQueue", "Timed", "thread_timers"]


class Timed(Protocol):
    """What the queue calls when a connection's time has come."""

    def _timer_tick(self) -> None: ...


Entry = Tuple[float, int, "weakref.ReferenceType[Any]"]


class TimerQueue:
    """Due times of connections, earliest first, and the one task that waits
    for them.  ``new_lock``, ``new_event`` and ``spawn`` are those of the
    world the connections live in (gevent's or the threads')."""

    __slots__ = ("_heap", "_order", "_lock", "_wake", "_spawn", "_running")

    def __init__(self, new_lock: Callable[[], Any], new_event: Callable[[], Any],
                 spawn: Callable[..., None]) -> None:
        self._heap: List[Entry] = []
        self._order = itertools.count()  # ties keep their order; never compares refs
        self._lock = new_lock()
        self._wake = new_event()
        self._spawn = spawn
        self._running = False

    def add(self, due: float, timed: Timed) -> None:
        """Call ``timed._timer_tick()``, in a task of its own, at ``due``
        (time.monotonic()).  Only a weak reference is kept: a connection
        gone meanwhile is skipped."""
        entry = (due, next(self._order), weakref.ref(timed))
        with self._lock:
            heapq.heappush(self._heap, entry)
            first = self._heap[0] is entry
            start = not self._running
            self._running = True
        if start:
            self._spawn(self._run)
        elif first:
            self._wake.set()  # earlier than what the task sleeps for

    def _run(self) -> None:
        heap = self._heap
        while True:
            due: List[Timed] = []
            with self._lock:
                now = time.monotonic()
                while heap and heap[0][0] <= now:
                    timed = heapq.heappop(heap)[2]()
                    if timed is not None:
                        due.append(timed)
                if not heap and not due:
                    self._running = False  # the next add() starts a new task
                    return
                delay: Optional[float] = heap[0][0] - now if heap else None
            for timed in due:
                self._spawn(timed._timer_tick)
            del due
            if delay is not None:
                # A set() between this wait and the clear() is not lost: the
                # loop looks at the heap again before it sleeps.
                self._wake.wait(delay)
                self._wake.clear()


_thread_queue: Optional[TimerQueue] = None
_thread_queue_lock = threading.Lock()


def thread_timers() -> TimerQueue:
    """The queue of connections served by threads (one per process)."""
    global _thread_queue
    with _thread_queue_lock:
        if _thread_queue is None:
            def spawn(function: Callable[..., None], *args: Any) -> None:
                threading.Thread(target=function, args=args, name="pyws-timers",
                                 daemon=True).start()

            _thread_queue = TimerQueue(threading.Lock, threading.Event, spawn)
        return _thread_queue
