"""Many room clients on raw sockets, driven by one selector, for the hub
integration tests (tests/integration/hub_server.py serves them).

Every client sends numbered messages ``room|sender|seq`` to its room; once
it has every numbered message of every sender it expects, it sends a fence
``room|sender|fence``; the exchange is over when every client has the fence
of every sender it expects.  The hub keeps one FIFO per member, so the
fence of a sender comes after everything that sender's broadcasts put in
front of it: a duplicate or a stray message shows up before the last fence
and the final check catches it.
"""
from __future__ import annotations

import selectors
import sys
import time
from collections import defaultdict
from typing import Dict, Iterable, List, Optional, Set
from urllib.parse import quote

from tests.conftest import TESTS, ServerProcess
from tests.wire import OP_TEXT, RawClient, parse_frame

TIMEOUT = 10.0
HUB_SERVER = TESTS / "integration" / "hub_server.py"


def start_hub_server(tmp_path_factory, name: str, *args: str) -> ServerProcess:
    """tests/integration/hub_server.py with ``args``, its log in a temp dir."""
    log = tmp_path_factory.mktemp("logs") / f"{name}.log"
    server = ServerProcess(name, [sys.executable, str(HUB_SERVER), *args], log)
    return server.start_and_read_port()


class RoomClient:
    """One WebSocket client in one room, on a blocking socket with timeouts
    (only read when a selector says it is readable)."""

    def __init__(self, port: int, room: str, name: str, exclude_self: bool = False,
                 server: str = "") -> None:
        self.room = room
        self.name = name
        self.exclude_self = exclude_self
        self.server = server
        self.raw = RawClient(port, timeout=TIMEOUT)
        path = "/" + quote(room) + ("?exclude_self=1" if exclude_self else "")
        self.raw.handshake(path)
        joined = self.raw.read_frame()
        assert (joined.opcode, joined.payload) == (OP_TEXT, f"joined {room}".encode()), \
            f"{name}: expected 'joined {room}', got {joined}"
        self.received: List[str] = []

    @property
    def sock(self):  # type: ignore[no-untyped-def]
        return self.raw.sock

    def send(self, text: str) -> None:
        self.raw.send_frame(OP_TEXT, text)

    def pump(self) -> None:
        """Read what is there (call when readable) and record text messages."""
        if not self.raw._fill(time.monotonic() + TIMEOUT):
            raise AssertionError(f"{self.name}: the server closed the connection")
        while True:
            r = parse_frame(self.raw.buf)
            if r is None:
                return
            frame, used = r
            self.raw.buf = self.raw.buf[used:]
            assert frame.opcode == OP_TEXT and frame.fin and not frame.masked, \
                f"{self.name}: unexpected frame {frame}"
            self.received.append(frame.payload.decode("utf-8"))

    def wait_readable(self, timeout: float) -> bool:
        with selectors.DefaultSelector() as sel:
            sel.register(self.sock, selectors.EVENT_READ)
            return bool(sel.select(max(timeout, 0)))

    def close(self) -> None:
        self.raw.close()


def connect_all(port: int, plan: Iterable[tuple]) -> List[RoomClient]:
    """``plan``: (room, name, exclude_self) per client."""
    return [RoomClient(port, room, name, exclude_self) for room, name, exclude_self in plan]


def exchange(clients: List[RoomClient], count: int, timeout: float = 60.0) -> None:
    """Every client sends ``count`` numbered messages then, once it has all
    it expects, a fence; then checks that every client got exactly the
    messages of its room, each once, in per-sender order, and nothing else."""
    members: Dict[str, List[str]] = defaultdict(list)
    for c in clients:
        members[c.room].append(c.name)
    expected: Dict[str, Set[str]] = {
        c.name: {m for m in members[c.room] if not (c.exclude_self and m == c.name)}
        for c in clients}
    numbered: Dict[str, Dict[str, int]] = {c.name: defaultdict(int) for c in clients}
    fences: Dict[str, Set[str]] = {c.name: set() for c in clients}
    seen: Dict[str, int] = {c.name: 0 for c in clients}
    fenced: Set[str] = set()
    done: Set[str] = set()

    def update(c: RoomClient) -> None:
        for message in c.received[seen[c.name]:]:
            parts = message.split("|")
            if len(parts) == 3:
                if parts[2] == "fence":
                    fences[c.name].add(parts[1])
                else:
                    numbered[c.name][parts[1]] += 1
        seen[c.name] = len(c.received)
        if c.name not in fenced and all(numbered[c.name][s] >= count
                                        for s in expected[c.name]):
            fenced.add(c.name)
            c.send(f"{c.room}|{c.name}|fence")
        if fences[c.name] >= expected[c.name]:
            done.add(c.name)

    for c in clients:
        for i in range(count):
            c.send(f"{c.room}|{c.name}|{i}")
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        for c in clients:
            sel.register(c.sock, selectors.EVENT_READ, c)
        for c in clients:
            update(c)  # a client that expects nobody is fenced at once
        while len(done) < len(clients):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = sorted({c.name for c in clients} - done)
                raise AssertionError(
                    f"timed out after {timeout}s: {len(missing)} clients without every "
                    f"fence, e.g. {missing[:5]}; "
                    + "; ".join(f"{n}: {sum(numbered[n].values())} numbered, "
                                f"{len(fences[n])} fences" for n in missing[:3]))
            for key, _ in sel.select(remaining):
                c = key.data
                c.pump()
                update(c)
    check(clients, expected, count)


def check(clients: List[RoomClient], expected: Dict[str, Set[str]], count: int) -> None:
    errors: List[str] = []
    for c in clients:
        per_sender: Dict[str, List[str]] = defaultdict(list)
        for message in c.received:
            room, sender, seq = message.split("|")
            if room != c.room:
                errors.append(f"{c.name} in {c.room!r} got {message!r} from room {room!r}")
            per_sender[sender].append(seq)
        want = {s: [str(i) for i in range(count)] + ["fence"] for s in expected[c.name]}
        if dict(per_sender) != want:
            for s in sorted(set(per_sender) | set(want)):
                if per_sender.get(s) != want.get(s):
                    errors.append(f"{c.name} ({c.server}) from {s}: got {per_sender.get(s)}, "
                                  f"expected {want.get(s)}")
                    break
    assert not errors, f"{len(errors)} wrong deliveries:\n" + "\n".join(errors[:20])


def probe(sender: RoomClient, receiver: RoomClient, tag: str, timeout: float = 20.0) -> int:
    """Send probes from ``sender`` until ``receiver`` gets one (a bus is
    subscribed and publishing); how many were sent.  Waits at most
    ``timeout`` overall and 0.2s per probe."""
    deadline = time.monotonic() + timeout
    prefix = f"{sender.room}|{tag}|"
    n = 0
    while True:
        now = time.monotonic()
        if now >= deadline:
            raise AssertionError(f"probe {tag}: nothing from {sender.server} reached "
                                 f"{receiver.server} within {timeout}s ({n} probes)")
        sender.send(f"{prefix}{n}")
        n += 1
        until = min(deadline, now + 0.2)
        while time.monotonic() < until:
            if receiver.wait_readable(until - time.monotonic()):
                receiver.pump()
                if any(m.startswith(prefix) for m in receiver.received):
                    return n


def drop_all(clients: Iterable[Optional[RoomClient]]) -> None:
    for c in clients:
        if c is not None:
            c.close()
