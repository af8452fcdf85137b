"""examples/chat/app.py: the chat protocol over /ws (no browser), the echo
endpoint it keeps, its pages, and its shutdown.  One process, in-memory rooms;
each test uses rooms of its own.  (Several processes through Redis:
test_chat_redis.py.)"""
from __future__ import annotations

import json
import os
import re
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional

import pytest
import websocket

from tests.chat_support import start_chat
from tests.counting_proxy import CountingProxy

WAIT = 10  # seconds: every receive times out after this


class ChatClient:
    """A websocket-client connection speaking the chat's JSON."""

    def __init__(self, server, path: str = "/ws", **options: Any) -> None:
        self.ws = websocket.create_connection(server.url(path), timeout=WAIT, **options)
        self.seen: List[Dict[str, Any]] = []
        self.members: set = set()
        self.version = -1

    def send(self, **message: Any) -> None:
        self.ws.send(json.dumps(message))

    def send_raw(self, data) -> None:
        if isinstance(data, bytes):
            self.ws.send_binary(data)
        else:
            self.ws.send(data)

    def recv(self) -> Dict[str, Any]:
        """The next message (fails after WAIT seconds)."""
        try:
            raw = self.ws.recv()
        except websocket.WebSocketTimeoutException:
            pytest.fail(f"nothing received within {WAIT}s; before: {self.seen[-5:]}")
        assert isinstance(raw, str), f"expected text, got {raw!r}"
        message = json.loads(raw)
        self.seen.append(message)
        self._track(message)
        return message

    def _track(self, m: Dict[str, Any]) -> None:
        """Keep ``members`` as a page does: the snapshot of "joined", then
        the deltas newer than it."""
        kind = m.get("type")
        if kind == "joined":
            self.members, self.version = set(m["nicks"]), m["version"]
            return
        if kind not in ("join", "leave", "rename") or m.get("room") != self.room_of():
            return
        if m.get("version") is not None and m["version"] <= self.version:
            return
        if kind == "join":
            self.members.add(m["nick"])
        elif kind == "leave":
            self.members.discard(m["nick"])
        else:
            self.members.discard(m["old"])
            self.members.add(m["nick"])

    def room_of(self) -> Optional[str]:
        for m in reversed(self.seen):
            if m.get("type") == "joined":
                return m["room"]
        return None

    def expect_nicks(self, nicks: List[str], limit: int = 40) -> None:
        """Read until the tracked member list is ``nicks``."""
        for _ in range(limit):
            if sorted(self.members) == sorted(nicks):
                return
            self.recv()
        pytest.fail(f"members {sorted(self.members)} != {nicks}; seen {self.seen[-limit:]}")

    def expect(self, type: str, limit: int = 20, **fields: Any) -> Dict[str, Any]:
        """Read until a message of ``type`` with ``fields`` comes."""
        for _ in range(limit):
            message = self.recv()
            if message.get("type") == type and all(message.get(k) == v
                                                   for k, v in fields.items()):
                return message
        pytest.fail(f"no {type} {fields} among {self.seen[-limit:]}")

    def join(self, room: str, nick: str, session: Optional[str] = None) -> Dict[str, Any]:
        message: Dict[str, Any] = {"type": "join", "room": room, "nick": nick}
        if session is not None:
            message["session"] = session
        self.send(**message)
        return self.expect("joined", room=room)

    def error(self) -> str:
        """The reason of the next error (room traffic before it is skipped)."""
        message = self.expect("error")
        assert isinstance(message.get("detail"), str) and message["detail"]
        return message["reason"]

    def close(self) -> None:
        try:
            self.ws.close(timeout=2)
        except Exception:
            pass


@pytest.fixture(scope="module")
def chat(tmp_path_factory):
    server = start_chat(tmp_path_factory.mktemp("chat"))
    yield server
    server.stop()


