"""Group chat on pyws: Flask, rooms with pyws.Hub, presence, optional Redis.

    python3 examples/chat/app.py [--host 127.0.0.1] [--port 9527] [--redis URL]
                                 [--allow-origin ORIGIN ...]

Open http://127.0.0.1:9527/, pick a nickname and a room.  The page talks JSON
over the WebSocket at /ws (the schema is in README.md, "Group chat").  The
echo demo from the Flask + gevent tutorial stays available: its WebSocket at
/echo, its page at /echo.html.

Without --redis (and without $PYWS_REDIS_URL) everything lives in this
process: rooms in a ``pyws.Hub``, who is online in a dict.  With --redis, run
as many processes as you like against the same Redis: the hub's broadcasts
travel through ``pyws.redis_bus.RedisBus`` (pub/sub) and who is online is
kept in Redis (see ``RedisPresence``), so users connected to different
processes chat in the same rooms and see each other online.

The chat's WebSocket accepts pages of its own origin only (the Host it is
served on; --allow-origin adds others): any other web page a visitor opens
would otherwise be able to chat in their name.  Every client has rate limits
on joins, leaves and messages (past them: closed with 1008 and a reason);
presence goes out as deltas, coalesced for a moment so that a join/leave
flood costs the room nothing.

The app object can also be served by another gevent server, e.g. gunicorn
with ``-k pyws.gunicorn.GeventWebSocketWorker``: ``create_app()`` reads
$PYWS_REDIS_URL.
"""
from __future__ import annotations

# gevent's monkey-patching comes before any other import, so that socket,
# ssl, threading and time are gevent's everywhere.  It is done always, not
# only with --redis: redis-py (the bus and the presence store) does plain
# blocking socket I/O that must yield to the other greenlets, and deciding
# from the command line would mean parsing it before importing anything and
# keeping two code paths apart.  The app runs under gevent in both modes, so
# the patch costs the in-memory mode nothing.
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import base64  # noqa: E402
import errno  # noqa: E402
import hashlib  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import OrderedDict, deque  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any, Deque, Dict, Iterable, List, Optional, Set, Tuple  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import gevent  # noqa: E402
from flask import Flask, Response, request, send_from_directory  # noqa: E402
from gevent.pool import Pool  # noqa: E402

from pyws import ConnectionClosed, Hub, WebSocket, WebSocketServer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
STATIC = os.path.join(HERE, "static")
ECHO_PAGE = os.path.join(os.path.dirname(HERE), "echo.html")

logger = logging.getLogger("chat")

# -- limits --------------------------------------------------------------------

#: Longest nickname, room name and message text, in characters.
NICK_MAX = 24
ROOM_MAX = 32
TEXT_MAX = 1000
#: Largest client message the app reads (UTF-8 bytes): a longer one gets the
#: error "too_large" and the connection stays open.
MESSAGE_MAX_BYTES = 4096
#: Largest WebSocket message at all: pyws closes the connection with 1009
#: past this, before the app sees it.
WS_MAX_MESSAGE_SIZE = 64 * 1024
#: A session id (chosen by the page, kept in sessionStorage) lets a page that
#: reconnects take its nickname back from its own previous connection.
SESSION_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
ROOM_RE = re.compile(r"[\w][\w.-]*")
#: Close code for a connection whose nickname a newer connection of the same
#: page took over (the page does not reconnect after it).
CLOSE_REPLACED = 4001
#: Close code past a rate limit (policy violation), with a reason in words.
CLOSE_POLICY = 1008
#: Rate limits per connection, as token buckets: (burst, refill per second).
#: A person joins, leaves or renames a few times a minute and types a few
#: messages a second at most; past these the connection is closed.
JOIN_LIMIT = (5.0, 0.5)
LEAVE_LIMIT = (5.0, 0.5)
MESSAGE_LIMIT = (20.0, 5.0)
#: The last messages of a room a page gets when it joins.
HISTORY_SIZE = int(os.environ.get("PYWS_CHAT_HISTORY", "50"))
#: Rooms whose history this process keeps (in-memory mode), least recently
#: used dropped first: rooms cost memory even after everyone left.
HISTORY_ROOMS = 1000
#: Seconds presence changes wait, so that a join undone by a leave (or the
#: reverse) within them is sent to nobody.
PRESENCE_DELAY = 0.1
#: Broadcasts held while Redis is away; a message past them gets an error.
BUS_QUEUE = int(os.environ.get("PYWS_CHAT_BUS_QUEUE", "1000"))
#: Redis presence entries expire this long after their last refresh, so the
#: users of a process that crashed leave the online lists by themselves.
PRESENCE_TTL = float(os.environ.get("PYWS_CHAT_PRESENCE_TTL", "30"))
#: Seconds between keepalive pings: a vanished browser is noticed (and leaves
#: its room) after at most PING_INTERVAL + PING_TIMEOUT.
PING_INTERVAL = 20.0
PING_TIMEOUT = 20.0
#: Seconds to wait for a browser's close frame (as on shutdown).
CLOSE_TIMEOUT = 3.0
#: The WebSocketServer options, also read by pyws.gunicorn's worker from
#: app.config["PYWS_SERVER_OPTIONS"].
SERVER_OPTIONS: Dict[str, Any] = {
    "max_message_size": WS_MAX_MESSAGE_SIZE,
    "ping_interval": PING_INTERVAL,
    "ping_timeout": PING_TIMEOUT,
    "close_timeout": CLOSE_TIMEOUT,
}


