"""Redis pub/sub as a :class:`pyws.Hub` bus: rooms shared between processes.

    hub = pyws.Hub(bus=RedisBus("redis://127.0.0.1:6379/0"))

Every hub whose bus has the same Redis server, database and ``channel`` gets
the broadcasts of the others (a broadcast reaches the local members at once
and goes to Redis; each hub skips the copy of its own).  Needs the ``redis``
package (redis-py 4 or later), imported only when a RedisBus is made.

Delivery is Redis pub/sub's, made to survive outages: messages of one hub
reach another in the order they were broadcast.  While a hub is cut off from
Redis (its listener is not subscribed), what it broadcasts is held in its
queue (``queue_size`` messages at most; :meth:`RedisBus.publish` returns
False for one that does not fit, and :meth:`RedisBus.can_publish` tells
beforehand) and published once the listener has subscribed again and
``resume_delay`` has passed, the time the other hubs' listeners take to
subscribed again too (they retry at least every ``max_backoff``).  A batch
whose publishing failed is published again: at least once, not exactly
once, across an outage.  An outage is logged in two lines, one when it
starts (a WARNING) and one when it ends (INFO); :meth:`RedisBus.report`
lets the program add its own Redis calls to the same two lines.

Concurrency follows the program's: under gevent with ``socket``
monkey-patched (``gevent.monkey.patch_all()``, gunicorn's gevent worker),
the listener and the publisher are greenlets; without gevent, daemon
threads.  gevent imported but not patched is refused (RuntimeError): redis-py
would then block the whole gevent hub on every Redis read.  Make the bus in
the process that serves (after a fork, not before: threads do not survive
it).
"""
from __future__ import annotations

import logging
import random
import struct
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Set, Tuple, Type
from urllib.parse import urlsplit, urlunsplit

from . import _core, _gevent

if TYPE_CHECKING:
    import redis

__all__ = ["RedisBus", "encode_envelope", "decode_envelope"]

logger = logging.getLogger("pyws.redis_bus")

Deliver = Callable[[str, str, int, bytes], None]

# Envelope: version, opcode, origin length, room length, then the origin
# (UTF-8), the room (UTF-8, lone surrogates allowed: a room is any str) and
# the payload, as is.  Binary-safe; 7 bytes of overhead plus the names.
_HEADER = struct.Struct("!BBBI")
_VERSION = 1
_OPCODES = (_core.TEXT, _core.BINARY)

#: Seconds the listener waits for a message before looking at ``close()``
#: again (a greenlet listener is killed at once instead).
_POLL_INTERVAL = 0.25
#: First wait before reconnecting; it doubles up to ``max_backoff``.
_MIN_BACKOFF = 0.1
#: Messages one pipeline round trip publishes at most.
_BATCH = 256
#: Seconds ``close()`` waits for each task to finish.
_CLOSE_TIMEOUT = 5.0


def encode_envelope(origin: str, room: str, opcode: int, payload: bytes) -> bytes:
    """One bus message.  ValueError for an origin over 255 UTF-8 bytes or an
    opcode other than text or binary."""
    if opcode not in _OPCODES:
        raise ValueError(f"opcode must be TEXT or BINARY, not {opcode}")
    origin_b = origin.encode("utf-8")
    if len(origin_b) > 255:
        raise ValueError("origin is longer than 255 bytes")
    room_b = room.encode("utf-8", "surrogatepass")
    return b"".join((_HEADER.pack(_VERSION, opcode, len(origin_b), len(room_b)),
                     origin_b, room_b, payload))


def decode_envelope(data: bytes) -> Tuple[str, str, int, bytes]:
    """``(origin, room, opcode, payload)`` of a bus message; ValueError if it
    is not one (another publisher on the channel, another version)."""
    if len(data) < _HEADER.size:
        raise ValueError("shorter than the envelope header")
    version, opcode, origin_len, room_len = _HEADER.unpack_from(data)
    if version != _VERSION:
        raise ValueError(f"envelope version {version}, expected {_VERSION}")
    if opcode not in _OPCODES:
        raise ValueError(f"opcode {opcode} is neither text nor binary")
    start = _HEADER.size
    body = start + origin_len + room_len
    if len(data) < body:
        raise ValueError("truncated origin or room")
    origin = data[start:start + origin_len].decode("utf-8")
    room = data[start + origin_len:body].decode("utf-8", "surrogatepass")
    payload = bytes(data[body:])
    # Hubs only publish valid text, but anyone may publish on the channel,
    # and invalid UTF-8 in a text frame would make every client fail.
    if opcode == _core.TEXT and not _core.utf8_valid(payload):
        raise ValueError("text payload is not valid UTF-8")
    return origin, room, opcode, payload