@pytest.fixture
def connect(chat):
    clients: List[ChatClient] = []

    def make(path: str = "/ws") -> ChatClient:
        client = ChatClient(chat, path)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_join_presence_and_messages_go_to_the_room_only(connect):
    alice, bob, carol = connect(), connect(), connect()
    joined = alice.join("fanout", "alice")
    assert joined["room"] == "fanout" and joined["nick"] == "alice"
    assert joined["nicks"] == ["alice"] and isinstance(joined["version"], int)
    alice.expect_nicks(["alice"])

    bob_joined = bob.join("fanout", "bob")
    assert bob_joined["nicks"] == ["alice", "bob"]
    assert bob_joined["version"] > joined["version"]
    join_notice = alice.expect("join", room="fanout")
    assert join_notice["nick"] == "bob" and isinstance(join_notice["ts"], int)
    assert join_notice["version"] == bob_joined["version"]
    alice.expect_nicks(["alice", "bob"])
    bob.expect_nicks(["alice", "bob"])

    carol.join("elsewhere", "carol")
    carol.expect_nicks(["carol"])

    alice.send(type="message", text="hi bob \u00e9\u20ac\U0001F600")
    for client in (alice, bob):  # the sender gets its own message too
        message = client.expect("message")
        assert message["room"] == "fanout" and message["nick"] == "alice"
        assert message["text"] == "hi bob \u00e9\u20ac\U0001F600"
        assert isinstance(message["ts"], int)

    # Carol, in another room, got nothing of it: the next thing she receives
    # is her own message, sent after alice's had reached bob.
    carol.send(type="message", text="only here")
    message = carol.recv()
    assert (message["type"], message["nick"], message["text"]) == ("message", "carol", "only here")


def test_leave_and_disconnect_update_presence(connect):
    alice, bob, carol = connect(), connect(), connect()
    alice.join("leaving", "alice")
    bob.join("leaving", "bob")
    carol.join("leaving", "carol")
    alice.expect_nicks(["alice", "bob", "carol"])

    bob.send(type="leave")
    leave = alice.expect("leave", room="leaving")
    assert leave["nick"] == "bob" and leave["reason"] == "left"
    alice.expect_nicks(["alice", "carol"])
    # After leaving, bob may send nothing to the room...
    bob.send(type="message", text="ghost")
    assert bob.error() == "not_joined"
    # ...and can join another room on the same connection.
    bob.join("leaving-2", "bob")

    carol.close()  # a connection that ends leaves its room
    leave = alice.expect("leave", room="leaving")
    assert leave["nick"] == "carol"
    alice.expect_nicks(["alice"])


def test_joining_another_room_leaves_the_first(connect):
    alice, bob = connect(), connect()
    alice.join("switch-a", "alice")
    bob.join("switch-a", "bob")
    alice.expect_nicks(["alice", "bob"])
    bob.join("switch-b", "bob")
    alice.expect("leave", nick="bob")
    alice.expect_nicks(["alice"])
    bob.expect_nicks(["bob"])
    alice.send(type="message", text="to a only")
    alice.expect("message", text="to a only")
    bob.send(type="message", text="to b only")
    assert bob.expect("message")["text"] == "to b only"  # alice's never came


def test_nickname_in_use_in_the_room_is_refused(connect):
    alice, other, third = connect(), connect(), connect()
    alice.join("nicks", "alice")
    other.send(type="join", room="nicks", nick="alice")
    assert other.error() == "nick_taken"
    # The refused connection is in no room.
    other.send(type="message", text="x")
    assert other.error() == "not_joined"
    # Nicknames are per room; and exact ("Alice" is another one).
    other.join("nicks-elsewhere", "alice")
    third.join("nicks", "Alice")
    # Once alice is gone, her nickname is free.
    alice.close()
    third.expect_nicks(["Alice"])
    fourth = connect()
    assert fourth.join("nicks", "alice")["nicks"] == ["Alice", "alice"]


