"""Rooms and broadcast: a message encoded once, written to many sockets.

``Hub`` keeps named rooms of server-side WebSockets.  ``broadcast`` has the C
core encode the frame once and puts the same bytes into each member's
bounded send queue; one writer per member (a greenlet under gevent, a
thread otherwise) drains it.  A slow or dead member therefore never stalls a
broadcast or the other members: when its queue is full, the overflow policy
applies (``"disconnect"``: close it with 1008; ``"drop"``: lose that message
for it).  A member whose connection ends leaves all its rooms by itself.

With a ``bus`` (see :class:`pyws.redis_bus.RedisBus`), broadcasts also go to
the hubs of other processes or hosts sharing the bus, and theirs come here.
"""
from __future__ import annotations

import logging
import socket
import threading
import uuid
from typing import Any, Callable, Dict, Iterable, List, Optional, Protocol, Set, Tuple, Union

from . import _core
from ._backend import new_event, new_queue, spawn
from .exceptions import ConnectionClosed
from .websocket import DEFAULT_CLOSE_TIMEOUT, WebSocket

__all__ = ["Hub", "Bus", "DEFAULT_QUEUE_SIZE"]

logger = logging.getLogger("pyws.hub")

#: Frames a member may have waiting before the overflow policy applies.
DEFAULT_QUEUE_SIZE = 256

_OVERFLOW_POLICIES = ("disconnect", "drop")


class Bus(Protocol):
    """Carries broadcasts between hubs (see :class:`pyws.redis_bus.RedisBus`).

    ``start(deliver)`` begins listening and calls ``deliver(origin, room,
    opcode, payload)`` for every broadcast published by any hub;
    ``publish(origin, room, opcode, payload)`` sends one; ``close()`` stops.
    ``origin`` is the publishing hub's id, so a hub skips its own messages.
    """

    def start(self, deliver: Callable[[str, str, int, bytes], None]) -> None: ...

    def publish(self, origin: str, room: str, opcode: int, payload: bytes) -> None: ...

    def close(self) -> None: ...


class _Member:
    """One WebSocket's place in the hub: its queue, writer and rooms."""

    __slots__ = ("ws", "queue", "rooms", "dropped")

    def __init__(self, ws: WebSocket, queue: Any) -> None:
        self.ws = ws
        self.queue = queue
        self.rooms: Set[str] = set()
        self.dropped = 0