def now_ms() -> int:
    return int(time.time() * 1000)


def dumps(obj: Dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


# -- presence: who is online in which room -------------------------------------


@dataclass
class Presence:
    """The answer of a presence store to claim / release / refresh.

    ``status``: "ok"; "taken" (claim: another page holds the nickname);
    "lost" (refresh: someone else holds it now).  ``changed``: the room's list
    changed, so it is to be broadcast.  ``version`` orders lists: it grows
    with every change (in any room), and a page keeps the highest it saw.
    ``swept``: nicknames whose entries expired (their process died) and were
    removed on the way.  ``replaced``: the connection a claim by the same
    session took the nickname from.  ``back``: a refresh restored an entry
    that had timed out for the others.
    """

    status: str
    changed: bool
    version: int
    nicks: List[str]
    swept: List[str] = field(default_factory=list)
    replaced: str = ""
    back: bool = False


def _sorted(nicks: Any) -> List[str]:
    return sorted(nicks, key=lambda n: (n.casefold(), n))


class MemoryPresence:
    """Presence for a single process: a dict per room, nick -> (session, conn).

    Every entry belongs to a live connection of this process and is removed
    when it ends, so nothing ever needs to expire."""

    refresh_interval: Optional[float] = None

    def __init__(self) -> None:
        self._rooms: Dict[str, Dict[str, Tuple[str, str]]] = {}
        self._counter = itertools.count(1)
        self._version = 0
        #: room -> its last messages (JSON), least recently used first.
        self._history: OrderedDict[str, Deque[str]] = OrderedDict()

    def _result(self, room: str, status: str, changed: bool, replaced: str = "") -> Presence:
        if changed:
            self._version = next(self._counter)
        return Presence(status, changed, self._version,
                        _sorted(self._rooms.get(room, {})), replaced=replaced)

    def claim(self, room: str, nick: str, session: str, conn: str) -> Presence:
        members = self._rooms.setdefault(room, {})
        current = members.get(nick)
        if current is not None and current[0] != session:
            return self._result(room, "taken", False)
        members[nick] = (session, conn)
        return self._result(room, "ok", current is None,
                            current[1] if current is not None else "")

    def release(self, room: str, nick: str, session: str, conn: str) -> Presence:
        members = self._rooms.get(room, {})
        changed = members.get(nick) == (session, conn)
        if changed:
            del members[nick]
            if not members:
                del self._rooms[room]
        return self._result(room, "ok", changed)

    def refresh(self, room: str, nick: str, session: str, conn: str) -> Presence:
        return self._result(room, "ok", False)

    def add_history(self, room: str, message: str) -> None:
        recent = self._history.pop(room, None)
        if recent is None:
            recent = deque(maxlen=HISTORY_SIZE)
            while len(self._history) >= HISTORY_ROOMS:
                self._history.popitem(last=False)
        recent.append(message)
        self._history[room] = recent  # now the most recently used

    def history(self, room: str) -> List[str]:
        return list(self._history.get(room, ()))

    def close(self) -> None:
        pass


# One script does every presence operation, so each is atomic in Redis.
#   KEYS[1]  sorted set, nick -> expiry time (ms)
#   KEYS[2]  hash, nick -> "session conn" (who holds the nickname)
#   KEYS[3]  the version counter (one for all rooms)
#   KEYS[4]  set of the nicknames swept (timed out) lately
#   ARGV     op ("claim" | "release" | "refresh"), now (ms), ttl (ms), nick,
#            session, conn
# First it sweeps the room's expired entries; returns
# {status, changed, version, nicks, swept, replaced, back}.  ``back``: a
# refresh put back an entry that had been swept (the others saw a timeout);
# an entry that is simply gone (Redis restarted empty) comes back quietly.
# The version never goes down, not even across a restart of Redis (it is at
# least the time in microseconds), so that pages can order lists and deltas.
_PRESENCE_LUA = """
local exp, own, ver, gone = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local op, now, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local nick, session = ARGV[4], ARGV[5]
local owner = session .. ' ' .. ARGV[6]
local status, changed, replaced, back = 'ok', 0, '', 0
local swept = redis.call('ZRANGEBYSCORE', exp, '-inf', now)
for _, n in ipairs(swept) do
  redis.call('ZREM', exp, n)
  redis.call('HDEL', own, n)
  redis.call('SADD', gone, n)
  redis.call('PEXPIRE', gone, ttl * 10)
  changed = 1
end
local current = redis.call('HGET', own, nick)
if op == 'claim' or op == 'refresh' then
  if current and current ~= owner then
    if op == 'claim' and string.match(current, '^(%S+) ') == session then
      replaced = string.match(current, ' (%S+)$')
    elseif op == 'claim' then
      status = 'taken'
    else
      status = 'lost'
    end
  end
  if status == 'ok' then
    if not current then
      changed = 1
      if redis.call('SREM', gone, nick) == 1 and op == 'refresh' then back = 1 end
    end
    redis.call('ZADD', exp, now + ttl, nick)
    redis.call('HSET', own, nick, owner)
    redis.call('PEXPIRE', exp, ttl)
    redis.call('PEXPIRE', own, ttl)
  end
elseif op == 'release' then
  if current == owner then
    redis.call('ZREM', exp, nick)
    redis.call('HDEL', own, nick)
    changed = 1
  end
end
local version = tonumber(redis.call('GET', ver) or '0')
if changed == 1 then
  version = math.max(version + 1, now * 1000)
  redis.call('SET', ver, string.format('%.0f', version))
end
return {status, changed, string.format('%.0f', version), redis.call('ZRANGE', exp, 0, -1),
        swept, replaced, back}
"""


class RedisPresence:
    """Presence shared by every process using the same Redis.

    Per room, a sorted set of nicknames scored by expiry time and a hash of
    who holds each one.  Every process refreshes its own users' entries every
    ``refresh_interval`` seconds (a third of ``ttl``); an entry that was not
    refreshed for ``ttl`` seconds belongs to a process that died, and the
    next operation on the room removes it (the other processes' refreshes
    see to that within ``refresh_interval``).  A clean exit or a closed
    connection removes its entry at once."""

    def __init__(self, url: str, ttl: float = PRESENCE_TTL, prefix: str = "pyws-chat") -> None:
        import redis  # only needed with --redis

        self.ttl = ttl
        self.refresh_interval = ttl / 3
        self.prefix = prefix
        self._redis = redis.Redis.from_url(url, decode_responses=True,
                                           socket_timeout=5, socket_connect_timeout=5)
        self._script = self._redis.register_script(_PRESENCE_LUA)

    def _run(self, op: str, room: str, nick: str, session: str, conn: str) -> Presence:
        p = self.prefix
        status, changed, version, nicks, swept, replaced, back = self._script(
            keys=[f"{p}:room:{room}:expires", f"{p}:room:{room}:owners", f"{p}:version",
                  f"{p}:room:{room}:swept"],
            args=[op, now_ms(), int(self.ttl * 1000), nick, session, conn])
        return Presence(status, bool(changed), int(version), _sorted(nicks),
                        list(swept), replaced or "", bool(back))

    def claim(self, room: str, nick: str, session: str, conn: str) -> Presence:
        return self._run("claim", room, nick, session, conn)

    def release(self, room: str, nick: str, session: str, conn: str) -> Presence:
        return self._run("release", room, nick, session, conn)

    def refresh(self, room: str, nick: str, session: str, conn: str) -> Presence:
        return self._run("refresh", room, nick, session, conn)

    def add_history(self, room: str, message: str) -> None:
        key = f"{self.prefix}:room:{room}:history"
        pipe = self._redis.pipeline(transaction=False)
        pipe.rpush(key, message)
        pipe.ltrim(key, -HISTORY_SIZE, -1)
        pipe.expire(key, 7 * 86400)
        pipe.execute()

    def history(self, room: str) -> List[str]:
        return list(self._redis.lrange(f"{self.prefix}:room:{room}:history",
                                       -HISTORY_SIZE, -1))

    def close(self) -> None:
        self._redis.close()


# -- the chat ------------------------------------------------------------------


class ChatError(Exception):
    """A bad request from a page: answered {"type": "error", ...}."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _check_nick(value: Any) -> str:
    if not isinstance(value, str):
        raise ChatError("invalid_nick", "the nickname must be a string")
    nick = value.strip()
    if not nick:
        raise ChatError("invalid_nick", "the nickname is empty")
    if len(nick) > NICK_MAX:
        raise ChatError("invalid_nick", f"the nickname is longer than {NICK_MAX} characters")
    if not all(ch.isprintable() for ch in nick):
        raise ChatError("invalid_nick", "the nickname has control or invisible characters")
    return nick


def _check_room(value: Any) -> str:
    if not isinstance(value, str):
        raise ChatError("invalid_room", "the room name must be a string")
    room = value.strip()
    if not room:
        raise ChatError("invalid_room", "the room name is empty")
    if len(room) > ROOM_MAX:
        raise ChatError("invalid_room", f"the room name is longer than {ROOM_MAX} characters")
    if not ROOM_RE.fullmatch(room):
        raise ChatError("invalid_room", "a room name has letters, digits, '_', '.' and '-' "
                                        "and starts with a letter, digit or '_'")
    return room


class TokenBucket:
    """``burst`` actions at once, then ``rate`` per second."""

    __slots__ = ("burst", "rate", "tokens", "stamp")

    def __init__(self, burst: float, rate: float) -> None:
        self.burst, self.rate = burst, rate
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class RateLimited(Exception):
    """A client went past a rate limit: closed with 1008 and this reason."""


class PresenceFeed:
    """Presence deltas of this process, held PRESENCE_DELAY seconds per room
    and then sent together, one per nickname: its last join or leave
    replaces the earlier ones.  A join/leave flood costs the room one
    "leave" per flooder and period (harmless to whoever never saw the
    join; it corrects whoever got a snapshot in between, here or in
    another process)."""

    def __init__(self, chat: Chat) -> None:
        self.chat = chat
        # room -> [(event, the WebSocket not to send it to)]
        self._pending: Dict[str, List[Tuple[Dict[str, Any], Optional[WebSocket]]]] = {}

    def add(self, room: str, event: Dict[str, Any],
            exclude: Optional[WebSocket] = None) -> None:
        events = self._pending.get(room)
        if events is None:
            events = self._pending[room] = []
            gevent.spawn_later(PRESENCE_DELAY, self.flush, room)
        if event["type"] in ("join", "leave"):
            for i in range(len(events) - 1, -1, -1):
                other = events[i][0]
                if other["type"] == "rename":
                    if event["nick"] in (other["old"], other["nick"]):
                        break  # order matters across a rename: keep both
                elif other["nick"] == event["nick"]:
                    del events[i]  # superseded: only the last state counts
                    if other["type"] == "leave" or exclude is not None:
                        exclude = None  # the joiner may have been told it left
                    break
        events.append((event, exclude))

    def flush_all(self) -> None:
        for room in list(self._pending):
            self.flush(room)

    def flush(self, room: str) -> None:
        """Send what is held for ``room`` (also before a message to it, so
        that nobody sees a message from someone not yet listed)."""
        for event, exclude in self._pending.pop(room, ()):
            self.chat.hub.broadcast(room, dumps(event), exclude=exclude)


class Chat:
    """Rooms (a pyws.Hub), presence, history, and this process's connections."""

    def __init__(self, redis_url: Optional[str] = None) -> None:
        self.redis_url = redis_url
        if redis_url:
            try:
                from pyws.redis_bus import RedisBus
            except ImportError as exc:
                raise SystemExit(f"--redis needs pyws.redis_bus and the redis package "
                                 f"(pip install redis): {exc}") from exc
            self.presence: Any = RedisPresence(redis_url)
            # A short backoff: the rooms come back within a second of Redis.
            self.bus: Any = RedisBus(redis_url, queue_size=BUS_QUEUE, max_backoff=1.0)
            self.hub = Hub(bus=self.bus)
        else:
            self.presence = MemoryPresence()
            self.bus = None
            self.hub = Hub()
        self.feed = PresenceFeed(self)
        #: Chat connections of this process, by connection id.
        self.sessions: Dict[str, ChatSession] = {}
        #: Every open WebSocket (chat and echo), to close them on shutdown.
        self.sockets: Set[WebSocket] = set()
        #: The greenlets running chat views, to let them finish on shutdown.
        self.views: Set[Any] = set()
        self._refresher = None
        if self.presence.refresh_interval:
            self._refresher = gevent.spawn(self._refresh_forever)

    def store(self, op: str, *args: Any) -> Any:
        """A call to the presence store.  Failures are reported to the bus,
        which logs one line when an outage starts and one when it ends."""
        try:
            result = getattr(self.presence, op)(*args)
        except Exception as exc:
            if self.bus is not None:
                self.bus.report("presence", exc)
            else:
                logger.exception("presence %s failed", op)
            raise
        if self.bus is not None:
            self.bus.report("presence", None)
        return result

    def announce(self, room: str, change: Optional[Presence], joined: Optional[str] = None,
                 left: Optional[str] = None, reason: str = "left",
                 exclude: Optional[WebSocket] = None) -> None:
        """Queue the deltas a presence operation made (``change`` None: the
        store failed; the leave is told anyway, without a version)."""
        ts = now_ms()
        version = change.version if change is not None else None
        for nick in change.swept if change is not None else ():
            self.feed.add(room, {"type": "leave", "room": room, "nick": nick, "ts": ts,
                                 "reason": "timeout", "version": version})
        if change is not None and not change.changed:
            return
        if joined is not None:
            self.feed.add(room, {"type": "join", "room": room, "nick": joined, "ts": ts,
                                 "version": version}, exclude)
        if left is not None:
            self.feed.add(room, {"type": "leave", "room": room, "nick": left, "ts": ts,
                                 "reason": reason, "version": version})

    def replaced(self, conn: str) -> None:
        """A newer connection of the same page took ``conn``'s nickname."""
        session = self.sessions.get(conn)
        if session is not None:
            session.evict()

    def _refresh_forever(self) -> None:
        """Keep this process's presence entries alive (Redis), notice the
        ones that expired elsewhere, and evict users whose nickname was taken
        over while their entries had lapsed."""
        interval = self.presence.refresh_interval
        while True:
            gevent.sleep(interval)  # a period, not a synchronisation
            for session in list(self.sessions.values()):
                try:
                    session.refresh()
                except Exception:
                    break  # Redis is away (reported once): next period

    def close(self) -> None:
        if self._refresher is not None:
            self._refresher.kill(block=False)
        self.feed.flush_all()  # the last leaves, before the bus stops
        self.hub.close()
        self.presence.close()


class ChatSession:
    """One chat connection: at most one room at a time."""

    def __init__(self, chat: Chat, ws: WebSocket) -> None:
        self.chat = chat
        self.ws = ws
        self.id = uuid.uuid4().hex
        self.session = self.id
        self.room: Optional[str] = None
        self.nick: Optional[str] = None
        self.joins = TokenBucket(*JOIN_LIMIT)
        self.leaves = TokenBucket(*LEAVE_LIMIT)
        self.messages = TokenBucket(*MESSAGE_LIMIT)

    def send(self, message: Dict[str, Any]) -> None:
        # Through the hub, so that it stays in order with the broadcasts.
        self.chat.hub.send(self.ws, dumps(message))

    def error(self, reason: str, detail: str) -> None:
        self.send({"type": "error", "reason": reason, "detail": detail})

    def run(self) -> None:
        self.chat.sessions[self.id] = self
        try:
            for raw in self.ws:
                try:
                    self.handle(raw)
                except ChatError as exc:
                    self.error(exc.reason, exc.detail)
                except RateLimited as exc:
                    _close_quietly(self.ws, CLOSE_POLICY, str(exc))
                    break
        finally:
            self.chat.sessions.pop(self.id, None)
            self.leave()

    def handle(self, raw: Any) -> None:
        if not isinstance(raw, str):
            raise ChatError("binary_not_supported", "messages are JSON text, not binary")
        if len(raw) > MESSAGE_MAX_BYTES or len(raw.encode("utf-8")) > MESSAGE_MAX_BYTES:
            raise ChatError("too_large", f"a message is at most {MESSAGE_MAX_BYTES} bytes")
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise ChatError("invalid_json", "the message is not valid JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            raise ChatError("invalid_message", 'a message is a JSON object with a "type"')
        kind = data["type"]
        if kind == "join":
            if not self.joins.take():
                raise RateLimited("too many joins: slow down")
            self.on_join(data)
        elif kind == "message":
            if not self.messages.take():
                raise RateLimited("too many messages: slow down")
            self.on_message(data)
        elif kind == "leave":
            if not self.leaves.take():
                raise RateLimited("too many leaves: slow down")
            self.leave()
        elif kind == "rename":
            if not self.joins.take():
                raise RateLimited("too many renames: slow down")
            self.on_rename(data)
        else:
            raise ChatError("unknown_type", f"unknown message type {kind[:40]!r}")

    def on_join(self, data: Dict[str, Any]) -> None:
        room = _check_room(data.get("room"))
        nick = _check_nick(data.get("nick"))
        session = data.get("session", self.id)
        if not isinstance(session, str) or not SESSION_RE.fullmatch(session):
            raise ChatError("invalid_message", "the session is 1-64 letters, digits, '_' or '-'")
        if self.room is not None:
            self.leave()
        try:
            change = self.chat.store("claim", room, nick, session, self.id)
            history = self.chat.store("history", room)
        except Exception:
            raise ChatError("unavailable", "the server cannot reach its presence store; "
                                           "try again in a moment") from None
        if change.status != "ok":
            self.chat.announce(room, change)  # the entries it swept on the way
            raise ChatError("nick_taken", f"the nickname {nick} is already in use in {room}")
        self.room, self.nick, self.session = room, nick, session
        # The snapshot goes out before joining the hub, so that it comes
        # before every delta broadcast to the room; deltas older than it
        # (version <= its version) are ignored by the page.
        self.send({"type": "joined", "room": room, "nick": nick, "nicks": change.nicks,
                   "version": change.version, "history": [json.loads(m) for m in history]})
        self.chat.hub.join(self.ws, room)
        if change.replaced:
            self.chat.replaced(change.replaced)
        self.chat.announce(room, change, joined=nick, exclude=self.ws)

    def on_rename(self, data: Dict[str, Any]) -> None:
        if self.room is None or self.nick is None:
            raise ChatError("not_joined", "join a room first")
        new = _check_nick(data.get("nick"))
        room, old = self.room, self.nick
        if new == old:
            return
        try:
            change = self.chat.store("claim", room, new, self.session, self.id)
        except Exception:
            raise ChatError("unavailable", "the server cannot reach its presence store; "
                                           "try again in a moment") from None
        if change.status != "ok":
            raise ChatError("nick_taken", f"the nickname {new} is already in use in {room}")
        self.nick = new
        try:
            change = self.chat.store("release", room, old, self.session, self.id)
        except Exception:
            pass  # the old entry expires by itself
        self.send({"type": "renamed", "room": room, "old": old, "nick": new})
        self.chat.feed.add(room, {"type": "rename", "room": room, "old": old, "nick": new,
                                  "ts": now_ms(), "version": change.version}, self.ws)

    def on_message(self, data: Dict[str, Any]) -> None:
        if self.room is None or self.nick is None:
            raise ChatError("not_joined", "join a room first")
        text = data.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ChatError("invalid_text", "the text must be a non-empty string")
        if len(text) > TEXT_MAX:
            raise ChatError("text_too_long", f"a message text is at most {TEXT_MAX} characters")
        bus = self.chat.bus
        if bus is not None and not bus.can_publish():
            # Redis is away and the backlog is full: say so, for each one.
            raise ChatError("not_sent", "the message was not sent: the server cannot reach "
                                        "the other servers right now; try again later")
        room = self.room
        message = {"type": "message", "room": room, "nick": self.nick, "text": text,
                   "ts": now_ms()}
        self.chat.feed.flush(room)
        encoded = dumps(message)
        self.chat.hub.broadcast(room, encoded)
        try:
            self.chat.store("add_history", room, encoded)
        except Exception:
            pass  # Redis is away (reported once); the message went out

    def leave(self) -> None:
        """Leave the current room, if any (also when the connection ends)."""
        room, nick = self.room, self.nick
        if room is None or nick is None:
            return
        self.room = self.nick = None
        self.chat.hub.leave(self.ws, room)
        try:
            change: Optional[Presence] = self.chat.store("release", room, nick,
                                                         self.session, self.id)
        except Exception:
            change = None  # the entry will expire; the room hears of it now
        self.chat.announce(room, change, left=nick)

    def refresh(self) -> None:
        room, nick = self.room, self.nick
        if room is None or nick is None:
            return
        change = self.chat.store("refresh", room, nick, self.session, self.id)
        if change.status == "lost":
            self.chat.announce(room, change)
            self.evict()
            return
        # An entry put back after Redis lost it is no news (the others never
        # saw this user leave); one that had timed out for them is.
        self.chat.announce(room, change, joined=nick if change.back else None)

    def evict(self) -> None:
        """Another connection holds our nickname now: close (the page does
        not reconnect after this code)."""
        self.room = self.nick = None  # nothing of ours to release any more
        gevent.spawn(_close_quietly, self.ws, CLOSE_REPLACED, "nickname taken over")


def _close_quietly(ws: WebSocket, code: int, reason: str) -> None:
    try:
        ws.close(code, reason)
    except (ConnectionClosed, OSError, ValueError):
        pass


# -- the Flask app -------------------------------------------------------------


def _echo_page() -> str:
    """examples/echo.html, with its WebSocket moved from /ws (the chat's here)
    to /echo.  Checked at start-up: a changed page fails loudly."""
    with open(ECHO_PAGE, encoding="utf-8") as f:
        page = f.read()
    old, new = 'location.host + "/ws"', 'location.host + "/echo"'
    if page.count(old) != 1:
        raise RuntimeError(f"{ECHO_PAGE}: expected one {old!r} to point at /echo")
    return page.replace(old, new)


def _inline_hashes(page: str, tag: str) -> List[str]:
    """CSP sources allowing the page's inline <tag> blocks, by their hash."""
    return [f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
            for body in re.findall(rf"<{tag}>(.*?)</{tag}>", page, re.S)]


def content_security_policy(echo_page: str) -> str:
    """One policy for every page and file the app serves: its own scripts,
    styles and WebSocket only; inline code only echo.html's, by hash."""
    scripts = " ".join(["'self'", *_inline_hashes(echo_page, "script")])
    styles = " ".join(["'self'", *_inline_hashes(echo_page, "style")])
    return (f"default-src 'self'; script-src {scripts}; style-src {styles}; "
            "connect-src 'self'; img-src 'self' data:; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def _origin(value: str) -> Optional[str]:
    """``scheme://host[:port]``, lower case and without a default port; None
    for anything else ("null", garbage)."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != (443 if scheme == "https" else 80):
        host = f"{host}:{port}"
    return f"{scheme}://{host}"


def origin_check(allowed: Iterable[str]) -> Any:
    """An ``on_upgrade`` hook: a page's WebSocket is accepted from the
    chat's own origin (the Host it was asked for) and ``allowed`` only.
    Browsers always send Origin with a WebSocket; a request without it is
    not a browser's (curl, a bot) and cannot act for a visitor: accepted."""
    extra = set()
    for value in allowed:
        origin = _origin(value)
        if origin is None:
            raise ValueError(f"not an origin (scheme://host[:port]): {value!r}")
        extra.add(origin)

    def check(environ: Dict[str, Any]) -> Optional[Tuple[int, List[Tuple[str, str]], str]]:
        sent = environ.get("HTTP_ORIGIN")
        if sent is None:
            return None
        origin = _origin(sent)
        scheme = "https" if environ.get("wsgi.url_scheme") == "https" else "http"
        own = _origin(f"{scheme}://{environ.get('HTTP_HOST', '')}")
        if origin is not None and (origin == own or origin in extra):
            return None
        logger.info("refused a WebSocket from origin %r (not %s)", sent[:100],
                    ", ".join(sorted({own or "?"} | extra)))
        return (403, [("Content-Type", "text/plain; charset=utf-8")],
                "403 Forbidden: this chat accepts WebSockets from its own pages only "
                "(see --allow-origin)\n")

    return check


def create_app(redis_url: Optional[str] = None,
               allow_origins: Optional[Iterable[str]] = None) -> Flask:
    """The chat app.  ``redis_url`` (default: $PYWS_REDIS_URL) shares rooms
    and presence with other processes through Redis.  ``allow_origins``
    (default: $PYWS_CHAT_ALLOW_ORIGINS, comma-separated): web origins
    besides its own whose pages may open its WebSocket."""
    if redis_url is None:
        redis_url = os.environ.get("PYWS_REDIS_URL") or None
    if allow_origins is None:
        allow_origins = [o for o in os.environ.get("PYWS_CHAT_ALLOW_ORIGINS", "").split(",")
                         if o.strip()]
    check_origin = origin_check(allow_origins)
    chat = Chat(redis_url)
    if chat.bus is not None:
        # Broadcasts from the other processes are only heard once the bus
        # is subscribed: wait for it (briefly; it keeps trying by itself).
        deadline = time.monotonic() + 10
        while not chat.bus.subscribed and time.monotonic() < deadline:
            gevent.sleep(0.05)  # polling a flag that has no event to wait on
        if not chat.bus.subscribed:
            logger.warning("not subscribed to Redis yet: serving anyway")
    echo_page = _echo_page()
    csp = content_security_policy(echo_page)
    app = Flask(__name__, static_folder=STATIC, static_url_path="/static")
    app.extensions["pyws_chat"] = chat
    # Read by pyws.gunicorn.GeventWebSocketWorker (and by main() below).
    app.config["PYWS_SERVER_OPTIONS"] = dict(SERVER_OPTIONS, on_upgrade=check_origin)

    @app.after_request
    def security_headers(response: Response) -> Response:
        # Every answer, pages, files and errors alike.
        response.headers["Content-Security-Policy"] = csp
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @app.route("/")
    def index() -> Response:
        return send_from_directory(STATIC, "index.html")

    @app.route("/echo.html")
    def echo_html() -> Response:
        return Response(echo_page, mimetype="text/html")

    @app.route("/ws")
    def chat_ws() -> Any:
        ws = request.environ.get("wsgi.websocket")
        if ws is None:
            return Response("expected a WebSocket request\n", 400, mimetype="text/plain")
        chat.sockets.add(ws)
        view = gevent.getcurrent()
        chat.views.add(view)
        try:
            ChatSession(chat, ws).run()
        finally:
            chat.sockets.discard(ws)
            chat.views.discard(view)
        return ""

    @app.route("/echo")
    def echo() -> Any:
        ws = request.environ.get("wsgi.websocket")
        if ws is None:
            return Response("expected a WebSocket request\n", 400, mimetype="text/plain")
        chat.sockets.add(ws)
        try:
            while True:
                msg = ws.receive()  # str, bytes, or None once closed
                if msg is None:
                    break
                ws.send(msg)
        finally:
            chat.sockets.discard(ws)
        return ""

    return app


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="pyws group chat (Flask + gevent)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=9527,
                        help="port to listen on, 0 for any free one (default: %(default)s)")
    parser.add_argument("--redis", metavar="URL", default=os.environ.get("PYWS_REDIS_URL"),
                        help="share rooms and presence with other processes through "
                             "this Redis, e.g. redis://127.0.0.1:6379/0 "
                             "(default: $PYWS_REDIS_URL, else this process only)")
    parser.add_argument("--allow-origin", metavar="ORIGIN", action="append", default=None,
                        help="also accept the WebSocket from pages of this origin, "
                             "e.g. https://chat.example.com (repeatable; default: "
                             "$PYWS_CHAT_ALLOW_ORIGINS, comma-separated; the chat's own "
                             "origin is always accepted)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    try:
        app = create_app(args.redis or "", args.allow_origin)
    except ValueError as exc:
        parser.error(str(exc))
    chat: Chat = app.extensions["pyws_chat"]
    server = WebSocketServer((args.host, args.port), app,
                             **app.config["PYWS_SERVER_OPTIONS"], spawn=Pool())
    # What is still running when serve_forever() ends (idle keep-alive HTTP
    # connections, by then) is given this long, then killed.
    server.stop_timeout = 0.5

    def shutdown() -> None:
        # Stop accepting, then close every WebSocket with 1001 "going away"
        # (the page reconnects), each in its own greenlet; the chat views
        # then end normally, leaving their rooms (and telling Redis).  Once
        # they are done, closing the server ends serve_forever().
        server.stop_accepting()
        closers = [gevent.spawn(_close_quietly, ws, 1001, "server shutting down")
                   for ws in list(chat.sockets)]
        gevent.joinall(closers + list(chat.views), timeout=CLOSE_TIMEOUT + 2)
        server.close()

    def on_signal() -> None:
        gevent.spawn(shutdown)

    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, on_signal)

    try:
        server.start()
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        # One line, not a traceback: the usual cause is a second copy running.
        raise SystemExit(f"port {args.port} on {args.host} is in use: stop the other "
                         "server or choose another port with --port") from None
    host, port = server.address[0], server.address[1]
    if ":" in host:  # IPv6
        host = f"[{host}]"
    logger.info("rooms and presence: %s",
                f"shared through Redis at {args.redis}" if args.redis else "this process only")
    print(f"serving on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        chat.close()


if __name__ == "__main__":
    main()
