"""pyws.Hub over real sockets, without HTTP.

Each member is a server-side ``WebSocket`` on one end of a
``socket.socketpair()``; a ``Peer`` reads the other end and splits it into
frames (tests/wire.py), so a test sees the exact bytes the hub wrote.

Every scenario runs three ways: here, with plain threads (the test process
never imports gevent); and in a subprocess with gevent sockets and
greenlets, unpatched and then under ``gevent.monkey.patch_all()``.  The
subprocess runs this file as a script (see ``main``).
"""
from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, Tuple

import pytest

from pyws import _core
from pyws.hub import Hub
from pyws.websocket import WebSocket
from tests.wire import OP_BINARY, OP_CLOSE, OP_TEXT, build_frame, close_payload, parse_frames

TIMEOUT = 10.0
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# -- concurrency environments ---------------------------------------------------

class ThreadEnv:
    """Plain threads and sockets (gevent's, once monkey-patched)."""

    name = "threads"

    def __init__(self, check_leaks: bool = True) -> None:
        self.check_leaks = check_leaks

    def socketpair(self) -> Tuple[Any, Any]:
        return socket.socketpair()

    def tcp_pair(self) -> Tuple[Any, Any]:
        return _tcp_pair(socket)

    def spawn(self, fn: Callable[..., Any], *args: Any) -> Any:
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        return t

    def event(self) -> Any:
        return threading.Event()

    def join(self, task: Any, timeout: float) -> bool:
        task.join(timeout)
        return not task.is_alive()