class Hub:
    """Named rooms of WebSockets, and broadcast to them.

    ``queue_size``: frames a member may have waiting; ``overflow``: what
    happens to a member whose queue is full: ``"disconnect"`` (default: it
    leaves every room at once, its backlog is dropped and it is closed with
    1008 "send queue overflow"; if that is not over within its
    ``close_timeout``, its socket is shut down) or ``"drop"`` (the message
    is lost for that member only, counted in :meth:`dropped`).  ``bus``: share
    rooms with other processes (None: this process only).

    Safe to use from several greenlets or threads.
    """

    def __init__(self, *, queue_size: int = DEFAULT_QUEUE_SIZE,
                 overflow: str = "disconnect", bus: Optional[Bus] = None) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, not {queue_size}")
        if overflow not in _OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {_OVERFLOW_POLICIES}, "
                             f"not {overflow!r}")
        self.queue_size = queue_size
        self.overflow = overflow
        self.id = uuid.uuid4().hex
        self._lock = threading.RLock()  # short critical sections, no I/O inside
        self._rooms: Dict[str, Dict[int, _Member]] = {}
        self._members: Dict[int, _Member] = {}
        self._bus = bus
        if bus is not None:
            bus.start(self._deliver_remote)

    # -- membership ----------------------------------------------------------

    def join(self, ws: WebSocket, room: str) -> None:
        """Add ``ws`` to ``room`` (joining twice is harmless)."""
        with self._lock:
            member = self._member(ws)
            if self._members.get(id(ws)) is not member:
                return  # the socket was already closed: it left at once
            member.rooms.add(room)
            self._rooms.setdefault(room, {})[id(ws)] = member

    def _member(self, ws: WebSocket) -> _Member:
        """The member for ``ws``, created (with its writer) on first use.  It
        lives until the socket closes, even outside every room, so that all
        frames the hub sends it go through one queue, in order."""
        member = self._members.get(id(ws))
        if member is not None:
            return member
        if not ws.is_server:
            raise ValueError("only server-side WebSockets can be hub members: "
                             "a broadcast frame is encoded once, unmasked")
        # One extra slot so that the stop marker always fits.
        member = _Member(ws, new_queue(ws.socket, self.queue_size + 1))
        self._members[id(ws)] = member
        spawn(ws.socket, self._writer, member, name="pyws-hub-writer")
        ws.add_close_callback(self._remove)
        return member

    def leave(self, ws: WebSocket, room: str) -> None:
        """Remove ``ws`` from ``room``."""
        with self._lock:
            member = self._members.get(id(ws))
            if member is not None and room in member.rooms:
                member.rooms.discard(room)
                self._forget_in_room(ws, room)

    def leave_all(self, ws: WebSocket) -> None:
        """Remove ``ws`` from every room (done by itself when it closes)."""
        with self._lock:
            member = self._members.get(id(ws))
            if member is not None:
                for room in member.rooms:
                    self._forget_in_room(ws, room)
                member.rooms.clear()

    def _remove(self, ws: WebSocket) -> None:
        """The socket is gone: out of every room, and its writer stops."""
        with self._lock:
            member = self._members.get(id(ws))
            if member is not None:
                self.leave_all(ws)
                self._retire(member)

    def _forget_in_room(self, ws: WebSocket, room: str) -> None:
        members = self._rooms.get(room)
        if members is not None:
            members.pop(id(ws), None)
            if not members:
                del self._rooms[room]

    def _retire(self, member: _Member) -> None:
        """Forget the member and stop its writer."""
        self._members.pop(id(member.ws), None)
        _put_nowait(member.queue, None)  # wakes the writer, which exits

    def members(self, room: str) -> List[WebSocket]:
        """The WebSockets of this process in ``room``."""
        with self._lock:
            return [m.ws for m in self._rooms.get(room, {}).values()]

    def rooms(self, ws: Optional[WebSocket] = None) -> Set[str]:
        """The rooms ``ws`` is in, or every room with a member here."""
        with self._lock:
            if ws is None:
                return set(self._rooms)
            member = self._members.get(id(ws))
            return set(member.rooms) if member else set()

    def dropped(self, ws: WebSocket) -> int:
        """Messages lost for ``ws`` under the ``"drop"`` policy."""
        with self._lock:
            member = self._members.get(id(ws))
            return member.dropped if member else 0

    # -- broadcast -----------------------------------------------------------

    def broadcast(self, room: str, message: Union[str, bytes],
                  exclude: Union[WebSocket, Iterable[WebSocket], None] = None) -> int:
        """Send ``message`` (str: text, bytes-like: binary) to every member of
        ``room`` but ``exclude`` (one WebSocket or several), here and, with a
        bus, in the other hubs.  Never blocks on a member: it only queues.
        Returns how many members of this process it was queued for."""
        opcode, payload = _encode(message)
        count = self._deliver(room, opcode, payload, exclude)
        if self._bus is not None:
            self._bus.publish(self.id, room, opcode, payload)
        return count

    def send(self, ws: WebSocket, message: Union[str, bytes]) -> bool:
        """Send ``message`` to ``ws`` alone through its hub queue, so that it
        stays in order with the broadcasts ``ws`` receives (``ws.send()``
        writes at once and may overtake frames still queued for it).  The
        overflow policy applies; returns False if the message was not queued."""
        opcode, payload = _encode(message)
        frame = _core.encode_frame(opcode, payload)
        with self._lock:
            member = self._member(ws)
            if self._members.get(id(ws)) is not member:
                return False  # the socket is closed
            if _put_nowait(member.queue, frame):
                return True
            if self.overflow == "drop":
                member.dropped += 1
                return False
        self._disconnect(member)
        return False

    def _deliver(self, room: str, opcode: int, payload: bytes,
                 exclude: Union[WebSocket, Iterable[WebSocket], None]) -> int:
        if not self._rooms.get(room):
            return 0  # nobody here: skip the encoding (a racy peek is fine)
        if exclude is None:
            skip: Set[int] = set()
        elif isinstance(exclude, WebSocket):
            skip = {id(exclude)}
        else:
            skip = {id(ws) for ws in exclude}
        frame = _core.encode_frame(opcode, payload)  # once, for everyone
        count = 0
        full: List[_Member] = []
        # Queue under the lock: put_nowait never blocks, and it makes the
        # size check and the put one step (two threads broadcasting at once
        # could otherwise both take the spare slot kept for the stop marker),
        # and concurrent broadcasts reach every member in the same order.
        with self._lock:
            for member in self._rooms.get(room, {}).values():
                if id(member.ws) in skip:
                    continue
                if _put_nowait(member.queue, frame):
                    count += 1
                elif self.overflow == "drop":
                    member.dropped += 1
                else:
                    full.append(member)
        for member in full:
            self._disconnect(member)
        return count

    def _deliver_remote(self, origin: str, room: str, opcode: int, payload: bytes) -> None:
        if origin != self.id:
            self._deliver(room, opcode, payload, None)

    def _disconnect(self, member: _Member) -> None:
        """Overflow under the "disconnect" policy: out of every room now,
        then closed with 1008 by a task of its own, so that the broadcast
        never waits on this member's socket."""
        ws = member.ws
        with self._lock:
            if self._members.get(id(ws)) is not member:
                return  # already gone (a concurrent broadcast overflowed it too)
            # Its backlog is dropped: the close frame should be the next
            # thing it gets, not after frames it could not take anyway.
            _discard_all(member.queue)
            self._remove(ws)  # out of every room; queues the writer's stop marker
        logger.info("WebSocket %s: send queue full (%d frames), disconnecting",
                    ws.path, self.queue_size)
        spawn(ws.socket, _disconnect_slow, ws, name="pyws-hub-close")

    def _writer(self, member: _Member) -> None:
        """Drain one member's queue into its socket, frame by frame."""
        ws, queue = member.ws, member.queue
        while True:
            frame = queue.get()
            if frame is None:
                return
            try:
                ws.send_encoded(frame)
            except (ConnectionClosed, OSError):
                self._remove(ws)
                return

    def close(self) -> None:
        """Stop the bus and every writer; members stay connected."""
        if self._bus is not None:
            self._bus.close()
        with self._lock:
            for member in list(self._members.values()):
                self._remove(member.ws)


