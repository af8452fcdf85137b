"""Group chat on pyws: Flask, rooms with pyws.Hub, presence, optional Redis.

    python3 examples/chat/app.py [--host 127.0.0.1] [--port 9527] [--redis URL]

Open http://127.0.0.1:9527/, pick a nickname and a room.  The page talks JSON
over the WebSocket at /ws (the schema is in README.md, "Group chat").  The
seed's echo demo stays available: its WebSocket at /echo, its page at
/echo.html.

Without --redis (and without $PYWS_REDIS_URL) everything lives in this
process: rooms in a ``pyws.Hub``, who is online in a dict.  With --redis, run
as many processes as you like against the same Redis: the hub's broadcasts
travel through ``pyws.redis_bus.RedisBus`` (pub/sub) and who is online is
kept in Redis (see ``RedisPresence``), so users connected to different
processes chat in the same rooms and see each other online.

The app object can also be served by another gevent server, e.g. gunicorn
with ``-k pyws.gunicorn.GeventWebSocketWorker``: ``create_app()`` reads
$PYWS_REDIS_URL.
"""
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
import itertools  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any, Dict, List, Optional, Set, Tuple  # noqa: E402

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
    session took the nickname from.
    """

    status: str
    changed: bool
    version: int
    nicks: List[str]
    swept: List[str] = field(default_factory=list)
    replaced: str = ""


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

    def close(self) -> None:
        pass


# One script does every presence operation, so each is atomic in Redis.
#   KEYS[1]  sorted set, nick -> expiry time (ms)
#   KEYS[2]  hash, nick -> "session conn" (who holds the nickname)
#   KEYS[3]  the version counter (one for all rooms)
#   ARGV     op ("claim" | "release" | "refresh"), now (ms), ttl (ms), nick,
#            session, conn
# First it sweeps the room's expired entries; returns
# {status, changed, version, nicks, swept, replaced}.
_PRESENCE_LUA = """
local exp, own, ver = KEYS[1], KEYS[2], KEYS[3]
local op, now, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local nick, session = ARGV[4], ARGV[5]
local owner = session .. ' ' .. ARGV[6]
local status, changed, replaced = 'ok', 0, ''
local swept = redis.call('ZRANGEBYSCORE', exp, '-inf', now)
for _, n in ipairs(swept) do
  redis.call('ZREM', exp, n)
  redis.call('HDEL', own, n)
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
    if not current then changed = 1 end
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
local version
if changed == 1 then
  version = redis.call('INCR', ver)
else
  version = tonumber(redis.call('GET', ver) or '0')
end
return {status, changed, version, redis.call('ZRANGE', exp, 0, -1), swept, replaced}
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
        status, changed, version, nicks, swept, replaced = self._script(
            keys=[f"{p}:room:{room}:expires", f"{p}:room:{room}:owners", f"{p}:version"],
            args=[op, now_ms(), int(self.ttl * 1000), nick, session, conn])
        return Presence(status, bool(changed), int(version), _sorted(nicks),
                        list(swept), replaced or "")

    def claim(self, room: str, nick: str, session: str, conn: str) -> Presence:
        return self._run("claim", room, nick, session, conn)

    def release(self, room: str, nick: str, session: str, conn: str) -> Presence:
        return self._run("release", room, nick, session, conn)

    def refresh(self, room: str, nick: str, session: str, conn: str) -> Presence:
        return self._run("refresh", room, nick, session, conn)

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