class GeventEnv:
    """gevent sockets and greenlets, nothing monkey-patched."""

    name = "gevent"
    check_leaks = False

    def __init__(self) -> None:
        import gevent
        import gevent.event
        import gevent.socket
        self._gevent = gevent
        self._event = gevent.event.Event
        self._socketpair = gevent.socket.socketpair

    def socketpair(self) -> Tuple[Any, Any]:
        return self._socketpair()

    def tcp_pair(self) -> Tuple[Any, Any]:
        import gevent.socket
        return _tcp_pair(gevent.socket)

    def spawn(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self._gevent.spawn(fn, *args)

    def event(self) -> Any:
        return self._event()

    def join(self, task: Any, timeout: float) -> bool:
        task.join(timeout)
        return bool(task.dead)


def _tcp_pair(module: Any) -> Tuple[Any, Any]:
    """(server end, client end) of a loopback TCP connection made with
    ``module``'s sockets."""
    with module.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = module.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return server, client


def call_bounded(env: Any, fn: Callable[..., Any], *args: Any,
                 timeout: float = TIMEOUT) -> Tuple[Any, float]:
    """``fn(*args)`` in a task of its own, waited for at most ``timeout``:
    (result, seconds it took).  A call that blocks fails the test instead of
    hanging it."""
    out: List[Any] = []

    def run() -> None:
        start = time.monotonic()
        try:
            out.append((True, fn(*args), time.monotonic() - start))
        except BaseException as exc:  # re-raised below
            out.append((False, exc, 0.0))

    task = env.spawn(run)
    assert env.join(task, timeout), f"{fn.__name__} still blocked after {timeout}s"
    ok, value, took = out[0]
    if not ok:
        raise value
    return value, took


def wait_for(event: Any, predicate: Callable[[], bool], what: str,
             timeout: float = TIMEOUT) -> None:
    """Wait until ``predicate()``; ``event`` is set whenever it may have
    become true.  AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        event.clear()
        if predicate():
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        event.wait(remaining)


def wait_set(event: Any, what: str, timeout: float = TIMEOUT) -> None:
    assert event.wait(timeout), f"timed out after {timeout}s waiting for {what}"


# -- members and peers ---------------------------------------------------------

class Peer:
    """The client end of a member's socketpair: records every byte and frame."""

    def __init__(self, env: Any, sock: Any, name: str) -> None:
        self.env = env
        self.sock = sock
        self.name = name
        self.close_received = False
        self.raw = bytearray()
        self.frames: List[Any] = []
        self.eof = False
        self.changed = env.event()
        self._rest = b""
        self.task: Any = None

    def start(self) -> Peer:
        self.task = self.env.spawn(self._read)
        return self

    def _read(self) -> None:
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                self.eof = True
                self.changed.set()
                return
            self.raw += chunk
            frames, self._rest = parse_frames(self._rest + chunk)
            self.frames.extend(frames)
            for frame in frames:
                if frame.opcode == OP_CLOSE and not self.close_received:
                    # Answer it, as a client does, so that the server's
                    # close() need not wait for its close_timeout.
                    self.close_received = True
                    try:
                        self.send_frame(OP_CLOSE, frame.payload[:2])
                    except OSError:
                        pass
            self.changed.set()

    def data(self) -> List[Tuple[int, bytes]]:
        """(opcode, payload) of the data frames received so far."""
        return [(f.opcode, f.payload) for f in self.frames if f.opcode in (OP_TEXT, OP_BINARY)]

    def wait_frames(self, n: int, timeout: float = TIMEOUT) -> None:
        wait_for(self.changed, lambda: len(self.frames) >= n or self.eof,
                 f"{n} frames at {self.name} (got {len(self.frames)})", timeout)
        assert len(self.frames) >= n, f"{self.name}: EOF after {len(self.frames)} frames"

    def wait_eof(self, timeout: float = TIMEOUT) -> None:
        wait_for(self.changed, lambda: self.eof, f"EOF at {self.name}", timeout)

    def send_frame(self, opcode: int, payload: bytes = b"") -> None:
        self.sock.sendall(build_frame(opcode, payload, mask=os.urandom(4)))


class Scene:
    """Members of one test, and their clean-up."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.members: List[Tuple[WebSocket, Peer]] = []
        self.tasks: List[Any] = []

    def member(self, name: str, *, read: bool = True, close_timeout: float = 5.0,
               small_buffers: bool = False, tcp: bool = False) -> Tuple[WebSocket, Peer]:
        a, b = self.env.tcp_pair() if tcp else self.env.socketpair()
        if small_buffers:
            # So that a peer that does not read blocks the writer quickly.
            a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        ws = WebSocket(a, _core.Protocol(server=True), path=f"/{name}",
                       close_timeout=close_timeout)
        peer = Peer(self.env, b, name)
        if read:
            peer.start()
        self.members.append((ws, peer))
        return ws, peer

    def serve(self, ws: WebSocket) -> None:
        """Read ``ws`` on the server side, as an application would, so that
        a close frame or EOF from the peer is noticed."""
        def run() -> None:
            while ws.receive() is not None:
                pass
        self.tasks.append(self.env.spawn(run))

    def closed_event(self, ws: WebSocket) -> Any:
        """An event set when ``ws`` is torn down.  Registered after the
        hub's own callback, so the hub has forgotten ``ws`` by then."""
        event = self.env.event()
        ws.add_close_callback(lambda _ws: event.set())
        return event

    def close(self) -> None:
        for ws, peer in self.members:
            for sock in (ws.socket, peer.sock):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            # Tears the WebSocket down (callbacks: the hub forgets it).
            ws._eof()
            peer.sock.close()
        for task in self.tasks + [p.task for _, p in self.members if p.task is not None]:
            assert self.env.join(task, TIMEOUT), "a reader task did not end"
        if self.env.check_leaks:
            for t in threading.enumerate():
                if t.name.startswith("pyws-hub"):
                    t.join(TIMEOUT)
                    assert not t.is_alive(), f"thread {t.name} still running"


def text_frame(text: str) -> bytes:
    return _core.encode_frame(_core.TEXT, text.encode("utf-8"))


def binary_frame(data: bytes) -> bytes:
    return _core.encode_frame(_core.BINARY, data)


class FakeBus:
    """An in-memory bus shared by the hubs of one test: every published
    message goes to every started hub, its publisher included (as Redis
    does), so the hubs must skip their own."""

    def __init__(self) -> None:
        self.delivers: List[Callable[[str, str, int, bytes], None]] = []
        self.published: List[Tuple[str, str, int, bytes]] = []
        self.closed = 0

    def start(self, deliver: Callable[[str, str, int, bytes], None]) -> None:
        self.delivers.append(deliver)

    def publish(self, origin: str, room: str, opcode: int, payload: bytes) -> None:
        self.published.append((origin, room, opcode, payload))
        for deliver in list(self.delivers):
            deliver(origin, room, opcode, payload)

    def close(self) -> None:
        self.closed += 1


# -- scenarios -------------------------------------------------------------------

SCENARIOS: Dict[str, Callable[[Any], None]] = {}


def scenario(fn: Callable[[Scene], None]) -> Callable[[Scene], None]:
    def run(env: Any) -> None:
        scene = Scene(env)
        try:
            fn(scene)
        finally:
            scene.close()
    SCENARIOS[fn.__name__] = run
    return fn


@scenario
def membership(scene: Scene) -> None:
    hub = Hub()
    a, _ = scene.member("a")
    b, _ = scene.member("b")
    assert hub.rooms() == set() and hub.members("x") == [] and hub.rooms(a) == set()
    hub.join(a, "x")
    hub.join(a, "x")  # twice: harmless
    hub.join(a, "y")
    hub.join(b, "y")
    assert hub.rooms() == {"x", "y"}
    assert hub.rooms(a) == {"x", "y"} and hub.rooms(b) == {"y"}
    assert hub.members("x") == [a]
    assert sorted(hub.members("y"), key=id) == sorted([a, b], key=id)
    hub.leave(a, "y")
    hub.leave(b, "x")  # not in it: harmless
    assert hub.rooms(a) == {"x"} and hub.members("y") == [b]
    hub.leave_all(a)
    hub.leave_all(a)
    assert hub.rooms(a) == set() and hub.members("x") == [] and hub.rooms() == {"y"}
    hub.join(a, "z")  # after leaving everything, joining again works
    assert hub.rooms() == {"y", "z"} and hub.members("z") == [a]
    assert hub.dropped(a) == 0


@scenario
def client_side_websocket_cannot_join(scene: Scene) -> None:
    hub = Hub()
    x, y = scene.env.socketpair()
    client = WebSocket(x, _core.Protocol(server=False))
    try:
        hub.join(client, "room")
    except ValueError as exc:
        assert "server-side" in str(exc)
    else:
        raise AssertionError("a client-side WebSocket joined a room")
    assert hub.rooms() == set()
    x.close()
    y.close()


@scenario
def bad_options_are_refused(scene: Scene) -> None:
    for kwargs in ({"queue_size": 0}, {"overflow": "block"}):
        try:
            Hub(**kwargs)
        except ValueError:
            pass
        else:
            raise AssertionError(f"Hub({kwargs}) accepted")


@scenario
def broadcast_reaches_each_member_once_with_identical_bytes(scene: Scene) -> None:
    hub = Hub()
    ws = {}
    peers = {}
    for name in ("a", "b", "c", "d", "e"):
        ws[name], peers[name] = scene.member(name)
    for name, rooms in {"a": ["red"], "b": ["red", "blue"], "c": ["red"],
                        "d": ["blue"], "e": ["green"]}.items():
        for room in rooms:
            hub.join(ws[name], room)
    sent = [  # (room, message, exclude, receivers)
        ("red", "hello red", None, "abc"),
        ("blue", b"\x00\xffblue", None, "bd"),
        ("red", "not to a", ws["a"], "bc"),
        ("red", b"not to a or c", [ws["a"], ws["c"]], "b"),
        ("green", "\u20ac" * 200, None, "e"),          # 600 bytes: 16-bit length
        ("blue", b"x" * 70000, (w for w in [ws["d"]]), "b"),  # 64-bit length
        ("nobody", "into an empty room", None, ""),
        ("red", "", None, "abc"),
        ("blue", b"", None, "bd"),
    ]
    expected = dict.fromkeys(peers, b"")
    for room, message, exclude, receivers in sent:
        count = hub.broadcast(room, message, exclude=exclude)
        assert count == len(receivers), (room, message[:20], count)
        frame = text_frame(message) if isinstance(message, str) else binary_frame(message)
        for name in receivers:
            expected[name] += frame
    # A last message to every room: once it is in, everything before it is.
    for room, names in (("red", "abc"), ("blue", "bd"), ("green", "e")):
        assert hub.broadcast(room, f"end {room}") == len(names)
        for name in names:
            expected[name] += text_frame(f"end {room}")
    for name, peer in peers.items():
        want = expected[name]
        wait_for(peer.changed, lambda peer=peer, want=want: len(peer.raw) >= len(want),
                 f"{len(want)} bytes at {name}")
        # The exact bytes _core.encode_frame produced, each frame once.
        assert bytes(peer.raw) == expected[name], name


@scenario
def text_and_binary_keep_their_type(scene: Scene) -> None:
    hub = Hub()
    ws, peer = scene.member("a")
    hub.join(ws, "r")
    hub.broadcast("r", "t\u00e9xt")
    hub.broadcast("r", b"bin")
    hub.broadcast("r", bytearray(b"arr"))
    hub.broadcast("r", memoryview(b"view"))
    peer.wait_frames(4)
    assert peer.data() == [(OP_TEXT, "t\u00e9xt".encode()), (OP_BINARY, b"bin"),
                           (OP_BINARY, b"arr"), (OP_BINARY, b"view")]
    assert all(f.fin and not f.masked and f.rsv == 0 for f in peer.frames)


def _leaves_when(scene: Scene, how: str) -> None:
    hub = Hub()
    gone, gone_peer = scene.member("gone")
    stay, stay_peer = scene.member("stay")
    for room in ("r1", "r2", "r3"):
        hub.join(gone, room)
        hub.join(stay, room)
    scene.serve(gone)
    closed = scene.closed_event(gone)
    if how == "close frame":
        gone_peer.send_frame(OP_CLOSE, close_payload(1000))
    elif how == "eof":
        gone_peer.sock.shutdown(socket.SHUT_WR)
    else:  # the application closes it
        scene.env.spawn(gone.close, 1001, "going away")
    wait_set(closed, f"teardown after {how}")
    assert hub.rooms(gone) == set()
    assert hub.rooms(stay) == {"r1", "r2", "r3"}
    for room in ("r1", "r2", "r3"):
        assert hub.members(room) == [stay]
        assert hub.broadcast(room, room) == 1
    stay_peer.wait_frames(3)
    assert stay_peer.data() == [(OP_TEXT, b"r1"), (OP_TEXT, b"r2"), (OP_TEXT, b"r3")]


@scenario
def member_leaves_all_rooms_on_close_frame(scene: Scene) -> None:
    _leaves_when(scene, "close frame")


@scenario
def member_leaves_all_rooms_on_eof(scene: Scene) -> None:
    _leaves_when(scene, "eof")


@scenario
def member_leaves_all_rooms_when_closed_by_the_application(scene: Scene) -> None:
    _leaves_when(scene, "app close")


@scenario
def hub_send_keeps_order_with_broadcasts_and_across_leave_and_rejoin(scene: Scene) -> None:
    hub = Hub()
    ws, peer = scene.member("a")
    hub.join(ws, "r")
    expected = []
    for i in range(50):
        hub.broadcast("r", f"broadcast {i}")
        assert hub.send(ws, f"direct {i}") is True
        expected += [f"broadcast {i}", f"direct {i}"]
        if i % 10 == 9:  # leaving and rejoining keeps the one queue
            hub.leave(ws, "r")
            assert hub.broadcast("r", "while out") == 0
            hub.join(ws, "r")
    peer.wait_frames(len(expected))
    assert peer.data() == [(OP_TEXT, m.encode()) for m in expected]


@scenario
def closed_websocket_joining_leaves_at_once(scene: Scene) -> None:
    hub = Hub()
    ws, _ = scene.member("late")
    closed = scene.closed_event(ws)
    ws._eof()  # torn down before joining
    assert closed.is_set()
    hub.join(ws, "r")
    assert hub.rooms(ws) == set() and hub.members("r") == [] and hub.rooms() == set()
    assert hub.broadcast("r", "x") == 0


@scenario
def member_whose_send_fails_is_removed_and_others_still_get_it(scene: Scene) -> None:
    hub = Hub()
    dead, dead_peer = scene.member("dead", read=False)
    peers = [scene.member(n) for n in ("a", "b")]
    for ws in [dead] + [w for w, _ in peers]:
        hub.join(ws, "r")
        hub.join(ws, "other")
    closed = scene.closed_event(dead)
    dead_peer.sock.close()  # nobody on the server side reads: only a send finds out
    assert hub.broadcast("r", "first") == 3  # queued for all three
    wait_set(closed, "the dead member's teardown")
    assert hub.rooms(dead) == set()
    assert sorted(hub.members("other"), key=id) == sorted([w for w, _ in peers], key=id)
    assert hub.broadcast("r", "second") == 2
    for _, peer in peers:
        peer.wait_frames(2)
        assert peer.data() == [(OP_TEXT, b"first"), (OP_TEXT, b"second")]


def _fill_slow_member(scene: Scene, hub: Hub, full: Callable[[WebSocket], bool],
                      close_timeout: float = 5.0
                      ) -> Tuple[WebSocket, Peer, List[Peer], List[bytes], int]:
    """Broadcast to a room where one member never reads, waiting each time
    until the others have the message, until ``full(slow)``.  Returns the
    slow member, its peer, the other peers, the payloads sent and the index
    of the broadcast after which ``full(slow)`` became true."""
    slow, slow_peer = scene.member("slow", read=False, small_buffers=True,
                                   close_timeout=close_timeout)
    fast = [scene.member(n)[1] for n in ("fast1", "fast2")]
    for ws, _ in scene.members:
        hub.join(ws, "r")
    payloads: List[bytes] = []
    for i in range(1000):
        payload = b"%05d" % i + b"." * 2043
        payloads.append(payload)
        _, took = call_bounded(scene.env, hub.broadcast, "r", payload)
        assert took < 2.0, f"broadcast {i} took {took:.2f}s: it waited on a socket"
        for peer in fast:
            peer.wait_frames(i + 1)
        if full(slow):
            return slow, slow_peer, fast, payloads, i
    raise AssertionError("the slow member's queue never filled")


@scenario
def slow_member_is_disconnected_with_1008(scene: Scene) -> None:
    queue_size = 8
    hub = Hub(queue_size=queue_size)
    slow, slow_peer, fast, payloads, k = _fill_slow_member(
        scene, hub, lambda slow: slow not in hub.members("r"))
    # Out of every room as soon as the broadcast that overflowed returned.
    assert hub.rooms(slow) == set() and len(hub.members("r")) == 2
    # Broadcasts go on, for the others only.
    for j in range(5):
        payloads.append(b"after %d" % j)
        assert call_bounded(scene.env, hub.broadcast, "r", payloads[-1])[0] == 2
    for peer in fast:
        peer.wait_frames(len(payloads))
        assert peer.data() == [(OP_BINARY, p) for p in payloads]
    # The slow peer reads at last: what the writer had taken from the queue
    # (the backlog was dropped), then the close frame.
    closed = scene.closed_event(slow)
    slow_peer.start()
    wait_for(slow_peer.changed,
             lambda: any(f.opcode == OP_CLOSE for f in slow_peer.frames) or slow_peer.eof,
             "the slow member's close frame")
    *data, close = slow_peer.frames
    assert close.opcode == OP_CLOSE, close
    assert (close.close_code, close.close_reason) == (1008, b"send queue overflow")
    # Broadcasts 0..k-1 were queued, k overflowed: the writer had taken all
    # but the last queue_size of them, which were dropped.
    written = k - queue_size
    assert [(f.opcode, f.payload) for f in data] == [(OP_BINARY, p) for p in payloads[:written]]
    # (The peer answered the close frame.)
    wait_set(closed, "the slow member's teardown")
    slow_peer.wait_eof()
    assert slow.closed


@scenario
def slow_member_that_never_reads_is_dropped_after_close_timeout(scene: Scene) -> None:
    hub = Hub(queue_size=4)
    slow, slow_peer, fast, payloads, _ = _fill_slow_member(
        scene, hub, lambda slow: slow not in hub.members("r"), close_timeout=0.5)
    assert hub.rooms(slow) == set()
    # Its writer is stuck in a send that never ends, holding the lock the
    # close frame needs: only the shutdown after close_timeout ends it.
    closed = scene.closed_event(slow)
    wait_set(closed, "the stuck member's teardown", timeout=5.0)
    assert slow.closed
    assert hub.broadcast("r", "still here") == 2
    for peer in fast:
        peer.wait_frames(len(payloads) + 1)
        assert peer.data()[-1] == (OP_TEXT, b"still here")
    # Its peer gets what fitted in the socket, then EOF (the close frame
    # could not be written).
    slow_peer.start()
    slow_peer.wait_eof()
    assert all(f.opcode == OP_BINARY for f in slow_peer.frames)
    assert [f.payload for f in slow_peer.frames] == payloads[:len(slow_peer.frames)]


@scenario
def slow_member_loses_messages_under_drop(scene: Scene) -> None:
    queue_size = 8
    hub = Hub(queue_size=queue_size, overflow="drop")
    slow, slow_peer, fast, payloads, k = _fill_slow_member(
        scene, hub, lambda slow: hub.dropped(slow) > 0)
    assert hub.dropped(slow) == 1
    for j in range(5):
        payloads.append(b"more %d" % j)
        assert call_bounded(scene.env, hub.broadcast, "r", payloads[-1])[0] == 2
    assert hub.dropped(slow) == 6  # every message while its queue stays full
    assert not slow.closed and hub.rooms(slow) == {"r"}
    for peer in fast:
        peer.wait_frames(len(payloads))
        assert peer.data() == [(OP_BINARY, p) for p in payloads]
    # It reads again: everything before the first drop, in order; then it
    # gets new messages normally.
    slow_peer.start()
    slow_peer.wait_frames(k)
    assert hub.broadcast("r", "final") == 3
    slow_peer.wait_frames(k + 1)
    assert slow_peer.data() == [(OP_BINARY, p) for p in payloads[:k]] + [(OP_TEXT, b"final")]
    assert hub.dropped(slow) == 6 and not slow.closed


@scenario
def member_that_cannot_take_frames_now_gets_them_later_whole_and_in_order(scene: Scene) -> None:
    # Under gevent the first broadcasts go straight to the socket, three
    # at a time; then some are cut short (the rest goes to the writer) or
    # not taken at all (queued whole); the ones after wait behind.
    hub = Hub(queue_size=1000)
    slow, slow_peer = scene.member("slow", read=False, small_buffers=True)
    fast, fast_peer = scene.member("fast")
    hub.join(slow, "r")
    hub.join(fast, "r")
    payloads = [b"%03d" % i + b"." * 3000 for i in range(60)]  # far more than the buffers

    def burst(first: int) -> None:
        for payload in payloads[first:first + 3]:
            assert hub.broadcast("r", payload) == 2
    for i in range(0, len(payloads), 3):
        call_bounded(scene.env, burst, i)
        fast_peer.wait_frames(i + 3)
    assert not slow.closed and hub.rooms(slow) == {"r"}
    slow_peer.start()
    slow_peer.wait_frames(len(payloads))
    for peer in (slow_peer, fast_peer):
        assert peer.data() == [(OP_BINARY, p) for p in payloads]
        assert all(f.fin and not f.masked for f in peer.frames)
    # Taking frames again, it gets new ones normally.
    assert hub.broadcast("r", "again") == 2
    slow_peer.wait_frames(len(payloads) + 1)
    assert slow_peer.data()[-1] == (OP_TEXT, b"again")


@scenario
def frame_cut_short_is_finished_before_a_concurrent_send(scene: Scene) -> None:
    # The socket fills up half-way through a broadcast frame; a ws.send()
    # from another task must wait until the frame's end is out, not slip
    # its own frame into the middle of it.
    hub = Hub(queue_size=1000)
    ws, peer = scene.member("slow", read=False, small_buffers=True)
    fast, fast_peer = scene.member("fast")
    hub.join(ws, "r")
    hub.join(fast, "r")
    payloads = [b"%03d" % i + b"x" * 5000 for i in range(30)]
    for i, payload in enumerate(payloads):
        hub.broadcast("r", payload)
        fast_peer.wait_frames(i + 1)
    direct = b"direct" * 1000
    sent = scene.env.event()

    def send() -> None:
        ws.send(direct)
        sent.set()
    task = scene.env.spawn(send)
    assert not sent.wait(0.2), "ws.send() went through a full socket"
    peer.start()
    wait_set(sent, "the concurrent send")
    assert scene.env.join(task, TIMEOUT)
    peer.wait_frames(len(payloads) + 1)
    data = peer.data()
    assert data.count((OP_BINARY, direct)) == 1
    assert [d for d in data if d != (OP_BINARY, direct)] == [(OP_BINARY, p) for p in payloads]
    assert all(f.fin and f.rsv == 0 and not f.masked for f in peer.frames)


@scenario
def broadcast_waits_for_a_send_that_blocks_before_it_is_written(scene: Scene) -> None:
    # A broadcast, then (before the broadcasting task yields) a ws.send()
    # that fills the socket and blocks, holding the socket: the broadcast's
    # frame must not be written in the middle of it.
    hub = Hub()
    ws, peer = scene.member("m", read=False, small_buffers=True)
    hub.join(ws, "r")
    big = b"z" * 200000

    def run() -> None:
        assert hub.broadcast("r", "first") == 1
        ws.send(big)
    task = scene.env.spawn(run)
    assert not scene.env.join(task, 0.2), "a send into a full socket returned"
    peer.start()
    assert scene.env.join(task, TIMEOUT)
    peer.wait_frames(2)
    assert sorted(peer.data()) == [(OP_TEXT, b"first"), (OP_BINARY, big)]
    assert all(f.fin and f.rsv == 0 and not f.masked for f in peer.frames)


@scenario
def broadcast_made_as_a_send_ends_goes_behind_the_frame_queued_before_it(scene: Scene) -> None:
    # The writer took "q1" from the queue and waits for the socket, which
    # another sender holds (the test takes the WebSocket's lock, as a
    # ws.send() in the middle of its write does); that sender lets go and,
    # at once, broadcasts "q2" and makes the hub write what is pending
    # (hub.send does): "q2" must still come after "q1".
    hub = Hub()
    ws, peer = scene.member("m")
    other, other_peer = scene.member("other")
    hub.join(ws, "r")
    ws._lock.acquire()
    try:
        assert hub.broadcast("r", "q1") == 1
        scene.env.event().wait(0.2)  # a pause that lets the writer run
    finally:
        ws._lock.release()
    assert hub.broadcast("r", "q2") == 1
    assert hub.send(other, "flush")
    peer.wait_frames(2)
    assert peer.data() == [(OP_TEXT, b"q1"), (OP_TEXT, b"q2")]
    other_peer.wait_frames(1)


@scenario
def burst_to_a_member_whose_socket_is_held_arrives_whole_and_in_order(scene: Scene) -> None:
    # Another sender holds the socket (the test takes the WebSocket's lock)
    # while a task broadcasts a burst without yielding: under gevent the
    # burst waits in one batch, and the held socket is found when the batch
    # is written, so the frames are queued then.  They all arrive, in order,
    # once the sender lets go, and each broadcast counted the member.
    hub = Hub()
    ws, peer = scene.member("m")
    other, other_peer = scene.member("other")
    hub.join(ws, "r")
    hub.join(other, "r")
    ws._lock.acquire()
    try:
        counts, _ = call_bounded(scene.env, lambda: [hub.broadcast("r", f"b{i}")
                                                     for i in range(10)])
        other_peer.wait_frames(10)  # the batch was written
        assert peer.data() == []
    finally:
        ws._lock.release()
    assert counts == [2] * 10
    peer.wait_frames(10)
    expected = [(OP_TEXT, f"b{i}".encode()) for i in range(10)]
    assert peer.data() == expected and other_peer.data() == expected
    assert hub.dropped(ws) == 0


@scenario
def member_disconnected_with_a_frame_cut_short_gets_its_end_then_the_close_frame(
        scene: Scene) -> None:
    # Under gevent a burst can fill the socket half-way through a frame and
    # overflow the queue behind it: the backlog is dropped, but the end of
    # that frame still goes out, before the close frame.
    hub = Hub(queue_size=1)
    slow, slow_peer = scene.member("slow", read=False, small_buffers=True)
    hub.join(slow, "r")
    payloads = [b"%03d" % i + b"." * 3000 for i in range(400)]

    def burst(first: int) -> None:
        for payload in payloads[first:first + 4]:
            hub.broadcast("r", payload)
    for first in range(0, len(payloads), 4):
        call_bounded(scene.env, burst, first)
        scene.env.event().wait(0.01)  # lets the batch be written
        if slow not in hub.members("r"):
            break
    else:
        raise AssertionError("the slow member's queue never overflowed")
    closed = scene.closed_event(slow)
    slow_peer.start()
    wait_set(closed, "the slow member's teardown")
    slow_peer.wait_eof()
    *data, close = slow_peer.frames
    assert (close.opcode, close.close_code) == (OP_CLOSE, 1008), close
    assert [f.payload for f in data] == payloads[:len(data)]


def _broken_while_broadcasting(scene: Scene, tcp: bool) -> None:
    hub = Hub()
    dead, dead_peer = scene.member("dead", read=False, tcp=tcp)
    peers = [scene.member(n, tcp=tcp) for n in ("a", "b")]
    for ws in [dead] + [w for w, _ in peers]:
        hub.join(ws, "r")
    closed = scene.closed_event(dead)

    def burst(first: int) -> None:
        # Several broadcasts in a row, with no wait in between: under gevent
        # they are written together once this task yields.  Once the dead
        # member's socket is broken, the count drops to 2 when the reset is
        # noticed: by the hub's write, or (threads) by a reader of that
        # connection first; when exactly is the kernel's business.
        counts = [hub.broadcast("r", f"m{i}") for i in range(first, first + 5)]
        if first == 0:
            assert counts == [3] * 5
        else:
            assert counts == sorted(counts, reverse=True) and set(counts) <= {2, 3}, counts
    call_bounded(scene.env, burst, 0)
    for _, peer in peers:
        peer.wait_frames(5)
    if tcp:
        # A reset: the next send fails with ECONNRESET (or EPIPE).
        dead_peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                  struct.pack("ii", 1, 0))
    dead_peer.sock.close()
    call_bounded(scene.env, burst, 5)
    wait_set(closed, "the broken member's teardown")
    assert hub.rooms(dead) == set() and dead.closed and dead.close_code == 1006
    assert sorted(hub.members("r"), key=id) == sorted([w for w, _ in peers], key=id)
    assert hub.broadcast("r", "after") == 2
    for _, peer in peers:
        peer.wait_frames(11)
        assert peer.data() == [(OP_TEXT, f"m{i}".encode()) for i in range(10)] + [
            (OP_TEXT, b"after")]


