"""Rooms and broadcast: a message encoded once, written to many sockets.

``Hub`` keeps named rooms of server-side WebSockets.  ``broadcast`` has the C
core encode the frame once and puts the same bytes into each member's
bounded send queue; one writer per member (a greenlet under gevent, a
thread otherwise) drains it.  A slow or dead member therefore never stalls a
broadcast or the other members: when its queue is full, the overflow policy
applies (``"disconnect"``: close it with 1008; ``"drop"``: lose that message
for it).  A member whose connection ends leaves all its rooms by itself.

Under gevent, members with nothing queued skip the queue: the broadcasts
made to them before the broadcasting greenlet yields (same room, same
exclusions) are written together, once it does, by the C core with one
non-blocking send per member (``_core.fanout``); only what a socket does
not take (all of it, or the end of a frame) goes to that member's writer.
Each member still gets its frames in order, and never interleaved with
another sender's.

With a ``bus`` (see :class:`pyws.redis_bus.RedisBus`), broadcasts also go to
the hubs of other processes or hosts sharing the bus, and theirs come here.
"""
from __future__ import annotations

import logging
import socket
import sys
import threading
import uuid
from typing import Any, Callable, Dict, Iterable, List, Optional, Protocol, Set, Tuple, Union

from . import _core
from .exceptions import ConnectionClosed
from .options import DEFAULTS
from .websocket import FrameWriter, WebSocket

_OPEN = _core.OPEN

__all__ = ["Hub", "Bus", "DEFAULT_QUEUE_SIZE"]

logger = logging.getLogger("pyws.hub")

#: Frames a member may have waiting before the overflow policy applies.
DEFAULT_QUEUE_SIZE = 256

# A batch of broadcasts is written at once when it reaches this many frames
# or bytes, even if the broadcasting greenlet has not yielded yet.
_BATCH_FRAMES = 64
_BATCH_BYTES = 64 << 10

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
    """One WebSocket's place in the hub: its queue, writer task and rooms.

    ``writer`` is the connection's FrameWriter, the only way the hub touches
    its socket; ``owner``: the thread whose greenlets may write to the
    socket directly (see ``FrameWriter.direct``), 0 if none may;
    ``writing``: the writer task holds a frame it took from the queue."""

    __slots__ = ("ws", "writer", "queue", "rooms", "dropped", "owner", "writing")

    def __init__(self, ws: WebSocket, writer: FrameWriter, queue: Any, owner: int) -> None:
        self.ws = ws
        self.writer = writer
        self.queue = queue
        self.rooms: Set[str] = set()
        self.dropped = 0
        self.owner = owner
        self.writing = False


class _Batch:
    """Broadcasts made one after the other to the same members, written when
    the broadcasting greenlet yields (see Hub._deliver).  ``direct``: the
    members with nothing queued at the first, whose frames wait here (the
    rest of what a direct write needs is checked when the batch is
    written); ``queued``: the others, who had each frame queued at once.
    ``epoch``: the hub's membership epoch then (a join or leave ends the
    batch)."""

    __slots__ = ("room", "skip", "epoch", "owner", "direct", "queued", "frames", "size")

    def __init__(self, room: str, skip: Set[int], epoch: int, owner: int,
                 direct: List[_Member], queued: List[_Member], frame: bytes) -> None:
        self.room = room
        self.skip = skip
        self.epoch = epoch
        self.owner = owner
        self.direct = direct
        self.queued = queued
        self.frames = [frame]
        self.size = len(frame)


class _Rest:
    """The end of a frame whose start the fan-out wrote: the member's
    WebSocket lock was taken for its writer, so that nothing comes between
    the two parts; the writer releases it."""

    __slots__ = ("data",)

    def __init__(self, data: memoryview) -> None:
        self.data = data


