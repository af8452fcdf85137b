"""Redis pub/sub as a :class:`pyws.Hub` bus: rooms shared between processes.

    hub = pyws.Hub(bus=RedisBus("redis://127.0.0.1:6379/0"))

Every hub whose bus has the same Redis server, database and ``channel`` gets
the broadcasts of the others (a broadcast reaches the local members at once
and goes to Redis; each hub skips the copy of its own).  Needs the ``redis``
package (redis-py 4 or later), imported only when a RedisBus is made.

Delivery is Redis pub/sub's: at most once, nothing stored.  Messages of one
hub reach another in the order they were broadcast.  While a hub is cut off
from Redis, what it publishes and what others publish for it is lost; it
logs the outage and reconnects by itself, with backoff, until closed.

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
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Tuple, Type
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
    to be published; beyond that (Redis slower than the broadcasts) they
    are lost, counted in :attr:`lost`.  ``max_backoff``: the longest wait,
    in seconds, between reconnection attempts.
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", channel: str = "pyws:hub",
                 *, queue_size: int = 10000, max_backoff: float = 5.0) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, not {queue_size}")
        if max_backoff < _MIN_BACKOFF:
            raise ValueError(f"max_backoff must be >= {_MIN_BACKOFF}, not {max_backoff}")
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
        self._redis_errors: Tuple[Type[Exception], ...] = (redis.RedisError, OSError)
        # No retries inside redis-py: a retried PUBLISH whose reply was lost
        # would be delivered twice, and retries would stall the publisher;
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
            self._queue: Any = gevent.queue.Queue(queue_size + 1)
        else:
            import queue

            self._stop = threading.Event()
            self._queue = queue.Queue(queue_size + 1)
        self._queue_size = queue_size
        self._deliver: Optional[Deliver] = None
        self._tasks: List[Any] = []
        self._closed = False
        self._publisher_down = False
        self._subscribed = False
        #: Messages that could not be published (queue full, Redis down).
        self.lost = 0
        #: Messages received on the channel that were not bus envelopes.
        self.malformed = 0

    def __repr__(self) -> str:
        return f"<RedisBus {_safe_url(self.url)} {self.channel!r}>"

    @property
    def subscribed(self) -> bool:
        """True while the listener is subscribed (for readiness checks)."""
        return self._subscribed

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

    def publish(self, origin: str, room: str, opcode: int, payload: bytes) -> None:
        """Queue one message for Redis; never waits on the network.  Lost
        (counted in :attr:`lost`) while Redis is unreachable or the queue
        is full, or once closed."""
        envelope = encode_envelope(origin, room, opcode, payload)
        if self._closed or self._publisher_down or self._queue.qsize() >= self._queue_size:
            self.lost += 1
            return
        try:
            self._queue.put_nowait(envelope)
        except Exception:  # queue.Full / gevent.queue.Full: a racing publish
            self.lost += 1

    def close(self) -> None:
        """Publish what is queued (if Redis answers), stop listening, and
        disconnect.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
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
        """Subscribe, deliver messages; on a connection error, log,
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
                            logger.info("%r: subscribed again after %d failed attempt(s); "
                                        "messages published meanwhile were lost",
                                        self, failures)
                        else:
                            logger.info("%r: subscribed", self)
                        failures = 0
            except Exception as exc:
                self._subscribed = False
                if self._closed:
                    break
                failures += 1
                self._log_failure("connection to Redis failed", exc, failures,
                                  "reconnecting")
                if not self._backoff(failures):
                    break
            finally:
                self._subscribed = False
                _quietly(pubsub.close)

    def _log_failure(self, what: str, exc: Exception, failures: int, then: str) -> None:
        """One warning per outage, not one per attempt; a traceback only
        for what is not a Redis or network error (a bug, a bad option)."""
        expected = isinstance(exc, self._redis_errors)
        if failures == 1:
            logger.warning("%r: %s (%s: %s); %s", self, what, type(exc).__name__, exc,
                           then, exc_info=not expected)
        else:
            logger.debug("%r: %s again (%s: %s)", self, what, type(exc).__name__, exc)

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

    def _publish_loop(self) -> None:
        """Publish queued messages in order, a pipeline per batch."""
        failures = 0
        stop = False
        while not stop:
            item = self._queue.get()
            batch: List[bytes] = []
            while item is not None:
                batch.append(item)
                if len(batch) >= _BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except Exception:  # queue.Empty / gevent.queue.Empty
                    break
            stop = item is None or (self._closed and self._queue.qsize() == 0)
            if not batch:
                continue
            try:
                pipe = self._client.pipeline(transaction=False)
                for envelope in batch:
                    pipe.publish(self.channel, envelope)
                pipe.execute()
                if failures:
                    logger.info("%r: publishing again after %d failed attempt(s)",
                                self, failures)
                failures = 0
            except Exception as exc:
                failures += 1
                self._log_failure("publishing failed", exc, failures,
                                  "messages are lost until Redis answers")
                # Down: publish() drops at once instead of queueing stale
                # messages; what is queued already is lost too.
                self._publisher_down = True
                self.lost += len(batch) + self._drain()
                if self._closed or not self._backoff(failures):
                    return
                self._publisher_down = False

    def _drain(self) -> int:
        """Empty the queue; how many messages it held."""
        count = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except Exception:
                return count
            if item is None:
                self._queue.put_nowait(None)  # keep the stop marker
                return count
            count += 1


def _quietly(function: Callable[[], None]) -> None:
    try:
        function()
    except Exception:
        pass