def _uses_gevent() -> bool:
    """True under gevent with ``socket`` patched, False without gevent;
    RuntimeError for gevent loaded but not patched."""
    if _gevent.patched():
        return True
    if _gevent.loaded():
        raise RuntimeError(
            "RedisBus: gevent is imported but the socket module is not "
            "monkey-patched, so redis-py would block the whole gevent hub (every "
            "greenlet and WebSocket of the process) each time it waits for Redis. "
            "Call gevent.monkey.patch_all() first thing in the program, before "
            "other imports (gunicorn's gevent worker does it for you); a program "
            "that runs on threads should not import gevent.")
    return False


def _safe_url(url: str) -> str:
    """``url`` without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class RedisBus:
    """A :class:`pyws.hub.Bus` over Redis pub/sub (see the module docstring).

    ``url``: the Redis server (``redis://``, ``rediss://`` or ``unix://``,
    as redis-py reads them).  ``channel``: the pub/sub channel; hubs that
    should share rooms use the same one.  ``queue_size``: messages waiting
    to be published, also while Redis is away; one more is refused
    (``publish`` returns False) and counted in :attr:`lost`.
    ``max_backoff``: the longest wait, in seconds, between reconnection
    attempts.  ``resume_delay``: after an outage, seconds between this
    listener subscribing again and the held messages being published, so
    that the other hubs' listeners are back too (default: ``max_backoff``).
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", channel: str = "pyws:hub",
                 *, queue_size: int = 10000, max_backoff: float = 5.0,
                 resume_delay: Optional[float] = None) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, not {queue_size}")
        if max_backoff < _MIN_BACKOFF:
            raise ValueError(f"max_backoff must be >= {_MIN_BACKOFF}, not {max_backoff}")
        if resume_delay is not None and resume_delay < 0:
            raise ValueError(f"resume_delay must be >= 0, not {resume_delay}")
        self._gevent = _uses_gevent()
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError as exc:
            raise ImportError("RedisBus needs the redis package: "
                              "pip install 'redis>=4'") from exc
        self.url = url
        self.channel = channel
        self.max_backoff = max_backoff
        self.resume_delay = max_backoff if resume_delay is None else resume_delay
        self._redis_errors: Tuple[Type[Exception], ...] = (redis.RedisError, OSError)
        # No retries inside redis-py: retries would stall the publisher;
        # this class reconnects by itself, with its own backoff.
        # Keepalive finds a peer that vanished without a FIN; TCP only.
        tcp = {} if urlsplit(url).scheme == "unix" else {"socket_keepalive": True}
        self._client: redis.Redis = redis.Redis.from_url(
            url, decode_responses=False, retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=5.0, socket_timeout=10.0, health_check_interval=30,
            **tcp)
        if self._gevent:
            import gevent.event  # type: ignore[import-untyped, unused-ignore]
            import gevent.queue  # type: ignore[import-untyped, unused-ignore]

            self._stop: Any = gevent.event.Event()
            self._ready: Any = gevent.event.Event()
            self._queue: Any = gevent.queue.Queue(queue_size + 1)
        else:
            import queue

            self._stop = threading.Event()
            self._ready = threading.Event()
            self._queue = queue.Queue(queue_size + 1)
        self._queue_size = queue_size
        #: Messages the publisher took from the queue and has not published.
        self._in_hand = 0
        self._deliver: Optional[Deliver] = None
        self._tasks: List[Any] = []
        self._closed = False
        self._subscribed = False
        #: When the held messages may be published (monotonic clock).
        self._ready_at = 0.0
        # The outage: what is failing now, since when, how many attempts.
        self._failing: Set[str] = set()
        self._down_since = 0.0
        self._attempts = 0
        self._health_lock = threading.Lock()
        #: Messages that could not be published (queue full, or closed).
        self.lost = 0
        #: Messages received on the channel that were not bus envelopes.
        self.malformed = 0

    def __repr__(self) -> str:
        return f"<RedisBus {_safe_url(self.url)} {self.channel!r}>"

    @property
    def subscribed(self) -> bool:
        """True while the listener is subscribed (for readiness checks)."""
        return self._subscribed

    @property
    def healthy(self) -> bool:
        """False during an outage (from its first failure to its end)."""
        return not self._failing

    @property
    def pending(self) -> int:
        """Messages waiting to be published."""
        return int(self._queue.qsize()) + self._in_hand

    def can_publish(self) -> bool:
        """Whether one more message would be taken (not closed, queue not
        full): ask before broadcasting what must not be lost silently."""
        return not self._closed and self.pending < self._queue_size

    def report(self, component: str, exc: Optional[BaseException]) -> None:
        """Record that ``component`` (any name: "listener" and "publisher"
        are the bus's own) failed with ``exc`` or, with None, worked.  The
        first failure while all is well logs one WARNING; the success that
        leaves nothing failing logs one INFO line; the rest goes to debug."""
        with self._health_lock:
            if exc is not None:
                self._attempts += 1
                if not self._failing:
                    self._down_since = time.monotonic()
                    self._failing.add(component)
                    expected = isinstance(exc, self._redis_errors)
                    logger.warning(
                        "%r: connection to Redis failed (%s: %s); reconnecting, "
                        "broadcasts are held (%d at most) until it is back",
                        self, type(exc).__name__, exc, self._queue_size,
                        exc_info=exc if not expected else None)
                    return
                self._failing.add(component)
                logger.debug("%r: %s failed again (%s: %s)", self, component,
                             type(exc).__name__, exc)
                return
            if component not in self._failing:
                return
            self._failing.discard(component)
            if not self._failing:
                logger.info("%r: subscribed again after %d failed attempt(s); Redis was "
                            "unreachable for %.1fs; %d held broadcast(s) to publish",
                            self, self._attempts, time.monotonic() - self._down_since,
                            self.pending)
                self._attempts = 0

    # -- Bus protocol ----------------------------------------------------------

    def start(self, deliver: Deliver) -> None:
        """Subscribe and call ``deliver(origin, room, opcode, payload)`` for
        every message on the channel, until :meth:`close`.  Returns at once:
        if Redis cannot be reached, the listener logs it and keeps trying."""
        if self._closed:
            raise RuntimeError("RedisBus is closed")
        if self._deliver is not None:
            raise RuntimeError("RedisBus already started")
        self._check_concurrency()
        self._deliver = deliver
        self._tasks = [self._spawn(self._listen, "pyws-redis-listener"),
                       self._spawn(self._publish_loop, "pyws-redis-publisher")]

    def publish(self, origin: str, room: str, opcode: int, payload: bytes) -> bool:
        """Queue one message for Redis; never waits on the network.  False
        (and counted in :attr:`lost`) when the queue is full or the bus
        closed; while Redis is away, messages wait in the queue."""
        envelope = encode_envelope(origin, room, opcode, payload)
        if self._closed or self.pending >= self._queue_size:
            self.lost += 1
            return False
        try:
            self._queue.put_nowait(envelope)
        except Exception:  # queue.Full / gevent.queue.Full: a racing publish
            self.lost += 1
            return False
        return True

    def close(self) -> None:
        """Publish what is queued (if Redis answers), stop listening, and
        disconnect.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._ready.set()  # a publisher waiting for the listener goes on
        try:
            self._queue.put_nowait(None)  # the publisher stops after the rest
        except Exception:
            pass  # full: the publisher sees _closed after its batch
        listener, publisher = self._tasks if self._tasks else (None, None)
        if publisher is not None:
            self._join(publisher)
        if listener is not None:
            if self._gevent and not self._is_current(listener):
                # A greenlet waiting on Redis can be interrupted at once.
                listener.kill(block=True, timeout=_CLOSE_TIMEOUT)
            self._join(listener)
        self._client.close()

    # -- tasks -----------------------------------------------------------------

    def _check_concurrency(self) -> None:
        if _uses_gevent() != self._gevent:
            raise RuntimeError("RedisBus: gevent monkey-patching changed between "
                               "creating and starting the bus; patch first")

    def _spawn(self, function: Callable[[], None], name: str) -> Any:
        if self._gevent:
            import gevent  # type: ignore[import-untyped, unused-ignore]

            return gevent.spawn(function)
        thread = threading.Thread(target=function, name=name, daemon=True)
        thread.start()
        return thread

    def _is_current(self, task: Any) -> bool:
        if self._gevent:
            import gevent

            return task is gevent.getcurrent()  # type: ignore[no-any-return, unused-ignore]
        return task is threading.current_thread()

    def _join(self, task: Any) -> None:
        if self._is_current(task):
            return  # close() called from the task itself (from deliver)
        task.join(_CLOSE_TIMEOUT)
        alive = not task.dead if self._gevent else task.is_alive()
        if alive:
            logger.warning("%r: a task did not stop within %gs", self, _CLOSE_TIMEOUT)

    def _backoff(self, failures: int) -> bool:
        """Wait before the next attempt; False if closed meanwhile."""
        delay = min(self.max_backoff, _MIN_BACKOFF * 2 ** min(failures - 1, 16))
        # Jitter, so that the processes of a restarted Redis do not all
        # reconnect in the same instant.
        return not self._stop.wait(delay * random.uniform(0.5, 1.0))

    def _listen(self) -> None:
        """Subscribe, deliver messages; on a connection error, report it,
        back off and subscribe again."""
        failures = 0
        while not self._closed:
            pubsub = self._client.pubsub()  # type: ignore[no-untyped-call, unused-ignore]
            try:
                pubsub.subscribe(self.channel)
                while not self._closed:
                    # A timeout, so that a thread sees close() and that
                    # redis-py gets to send its periodic health-check PING.
                    message = pubsub.get_message(timeout=_POLL_INTERVAL)
                    if message is None:
                        continue
                    kind = message["type"]
                    if kind == "message":
                        self._dispatch(message["data"])
                    elif kind == "subscribe":
                        self._subscribed = True
                        if failures:
                            # The other hubs' listeners come back within
                            # their backoff: hold the backlog until then.
                            self._ready_at = time.monotonic() + self.resume_delay
                        else:
                            logger.info("%r: subscribed", self)
                        self._ready.set()
                        self.report("listener", None)
                        failures = 0
            except Exception as exc:
                self._subscribed = False
                self._ready.clear()
                if self._closed:
                    break
                failures += 1
                self.report("listener", exc)
                if not self._backoff(failures):
                    break
            finally:
                self._subscribed = False
                _quietly(pubsub.close)

    def _dispatch(self, data: Any) -> None:
        try:
            origin, room, opcode, payload = decode_envelope(bytes(data))
        except (ValueError, TypeError) as exc:
            self.malformed += 1
            logger.warning("%r: ignoring a message that is not a pyws envelope: %s",
                           self, exc)
            return
        deliver = self._deliver
        assert deliver is not None
        try:
            deliver(origin, room, opcode, payload)
        except Exception:
            logger.exception("%r: delivering a message to room %r failed", self, room)

    def _wait_until_ready(self) -> bool:
        """Wait until the listener is subscribed and the resume delay over;
        False once closed (publish what is left, if Redis answers)."""
        while not self._closed:
            if not self._ready.wait(_POLL_INTERVAL * 4):
                continue
            delay = self._ready_at - time.monotonic()
            if delay <= 0:
                return True
            if self._stop.wait(delay):
                return False
        return False

    def _publish_loop(self) -> None:
        """Publish queued messages in order, a pipeline per batch; a batch
        that failed is published again once Redis is back."""
        failures = 0
        stop = False
        batch: List[bytes] = []
        while not stop:
            if not batch:
                item = self._queue.get()
                while item is not None:
                    batch.append(item)
                    if len(batch) >= _BATCH:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except Exception:  # queue.Empty / gevent.queue.Empty
                        break
                stop = item is None
            self._in_hand = len(batch)
            if not batch:
                continue
            self._wait_until_ready()
            try:
                pipe = self._client.pipeline(transaction=False)
                for envelope in batch:
                    pipe.publish(self.channel, envelope)
                pipe.execute()
                batch = []
                self._in_hand = 0
                failures = 0
                self.report("publisher", None)
            except Exception as exc:
                failures += 1
                self.report("publisher", exc)
                if self._closed:
                    self.lost += len(batch) + self._drain()
                    return
                if not self._backoff(failures):
                    self.lost += len(batch) + self._drain()
                    return
            if self._closed and not batch and self._queue.qsize() == 0:
                stop = True

    def _drain(self) -> int:
        """Empty the queue; how many messages it held."""
        count = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except Exception:
                return count
            if item is None:
                return count
            count += 1


def _quietly(function: Callable[[], None]) -> None:
    try:
        function()
    except Exception:
        pass