def test_same_session_takes_its_nickname_back(connect):
    """A page that reconnects (same session id) gets its nickname back from
    its previous connection, which is closed with 4001; nobody else sees a
    leave or a join."""
    watcher, old = connect(), connect()
    watcher.join("takeover", "watcher")
    old.join("takeover", "dana", session="page-1")
    watcher.expect_nicks(["dana", "watcher"])

    thief = connect()
    thief.send(type="join", room="takeover", nick="dana", session="page-2")
    assert thief.error() == "nick_taken"

    new = connect()
    joined = new.join("takeover", "dana", session="page-1")
    assert joined["nicks"] == ["dana", "watcher"]
    assert joined["version"] >= watcher.version
    while True:  # whatever was queued for the old connection, then its close
        opcode, data = old.ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
    assert int.from_bytes(data[:2], "big") == 4001

    new.send(type="message", text="still me")
    message = watcher.expect("message")
    assert (message["nick"], message["text"]) == ("dana", "still me")
    # One join of dana (the first connection's), no leave: the old
    # connection's end released nothing.
    assert [m["type"] for m in watcher.seen
            if m["type"] in ("join", "leave") and m["nick"] == "dana"] == ["join"]
    new.close()
    watcher.expect("leave", nick="dana")
    watcher.expect_nicks(["watcher"])


@pytest.mark.parametrize("raw, reason", [
    ("not json", "invalid_json"),
    ("{\"type\": \"join\"", "invalid_json"),
    ("[" * 2000 + "]" * 2000, "invalid_json"),  # nested too deep for json
    ("[1, 2]", "invalid_message"),
    ("\"join\"", "invalid_message"),
    ("{}", "invalid_message"),
    ("{\"type\": 7}", "invalid_message"),
    ("{\"type\": \"dance\"}", "unknown_type"),
    (json.dumps({"type": "message", "text": "x" * 5000}), "too_large"),
    ("x" * 70000, None),  # over the WebSocket limit: closed with 1009
    (b"\x00\x01binary", "binary_not_supported"),
    (json.dumps({"type": "message", "text": "before joining"}), "not_joined"),
    (json.dumps({"type": "join", "room": "r", "nick": ""}), "invalid_nick"),
    (json.dumps({"type": "join", "room": "r", "nick": "   "}), "invalid_nick"),
    (json.dumps({"type": "join", "room": "r", "nick": "n" * 25}), "invalid_nick"),
    (json.dumps({"type": "join", "room": "r", "nick": "a\u0000b"}), "invalid_nick"),
    (json.dumps({"type": "join", "room": "r", "nick": "zero\u200bwidth"}), "invalid_nick"),
    (json.dumps({"type": "join", "room": "r", "nick": ["x"]}), "invalid_nick"),
    (json.dumps({"type": "join", "room": "r"}), "invalid_nick"),
    (json.dumps({"type": "join", "nick": "n"}), "invalid_room"),
    (json.dumps({"type": "join", "room": "", "nick": "n"}), "invalid_room"),
    (json.dumps({"type": "join", "room": "r" * 33, "nick": "n"}), "invalid_room"),
    (json.dumps({"type": "join", "room": "a room", "nick": "n"}), "invalid_room"),
    (json.dumps({"type": "join", "room": "-r", "nick": "n"}), "invalid_room"),
    (json.dumps({"type": "join", "room": "r", "nick": "n", "session": "a b"}),
     "invalid_message"),
], ids=lambda value: value if isinstance(value, str) and len(value) < 30 else None)
def test_bad_input_gets_an_error_and_the_connection_goes_on(connect, raw, reason):
    """Each bad message gets its error; the connection stays usable."""
    client = connect()
    client.send_raw(raw)
    if reason is None:
        opcode, data = client.ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(data[:2], "big") == 1009
        return
    assert client.error() == reason
    # Still connected and usable.
    client.join("after-errors", f"n{abs(hash(raw)) % 10**8}")


@pytest.mark.parametrize("text, reason", [
    ("", "invalid_text"),
    ("   \n ", "invalid_text"),
    (None, "invalid_text"),
    (42, "invalid_text"),
    ("y" * 1001, "text_too_long"),
])
def test_bad_message_text_is_refused(connect, text, reason):
    sender, reader = connect(), connect()
    reader.join("texts", "reader")
    sender.join("texts", f"sender{abs(hash(repr(text))) % 10**8}")
    sender.expect_nicks(["reader", sender.seen[-1]["nick"]])
    message: Dict[str, Any] = {"type": "message"}
    if text is not None:
        message["text"] = text
    sender.send(**message)
    assert sender.error() == reason
    sender.send(type="message", text="y" * 1000)  # the longest that is accepted
    assert reader.expect("message")["text"] == "y" * 1000