class Hub:
    """Named rooms of WebSockets, and broadcast to them.

    ``queue_size``: frames a member may have waiting; ``overflow``: what
    happens to a member whose queue is full: ``"disconnect"`` (default: it
    leaves every room at once, its backlog is dropped and it is closed with
    1008 "send queue overflow"; if that is not over within its
    ``close_timeout``, its socket is shut down) or ``"drop"`` (the message
    is lost for that member only, counted in :meth:`dropped`).  ``bus``: share
    rooms with other processes (None: this process only).

    Safe to use from several greenlets or threads, and from asyncio
    coroutines: a member may be a ``pyws.asyncio.WebSocket`` (its session
    is the member; ``members()`` lists sessions), and no method waits, so
    they are called without ``await``.
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
        self._epoch = 0  # changes whenever a room gains or loses a member
        self._batch: Optional[_Batch] = None
        self._bus = bus
        if bus is not None:
            bus.start(self._deliver_remote)

    # -- membership ----------------------------------------------------------

    def join(self, ws: WebSocket, room: str) -> None:
        """Add ``ws`` to ``room`` (joining twice is harmless)."""
        ws = _session(ws)
        with self._lock:
            member = self._member(ws)
            if self._members.get(id(ws)) is not member:
                return  # the socket was already closed: it left at once
            member.rooms.add(room)
            self._rooms.setdefault(room, {})[id(ws)] = member
            self._epoch += 1

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
        writer = ws.frame_writer()
        transport = writer.transport
        # One extra slot so that the stop marker always fits.
        member = _Member(ws, writer, transport.new_queue(self.queue_size + 1),
                         threading.get_native_id() if writer.direct else 0)
        self._members[id(ws)] = member
        transport.spawn(self._writer, member, name="pyws-hub-writer")
        ws.add_close_callback(self._remove)
        return member

    def leave(self, ws: WebSocket, room: str) -> None:
        """Remove ``ws`` from ``room``."""
        ws = _session(ws)
        with self._lock:
            member = self._members.get(id(ws))
            if member is not None and room in member.rooms:
                member.rooms.discard(room)
                self._forget_in_room(ws, room)

    def leave_all(self, ws: WebSocket) -> None:
        """Remove ``ws`` from every room (done by itself when it closes)."""
        ws = _session(ws)
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
        self._epoch += 1
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
            member = self._members.get(id(_session(ws)))
            return set(member.rooms) if member else set()

    def dropped(self, ws: WebSocket) -> int:
        """Messages lost for ``ws`` under the ``"drop"`` policy."""
        with self._lock:
            member = self._members.get(id(_session(ws)))
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
        ws = _session(ws)
        with self._lock:
            full = self._flush_own_batch()  # broadcasts before it go first
            member = self._member(ws)
            if self._members.get(id(ws)) is not member:
                queued = False  # the socket is closed
            else:
                queued = self._queue(member, frame, full)
        for m in full:
            self._disconnect(m)
        return queued

    def _deliver(self, room: str, opcode: int, payload: bytes,
                 exclude: Union[WebSocket, Iterable[WebSocket], None]) -> int:
        if not self._rooms.get(room):
            return 0  # nobody here: skip the encoding (a racy peek is fine)
        if exclude is None:
            skip: Set[int] = set()
        elif isinstance(exclude, WebSocket) or hasattr(exclude, "session"):
            skip = {id(_session(exclude))}
        else:
            skip = {id(_session(ws)) for ws in exclude}
        frame = _core.encode_frame(opcode, payload)  # once, for everyone
        owner = threading.get_native_id() if "gevent" in sys.modules else 0
        full: List[_Member] = []
        # Under the lock: nothing here blocks, the size check and the put
        # are one step (two threads broadcasting at once could otherwise
        # both take the spare slot kept for the stop marker), and concurrent
        # broadcasts reach every member in the same order.
        with self._lock:
            count = self._add_to_batch(room, skip, owner, frame, full)
            if count is None:
                full += self._flush_own_batch()
                count = self._start(room, skip, owner, frame, full)
        for member in full:
            self._disconnect(member)
        return count

    def _add_to_batch(self, room: str, skip: Set[int], owner: int, frame: bytes,
                      full: List[_Member]) -> Optional[int]:
        """Add the broadcast to the pending batch if it goes to the same
        members; how many members get it, or None if it cannot join."""
        batch = self._batch
        if (batch is None or batch.owner != owner or batch.room != room
                or batch.epoch != self._epoch or batch.skip != skip
                or len(batch.frames) >= _BATCH_FRAMES
                or batch.size + len(frame) > _BATCH_BYTES):
            return None
        batch.frames.append(frame)
        batch.size += len(frame)
        count = len(batch.direct)
        for member in batch.queued:
            count += self._queue(member, frame, full)
        return count

    def _start(self, room: str, skip: Set[int], owner: int, frame: bytes,
               full: List[_Member]) -> int:
        """Queue the broadcast for the members that have frames waiting, and
        start a batch with it for the others; how many members get it."""
        direct: List[_Member] = []
        queued: List[_Member] = []
        count = 0
        for member in self._rooms.get(room, {}).values():
            if skip and id(member.ws) in skip:
                continue
            # Nothing queued or in hand: its frames can wait in the batch, and
            # whether they go to the socket directly is decided when it is
            # written (see _write_batch); the first of them is sure to fit in
            # the queue then, as now.  The rest of that check costs as much
            # again for every member, so it is made once, there.
            if (owner and member.owner == owner and not member.writing
                    and not member.queue.qsize()):
                direct.append(member)
            else:
                queued.append(member)
                count += self._queue(member, frame, full)
        if direct:
            batch = _Batch(room, skip, self._epoch, owner, direct, queued, frame)
            if self._batch is None:
                self._batch = batch
                direct[0].writer.transport.spawn(self._flush_later, name="pyws-hub-flush")
            else:  # another thread's batch is pending: this one goes out now
                self._write_batch(batch, full)
        return count + len(direct)

    def _flush_later(self) -> None:
        """Write the pending batch: run once the broadcasting greenlet yields."""
        with self._lock:
            full = self._flush_own_batch()
        for member in full:
            self._disconnect(member)

    def _flush_own_batch(self) -> List[_Member]:
        """Write the pending batch now if this thread made it (another
        thread leaves it to the greenlet that will flush it).  Returns the
        members whose queue overflowed under the "disconnect" policy."""
        full: List[_Member] = []
        batch = self._batch
        if batch is not None and batch.owner == threading.get_native_id():
            self._batch = None
            self._write_batch(batch, full)
        return full

    def _write_batch(self, batch: _Batch, full: List[_Member]) -> None:
        """Write the frames of ``batch`` to its idle members with one send
        each; queue what they do not take, and the frames of the others."""
        frames = batch.frames
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        targets: List[_Member] = []
        fds: List[int] = []
        for member in batch.direct:
            # May frames go to the member's socket directly?  Only if its
            # writer task is idle with nothing queued (queued frames go first,
            # and so does one the task holds while it waits for the lock) and
            # the connection's own checks pass (FrameWriter.direct_fd).  Other
            # greenlets may have run since the first broadcast of the batch;
            # whoever fails this gets the frames queued.  We run in the
            # members' own thread, and neither this check nor the write
            # yields, so nothing changes between them.
            fd = (member.writer.direct_fd()
                  if not member.writing and not member.queue.qsize() else -1)
            if fd >= 0:
                targets.append(member)
                fds.append(fd)
            else:
                self._queue_rest(member, frames, 0, full)
        for index, written in _core.fanout(data, fds):
            self._queue_rest(targets[index], frames, max(written, 0), full)

    def _queue_rest(self, member: _Member, frames: List[bytes], written: int,
                    full: List[_Member]) -> None:
        """Queue what ``member`` did not take of ``frames`` (``written``
        bytes went out).  A socket error is left to the writer, which meets
        it again when it sends the rest and handles it as ever."""
        for frame in frames:
            if written >= len(frame):
                written -= len(frame)
            elif written:
                # The end of a frame already started must go out before
                # anything else: the connection's send lock (free: the member
                # was idle) is taken now for the writer task, which releases it.
                member.writer.reserve()
                _put_nowait(member.queue, _Rest(memoryview(frame)[written:]))
                written = 0
            else:
                self._queue(member, frame, full)

    def _queue(self, member: _Member, frame: bytes, full: List[_Member]) -> bool:
        """Put ``frame`` in the member's queue, or apply the overflow policy
        (under "disconnect", the member is added to ``full``)."""
        if _put_nowait(member.queue, frame):
            return True
        if self.overflow == "drop":
            member.dropped += 1
        elif member not in full:
            full.append(member)
        return False

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
        member.writer.transport.spawn(_disconnect_slow, ws, name="pyws-hub-close")

    def _writer(self, member: _Member) -> None:
        """Drain one member's queue into its socket, frame by frame."""
        ws, writer, queue = member.ws, member.writer, member.queue
        while True:
            frame = queue.get()
            if frame is None:
                return
            member.writing = True
            try:
                if type(frame) is _Rest:
                    writer.write_rest(frame.data)
                else:
                    writer.write(frame)
            except (ConnectionClosed, OSError):
                self._remove(ws)
                return
            member.writing = False

    def close(self) -> None:
        """Stop the bus and every writer; members stay connected."""
        if self._bus is not None:
            self._bus.close()
        with self._lock:
            full = self._flush_own_batch()
            for member in list(self._members.values()):
                self._remove(member.ws)
        for member in full:
            self._disconnect(member)


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
    transport = ws.transport
    gone = transport.new_event()
    ws.add_close_callback(lambda _ws: gone.set())
    transport.spawn(_close_quietly, ws, name="pyws-hub-close")
    timeout = ws.close_timeout if ws.close_timeout is not None else DEFAULTS.close_timeout
    if gone.wait(timeout):
        return
    logger.info("WebSocket %s: not closed within %gs, dropping the connection",
                ws.path, timeout)
    try:
        ws.socket.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _discard_all(queue: Any) -> None:
    """Empty ``queue`` without waiting, but for the end of a frame already
    started on the wire: it must still go out, before anything else."""
    rest = None
    first = True
    while True:
        try:
            item = queue.get_nowait()
        except Exception:  # queue.Empty / gevent.queue.Empty
            break
        if first and type(item) is _Rest:
            rest = item
        first = False
    if rest is not None:
        queue.put_nowait(rest)


def _put_nowait(queue: Any, item: Union[bytes, _Rest, None]) -> bool:
    """Queue ``item``; False if the queue is full.  The stop marker (None)
    may take the spare slot; frames may not."""
    if item is not None and queue.qsize() >= queue.maxsize - 1:
        return False
    try:
        queue.put_nowait(item)
    except Exception:  # queue.Full / gevent.queue.Full
        return False
    return True



def _session(ws: Any) -> WebSocket:
    """The session of ``ws``: itself, or what a ``pyws.asyncio.WebSocket``
    wraps."""
    session = getattr(ws, "session", None)
    return session if isinstance(session, WebSocket) else ws