@scenario
def member_whose_socket_breaks_between_broadcasts_is_removed(scene: Scene) -> None:
    _broken_while_broadcasting(scene, tcp=False)


@scenario
def member_whose_tcp_connection_is_reset_is_removed(scene: Scene) -> None:
    _broken_while_broadcasting(scene, tcp=True)


@scenario
def direct_and_queued_deliveries_mix_in_order(scene: Scene) -> None:
    # Members that take everything at once and one whose socket is full
    # (its frames wait in its queue) get broadcasts from bursts and from
    # single calls, hub.send messages, exclusions and a leave/rejoin in
    # between, each in the order they were made.
    hub = Hub(queue_size=10000)
    slow, slow_peer = scene.member("slow", read=False, small_buffers=True)
    a, a_peer = scene.member("a")
    b, b_peer = scene.member("b", tcp=True)
    members = {"slow": slow, "a": a, "b": b}
    expected: Dict[str, List[bytes]] = {name: [] for name in members}
    for ws in members.values():
        hub.join(ws, "r")
    inside = set(members)

    def broadcast(message: bytes, exclude: Any = None) -> None:
        skip = {n for n, w in members.items() if exclude is w}
        assert hub.broadcast("r", message, exclude=exclude) == len(inside - skip)
        for name in inside - skip:
            expected[name].append(message)

    def step(i: int) -> None:
        # One task's run: several hub calls with no wait in between.
        broadcast(b"%d burst a " % i + b"y" * 700)
        broadcast(b"%d burst b" % i)
        if i % 4 == 1:
            hub.leave(b, "r")
            inside.discard("b")
            broadcast(b"%d b is out" % i)
            hub.join(b, "r")
            inside.add("b")
            broadcast(b"%d b is back" % i)
        if i % 3 == 0:
            assert hub.send(slow, b"%d to slow" % i)
            expected["slow"].append(b"%d to slow" % i)
        broadcast(b"%d not to a" % i, exclude=a)
        assert hub.send(a, b"%d to a" % i)
        expected["a"].append(b"%d to a" % i)
        broadcast(b"%d burst end" % i)

    for i in range(40):
        call_bounded(scene.env, step, i)
        a_peer.wait_frames(len(expected["a"]))
    slow_peer.start()
    for name, peer in (("slow", slow_peer), ("a", a_peer), ("b", b_peer)):
        peer.wait_frames(len(expected[name]))
        assert [p for _, p in peer.data()] == expected[name], name