def test_echo_endpoint_and_pages(chat, connect):
    echo = connect("/echo")
    echo.ws.send("hello echo")
    assert echo.ws.recv() == "hello echo"
    echo.ws.send_binary(bytes(range(256)))
    assert echo.ws.recv() == bytes(range(256))

    with urllib.request.urlopen(chat.http_url("/echo.html"), timeout=WAIT) as resp:
        page = resp.read().decode("utf-8")
    assert resp.headers["Content-Type"].startswith("text/html")
    assert 'location.host + "/echo"' in page and '"/ws"' not in page

    with urllib.request.urlopen(chat.http_url("/"), timeout=WAIT) as resp:
        page = resp.read().decode("utf-8")
        csp = resp.headers["Content-Security-Policy"]
    assert '<script src="/static/chat.js"' in page
    assert "default-src 'self'" in csp and "'unsafe-inline'" not in csp
    for asset in ("/static/chat.js", "/static/chat.css"):
        with urllib.request.urlopen(chat.http_url(asset), timeout=WAIT) as resp:
            assert resp.status == 200

    for path in ("/ws", "/echo"):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(chat.http_url(path), timeout=WAIT)
        assert info.value.code == 400


def test_sigterm_closes_websockets_with_1001_and_exits_0(tmp_path):
    server = start_chat(tmp_path)
    try:
        alice, bob = ChatClient(server), ChatClient(server, "/echo")
        alice.join("shutdown", "alice")
        bob.ws.send("x")
        assert bob.ws.recv() == "x"
        server.proc.terminate()
        for client in (alice, bob):
            while True:
                opcode, data = client.ws.recv_data(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    break
            assert int.from_bytes(data[:2], "big") == 1001
            client.ws.send_close()  # complete the closing handshake
        assert server.proc.wait(10) == 0
    finally:
        server.stop()


# -- the edges: origin, CSP, history, rate limits, floods ---------------------------


def _close_of(client: ChatClient) -> tuple:
    """(code, reason) of the close frame that comes next (other frames skipped)."""
    while True:
        opcode, data = client.ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(data[:2], "big"), data[2:].decode("utf-8")


def _handshake_status(server, origin: Optional[str]) -> int:
    """The HTTP status of an upgrade to /ws with this Origin (None: none sent)."""
    options: Dict[str, Any] = {"suppress_origin": True} if origin is None else {"origin": origin}
    try:
        ws = websocket.create_connection(server.url("/ws"), timeout=WAIT, **options)
    except websocket.WebSocketBadStatusException as exc:
        return exc.status_code
    ws.close()
    return 101


def test_websocket_from_another_origin_gets_403(chat):
    own = f"http://127.0.0.1:{chat.port}"
    assert _handshake_status(chat, own) == 101
    assert _handshake_status(chat, None) == 101  # not a browser: nobody to act for
    for foreign in ("http://evil.example", f"http://localhost:{chat.port}",
                    f"http://127.0.0.1:{chat.port + 1}", f"https://127.0.0.1:{chat.port}",
                    "null", "garbage"):
        assert _handshake_status(chat, foreign) == 403, foreign
    # The refusal comes before any 101: nothing of the chat was reachable.
    assert "refused a WebSocket from origin 'http://evil.example'" in chat.log()


def test_allow_origin_adds_origins(tmp_path):
    server = start_chat(tmp_path, "--allow-origin", "https://chat.example.com",
                        "--allow-origin", "http://127.0.0.1:8080")
    try:
        assert _handshake_status(server, "https://chat.example.com") == 101
        assert _handshake_status(server, "http://127.0.0.1:8080") == 101
        assert _handshake_status(server, f"http://127.0.0.1:{server.port}") == 101
        assert _handshake_status(server, "https://evil.example.com") == 403
    finally:
        server.stop()


def test_every_response_has_the_same_csp_and_nothing_comes_from_elsewhere(chat):
    policies = set()
    for path in ("/", "/echo.html", "/static/chat.js", "/static/chat.css"):
        with urllib.request.urlopen(chat.http_url(path), timeout=WAIT) as resp:
            body = resp.read().decode("utf-8")
            policies.add(resp.headers["Content-Security-Policy"])
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
        # No CDN: every script, style and image is the app's own.
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", body), path
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(chat.http_url("/ws"), timeout=WAIT)
    policies.add(info.value.headers["Content-Security-Policy"])
    assert len(policies) == 1, policies
    (csp,) = policies
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert "connect-src 'self';" in csp and "frame-ancestors 'none'" in csp


def test_join_gets_the_last_50_messages_of_the_room(connect):
    writers = [connect() for _ in range(3)]
    for i, writer in enumerate(writers):
        writer.join("history", f"writer{i}")
    for w, writer in enumerate(writers):  # 18 each: within every writer's burst
        for n in range(18 * w, 18 * w + 18):
            writer.send(type="message", text=f"m{n}")
        writer.expect("message", limit=200, text=f"m{18 * w + 17}")  # in order
    late = connect()
    joined = late.join("history", "late")
    history = joined["history"]
    assert [m["text"] for m in history] == [f"m{n}" for n in range(4, 54)]
    assert all(m["type"] == "message" and m["room"] == "history" for m in history)
    assert history[-1]["nick"] == "writer2" and isinstance(history[-1]["ts"], int)
    assert connect().join("history-empty", "first")["history"] == []


def test_message_flood_is_closed_with_1008_and_a_reason(connect):
    flooder, reader = connect(), connect()
    reader.join("flood-msg", "reader")
    flooder.join("flood-msg", "flooder")
    for n in range(40):
        flooder.send(type="message", text=f"f{n}")
    code, reason = _close_of(flooder)
    assert (code, reason) == (1008, "too many messages: slow down")
    texts: List[str] = []
    while True:
        message = reader.recv()
        if message["type"] == "message":
            texts.append(message["text"])
        if message["type"] == "leave" and message["nick"] == "flooder":
            break
    assert texts == [f"f{n}" for n in range(20)]  # the burst, in order, then nothing


def test_join_leave_flood_is_closed_with_1008(connect):
    flooder = connect()
    for _ in range(20):
        flooder.send(type="join", room="flood-join", nick="toggler")
        flooder.send(type="leave")
    assert _close_of(flooder) == (1008, "too many joins: slow down")


def test_rename_is_a_delta(connect):
    alice, bob = connect(), connect()
    alice.join("rename", "alice")
    bob.join("rename", "bob")
    alice.send(type="rename", nick="alicia")
    assert alice.expect("renamed")["nick"] == "alicia"
    renamed = bob.expect("rename")
    assert (renamed["old"], renamed["nick"]) == ("alice", "alicia")
    bob.expect_nicks(["alicia", "bob"])
    bob.send(type="rename", nick="alicia")
    assert bob.error() == "nick_taken"
    alice.send(type="message", text="new name")
    assert bob.expect("message")["nick"] == "alicia"


class _Via:
    """Where ChatClient connects to go through a CountingProxy."""

    def __init__(self, proxy: CountingProxy) -> None:
        self.port = proxy.port

    def url(self, path: str = "/ws") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


def _drain_until(client: ChatClient, text: str, deadline: float) -> None:
    """Read (fast, raw) until the message ``text`` arrives; fails on a close."""
    needle = json.dumps(text)[1:-1]
    while True:
        client.ws.settimeout(max(0.1, deadline - time.monotonic()))
        opcode, data = client.ws.recv_data(control_frame=True)
        assert opcode != websocket.ABNF.OPCODE_CLOSE, f"disconnected: {data!r}"
        if opcode == websocket.ABNF.OPCODE_TEXT and needle.encode() in data:
            return


def _flood_join_leave(server, room: str, stop: threading.Event, stats: Dict[str, int]) -> None:
    """Connect, toggle join/leave until closed, reconnect; until ``stop``."""
    while not stop.is_set():
        try:
            ws = websocket.create_connection(server, timeout=WAIT)
        except (OSError, websocket.WebSocketException):
            continue
        stats["connections"] += 1
        try:
            # Just past the limits: what a flooder gets the most out of.
            for _ in range(6):
                ws.send(json.dumps({"type": "join", "room": room, "nick": "toggler"}))
                ws.send(json.dumps({"type": "leave"}))
            while True:
                opcode, data = ws.recv_data(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    stats["closed_1008"] += int.from_bytes(data[:2], "big") == 1008
                    break
        except (OSError, websocket.WebSocketException):
            pass
        finally:
            ws.close(timeout=1)


def test_join_leave_flood_in_a_50_member_room_costs_little_and_drops_nobody(tmp_path):
    server = start_chat(tmp_path)
    members_proxy = CountingProxy(server.port)
    attacker_proxy = CountingProxy(server.port)
    members: List[ChatClient] = []
    try:
        for i in range(50):
            client = ChatClient(_Via(members_proxy))
            members.append(client)
            client.join("crowd", f"m{i:02d}")
        members[0].expect_nicks([f"m{i:02d}" for i in range(50)], limit=200)
        members[0].send(type="message", text="settled")
        deadline = time.monotonic() + 20
        for client in members:
            _drain_until(client, "settled", deadline)
        out_before = members_proxy.downstream

        stop = threading.Event()
        stats = {"connections": 0, "closed_1008": 0}
        flooder = threading.Thread(target=_flood_join_leave, daemon=True,
                                   args=(f"ws://127.0.0.1:{attacker_proxy.port}/ws",
                                         "crowd", stop, stats))
        flooder.start()
        stop.wait(4)  # the flood's length
        stop.set()
        flooder.join(WAIT)
        assert not flooder.is_alive()

        members[1].send(type="message", text="after the flood")
        deadline = time.monotonic() + 20
        for client in members:  # nobody was disconnected, and all got it
            _drain_until(client, "after the flood", deadline)
        attacker_in = attacker_proxy.upstream
        total_out = members_proxy.downstream - out_before + attacker_proxy.downstream
        print(f"flood: {stats}, attacker sent {attacker_in} B, everyone got {total_out} B "
              f"({total_out / attacker_in:.1f}x)")
        assert stats["connections"] >= 5 and stats["closed_1008"] >= 5
        assert total_out <= 10 * attacker_in, (stats, attacker_in, total_out)
    finally:
        for client in members:
            client.close()
        members_proxy.close()
        attacker_proxy.close()
        server.stop()


# -- the soak: every attack beside well-behaved clients ----------------------------


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _attack(url: str, room: str, kind: str, stop: threading.Event, counts: Dict[str, int]) -> None:
    """One hostile client, over and over until ``stop``."""
    while not stop.is_set():
        options: Dict[str, Any] = {"timeout": WAIT}
        if kind == "foreign_origin":
            options["origin"] = "http://evil.example"
        try:
            ws = websocket.create_connection(url, **options)
        except websocket.WebSocketBadStatusException as exc:
            counts[f"{kind}:{exc.status_code}"] = counts.get(f"{kind}:{exc.status_code}", 0) + 1
            continue
        except (OSError, websocket.WebSocketException):
            continue
        try:
            if kind == "message_flood":
                ws.send(json.dumps({"type": "join", "room": room, "nick": "spammer"}))
                for n in range(30):
                    ws.send(json.dumps({"type": "message", "text": f"spam {n}"}))
            elif kind == "oversized":
                ws.send("x" * 70000)
            elif kind == "bad_json":
                for _ in range(50):
                    ws.send("{not json")
                ws.send(json.dumps({"type": "join", "room": room, "nick": "t"}))
                for _ in range(6):
                    ws.send(json.dumps({"type": "leave"}))
            elif kind == "slow_reader":
                ws.send(json.dumps({"type": "join", "room": room, "nick": "sloth"}))
                stop.wait(1.0)  # joined and reading nothing for a while
                ws.close(timeout=1)
                counts[kind] = counts.get(kind, 0) + 1
                continue
            while True:  # read until the server closes
                opcode, data = ws.recv_data(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    code = int.from_bytes(data[:2], "big")
                    counts[f"{kind}:{code}"] = counts.get(f"{kind}:{code}", 0) + 1
                    break
        except (OSError, websocket.WebSocketException):
            counts[f"{kind}:error"] = counts.get(f"{kind}:error", 0) + 1
        finally:
            ws.close(timeout=1)


class _GoodClient:
    """A client in the room that sends a numbered message now and then and
    reads everything, in a thread of its own."""

    def __init__(self, server, room: str, nick: str) -> None:
        self.client = ChatClient(server)
        self.nick = nick
        self.client.join(room, nick)
        self.texts: List[tuple] = []
        self.closed: Optional[tuple] = None
        self.done = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        ws = self.client.ws
        ws.settimeout(60)
        try:
            while True:
                opcode, data = ws.recv_data(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    self.closed = (int.from_bytes(data[:2], "big"), data[2:])
                    return
                message = json.loads(data)
                if message["type"] == "message":
                    self.texts.append((message["nick"], message["text"]))
                    if message["text"] == "end":
                        self.done.set()
        except (OSError, websocket.WebSocketException) as exc:
            self.closed = (0, repr(exc))
        finally:
            self.done.set()


@pytest.mark.rss  # judges the server by its resident memory (not under make sanitize)
def test_soak_attacks_beside_good_clients(tmp_path):
    """Each attack for a few seconds while five good clients chat: they lose
    nothing and stay connected; the server's memory and descriptors come
    back to where they were."""
    server = start_chat(tmp_path)
    pid = server.proc.pid
    url = server.url("/ws")
    room = "soak"
    good: List[_GoodClient] = []
    try:
        good = [_GoodClient(server, room, f"good{i}") for i in range(5)]
        counts: Dict[str, int] = {}
        stop = threading.Event()
        kinds = ["join_leave", "message_flood", "foreign_origin", "oversized", "bad_json",
                 "slow_reader"]

        def run(kind: str, seconds: float) -> None:
            phase = threading.Event()
            target = _flood_join_leave if kind == "join_leave" else _attack
            args = ((url, room, phase, {"connections": 0, "closed_1008": 0})
                    if kind == "join_leave" else (url, room, kind, phase, counts))
            thread = threading.Thread(target=target, args=args, daemon=True)
            thread.start()
            stop.wait(seconds)
            phase.set()
            thread.join(WAIT + 5)
            assert not thread.is_alive(), kind

        sent: Dict[str, int] = {g.nick: 0 for g in good}
        talking = threading.Event()

        def talk() -> None:  # each good client: a message every 0.25 s
            while not talking.wait(0.25):
                for g in good:
                    g.client.send(type="message", text=f"{g.nick} {sent[g.nick]}")
                    sent[g.nick] += 1

        talker = threading.Thread(target=talk, daemon=True)
        talker.start()
        for kind in kinds:  # warm-up: the server's caches and pools fill
            run(kind, 0.3)
        base_rss, base_fds = _rss_kib(pid), _fds(pid)
        for kind in kinds:
            run(kind, 2.0)
        talking.set()
        talker.join(WAIT)
        good[0].client.send(type="message", text="end")
        for g in good:
            assert g.done.wait(30), f"{g.nick} did not get the last message"
        for g in good:
            assert g.closed is None, (g.nick, g.closed)
            for other in good:
                theirs = [t for nick, t in g.texts if nick == other.nick and t != "end"]
                assert theirs == [f"{other.nick} {n}" for n in range(sent[other.nick])], \
                    (g.nick, other.nick)
        assert counts.get("message_flood:1008", 0) >= 2, counts
        assert counts.get("foreign_origin:403", 0) >= 10, counts
        assert counts.get("oversized:1009", 0) >= 10, counts
        assert counts.get("bad_json:1008", 0) >= 2, counts

        deadline = time.monotonic() + 15
        while _fds(pid) > base_fds + 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # polling /proc: there is no event for a closed descriptor
        fds, rss = _fds(pid), _rss_kib(pid)
        print(f"soak: {counts}; fds {base_fds} -> {fds}; RSS {base_rss} -> {rss} KiB")
        assert fds <= base_fds + 2
        assert rss - base_rss < 16 * 1024, (base_rss, rss)
    finally:
        for g in good:
            g.client.close()
        server.stop()