class Chat:
    """Rooms (a pyws.Hub), presence, and this process's connections."""

    def __init__(self, redis_url: Optional[str] = None) -> None:
        self.redis_url = redis_url
        if redis_url:
            try:
                from pyws.redis_bus import RedisBus
            except ImportError as exc:
                raise SystemExit(f"--redis needs pyws.redis_bus and the redis package "
                                 f"(pip install redis): {exc}") from exc
            self.presence: Any = RedisPresence(redis_url)
            self.bus: Any = RedisBus(redis_url)
            self.hub = Hub(bus=self.bus)
        else:
            self.presence = MemoryPresence()
            self.bus = None
            self.hub = Hub()
        #: Chat connections of this process, by connection id.
        self.sessions: Dict[str, "ChatSession"] = {}
        #: Every open WebSocket (chat and echo), to close them on shutdown.
        self.sockets: Set[WebSocket] = set()
        #: The greenlets running chat views, to let them finish on shutdown.
        self.views: Set[Any] = set()
        self._refresher = None
        if self.presence.refresh_interval:
            self._refresher = gevent.spawn(self._refresh_forever)

    def broadcast(self, room: str, message: Dict[str, Any]) -> None:
        self.hub.broadcast(room, dumps(message))

    def announce(self, room: str, change: Presence, joined: Optional[str] = None,
                 left: Optional[str] = None) -> None:
        """Tell the room what a presence operation changed."""
        ts = now_ms()
        for nick in change.swept:
            self.broadcast(room, {"type": "leave", "room": room, "nick": nick, "ts": ts,
                                  "reason": "timeout"})
        if not change.changed:
            return
        if joined is not None:
            self.broadcast(room, {"type": "join", "room": room, "nick": joined, "ts": ts})
        if left is not None:
            self.broadcast(room, {"type": "leave", "room": room, "nick": left, "ts": ts,
                                  "reason": "left"})
        self.broadcast(room, {"type": "presence", "room": room, "nicks": change.nicks,
                              "version": change.version})

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
                    logger.exception("presence refresh failed")

    def close(self) -> None:
        if self._refresher is not None:
            self._refresher.kill(block=False)
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

    def send(self, message: Dict[str, Any]) -> None:
        self.ws.send(dumps(message))

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
            self.on_join(data)
        elif kind == "message":
            self.on_message(data)
        elif kind == "leave":
            self.leave()
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
            change = self.chat.presence.claim(room, nick, session, self.id)
        except Exception:
            logger.exception("presence claim failed")
            raise ChatError("unavailable", "the server cannot reach its presence store") from None
        if change.status != "ok":
            self.chat.announce(room, change)  # the entries it swept on the way
            raise ChatError("nick_taken", f"the nickname {nick} is already in use in {room}")
        self.room, self.nick, self.session = room, nick, session
        # The answer goes out before joining the hub, so that it comes before
        # anything broadcast to the room.
        self.send({"type": "joined", "room": room, "nick": nick, "nicks": change.nicks,
                   "version": change.version})
        self.chat.hub.join(self.ws, room)
        if change.replaced:
            self.chat.replaced(change.replaced)
        self.chat.announce(room, change, joined=nick)

    def on_message(self, data: Dict[str, Any]) -> None:
        if self.room is None or self.nick is None:
            raise ChatError("not_joined", "join a room first")
        text = data.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ChatError("invalid_text", "the text must be a non-empty string")
        if len(text) > TEXT_MAX:
            raise ChatError("text_too_long", f"a message text is at most {TEXT_MAX} characters")
        self.chat.broadcast(self.room, {"type": "message", "room": self.room, "nick": self.nick,
                                        "text": text, "ts": now_ms()})

    def leave(self) -> None:
        """Leave the current room, if any (also when the connection ends)."""
        room, nick = self.room, self.nick
        if room is None or nick is None:
            return
        self.room = self.nick = None
        self.chat.hub.leave(self.ws, room)
        try:
            change = self.chat.presence.release(room, nick, self.session, self.id)
        except Exception:
            logger.exception("presence release failed (the entry will expire)")
            return
        self.chat.announce(room, change, left=nick)

    def refresh(self) -> None:
        room, nick = self.room, self.nick
        if room is None or nick is None:
            return
        change = self.chat.presence.refresh(room, nick, self.session, self.id)
        if change.status == "lost":
            self.chat.announce(room, change)
            self.evict()
            return
        self.chat.announce(room, change, joined=nick)

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


CSP = ("default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


def create_app(redis_url: Optional[str] = None) -> Flask:
    """The chat app.  ``redis_url`` (default: $PYWS_REDIS_URL) shares rooms
    and presence with other processes through Redis."""
    if redis_url is None:
        redis_url = os.environ.get("PYWS_REDIS_URL") or None
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
    app = Flask(__name__, static_folder=STATIC, static_url_path="/static")
    app.extensions["pyws_chat"] = chat
    # Read by pyws.gunicorn.GeventWebSocketWorker (and by main() below).
    app.config["PYWS_SERVER_OPTIONS"] = dict(SERVER_OPTIONS)

    @app.route("/")
    def index() -> Response:
        response = send_from_directory(STATIC, "index.html")
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    app = create_app(args.redis or "")
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

    server.start()
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