@scenario
def concurrent_broadcasts_arrive_complete_and_in_the_same_order(scene: Scene) -> None:
    hub = Hub(queue_size=4000)
    peers = []
    for name in ("a", "b", "c"):
        ws, peer = scene.member(name)
        hub.join(ws, "r")
        peers.append(peer)
    senders, count = 4, 200

    def send(s: int) -> None:
        for i in range(count):
            hub.broadcast("r", f"{s}:{i}")
    tasks = [scene.env.spawn(send, s) for s in range(senders)]
    for task in tasks:
        assert scene.env.join(task, TIMEOUT)
    total = senders * count
    orders = []
    for peer in peers:
        peer.wait_frames(total)
        got = [p.decode() for _, p in peer.data()]
        assert len(got) == total
        for s in range(senders):
            assert [m for m in got if m.startswith(f"{s}:")] == [f"{s}:{i}" for i in range(count)]
        orders.append(got)
    # Queued under one lock: every member sees the same interleaving.
    assert orders[0] == orders[1] == orders[2]


@scenario
def bus_carries_broadcasts_between_hubs_once(scene: Scene) -> None:
    bus = FakeBus()
    hub1, hub2 = Hub(bus=bus), Hub(bus=bus)
    assert hub1.id != hub2.id
    a1, p1 = scene.member("a1")
    b1, q1 = scene.member("b1")
    a2, p2 = scene.member("a2")
    other, p_other = scene.member("other")
    hub1.join(a1, "r")
    hub1.join(b1, "r")
    hub2.join(a2, "r")
    hub2.join(other, "elsewhere")
    # exclude applies where the broadcast is made; the other hub has no
    # such member anyway.
    assert hub1.broadcast("r", "from hub1", exclude=b1) == 1
    assert hub2.broadcast("r", b"from hub2") == 1
    assert bus.published == [(hub1.id, "r", _core.TEXT, b"from hub1"),
                             (hub2.id, "r", _core.BINARY, b"from hub2")]
    hub1.broadcast("r", "end")
    for peer in (p1, p2):
        peer.wait_frames(3)
        assert peer.data() == [(OP_TEXT, b"from hub1"), (OP_BINARY, b"from hub2"),
                               (OP_TEXT, b"end")]
    q1.wait_frames(2)
    assert q1.data() == [(OP_BINARY, b"from hub2"), (OP_TEXT, b"end")]
    assert p_other.frames == []
    hub1.close()
    assert bus.closed == 1
    assert hub1.rooms() == set() and not a1.closed  # members stay connected