def _encode(message: Union[str, bytes]) -> Tuple[int, bytes]:
    """(opcode, payload) of a message: str is text, bytes-like binary."""
    if isinstance(message, str):
        return _core.TEXT, message.encode("utf-8")
    return _core.BINARY, bytes(message)


def _close_quietly(ws: WebSocket) -> None:
    try:
        ws.close(1008, "send queue overflow")
    except (ConnectionClosed, OSError, ValueError):
        pass


def _disconnect_slow(ws: WebSocket) -> None:
    """Close ``ws`` with 1008; if that is not over within its close_timeout,
    shut the socket down.  A peer that stopped reading leaves the writer
    blocked in a send while holding the WebSocket's lock, so ``close()``
    alone would wait forever for its turn to write the close frame; the
    shutdown fails that blocked send, and the connection is torn down."""
    gone = new_event(ws.socket)
    ws.add_close_callback(lambda _ws: gone.set())
    spawn(ws.socket, _close_quietly, ws, name="pyws-hub-close")
    timeout = ws.close_timeout if ws.close_timeout is not None else DEFAULT_CLOSE_TIMEOUT
    if gone.wait(timeout):
        return
    logger.info("WebSocket %s: not closed within %gs, dropping the connection",
                ws.path, timeout)
    try:
        ws.socket.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _discard_all(queue: Any) -> None:
    """Empty ``queue`` without waiting."""
    while True:
        try:
            queue.get_nowait()
        except Exception:  # queue.Empty / gevent.queue.Empty
            return


def _put_nowait(queue: Any, item: Optional[bytes]) -> bool:
    """Queue ``item``; False if the queue is full.  The stop marker (None)
    may take the spare slot; frames may not."""
    if item is not None and queue.qsize() >= queue.maxsize - 1:
        return False
    try:
        queue.put_nowait(item)
    except Exception:  # queue.Full / gevent.queue.Full
        return False
    return True