@scenario
def close_stops_writers_and_keeps_connections(scene: Scene) -> None:
    hub = Hub()
    ws, peer = scene.member("a")
    hub.join(ws, "r")
    hub.broadcast("r", "before")
    peer.wait_frames(1)
    hub.close()
    assert hub.rooms() == set() and hub.rooms(ws) == set()
    assert hub.broadcast("r", "after") == 0
    assert not ws.closed
    ws.send("direct")  # still usable
    peer.wait_frames(2)
    assert peer.data() == [(OP_TEXT, b"before"), (OP_TEXT, b"direct")]


# -- pytest ----------------------------------------------------------------------

NAMES = sorted(SCENARIOS)


@pytest.mark.parametrize("name", NAMES)
def test_threads(name: str) -> None:
    assert not _patched(), "the test process is monkey-patched"
    SCENARIOS[name](ThreadEnv())


def _patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey and monkey.is_module_patched("socket"))


_results: Dict[str, Dict[str, Tuple[bool, str]]] = {}


def _gevent_results(mode: str) -> Dict[str, Tuple[bool, str]]:
    """Run every scenario in a subprocess under gevent (``mode``: "gevent"
    for gevent sockets, "patched" for patch_all), once per mode."""
    if mode not in _results:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([ROOT] + ([env["PYTHONPATH"]]
                                                      if env.get("PYTHONPATH") else []))
        path = os.path.abspath(__file__)
        # patch_all() must come before anything else is imported.
        argv = [sys.executable, "-c",
                "import sys, runpy\n"
                "if sys.argv[1] == 'patched':\n"
                "    from gevent import monkey; monkey.patch_all()\n"
                f"runpy.run_path({path!r}, run_name='__main__')\n", mode]
        try:
            proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True,
                                  timeout=120, text=True)
            out, err = proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as exc:
            partial = exc.stdout or ""
            out = partial.decode() if isinstance(partial, bytes) else partial
            err = "timed out after 120s"
        results = {}
        for line in out.splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                results[record["name"]] = (record["ok"], record["error"])
        for name in NAMES:
            results.setdefault(name, (False, "no result from the subprocess; "
                                             f"stderr:\n{err[-4000:]}"))
        _results[mode] = results
    return _results[mode]


@pytest.mark.parametrize("mode", ["gevent", "patched"])
@pytest.mark.parametrize("name", NAMES)
def test_gevent(name: str, mode: str) -> None:
    ok, error = _gevent_results(mode)[name]
    assert ok, f"{name} under {mode}:\n{error}"


def main() -> None:
    mode = sys.argv[1]
    if mode == "patched":
        # Patched by the bootstrap in _gevent_results, before any import.
        assert _patched()
        env: Any = ThreadEnv(check_leaks=False)
    else:
        env = GeventEnv()
    for name in NAMES:
        try:
            SCENARIOS[name](env)
            record = {"name": name, "ok": True, "error": ""}
        except BaseException:
            record = {"name": name, "ok": False, "error": traceback.format_exc()}
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
