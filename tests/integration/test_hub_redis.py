"""pyws.redis_bus.RedisBus: rooms shared by two server processes through a
real Redis (Debian's redis-server, started here on a free port).

Delivery through Redis pub/sub starts only once both processes are
subscribed, so every test first sends probes each way until one arrives.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import List, Optional

import pytest

from tests.conftest import ROOT, free_port, subprocess_env, terminate
from tests.integration.hub_clients import RoomClient, drop_all, exchange, probe, start_hub_server

START_TIMEOUT = 15.0


class RedisServer:
    """A throwaway redis-server: no persistence, 127.0.0.1 only."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server") or (
            "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None)
        if binary is None:
            pytest.fail("redis-server is not installed: apt-get install redis-server "
                        "(CI installs it); the Redis bus tests need a real Redis",
                        pytrace=False)
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_path = workdir / "redis.log"
        self.proc: Optional[subprocess.Popen] = None
        self._copier: Optional[threading.Thread] = None

    def start(self) -> RedisServer:
        assert self.proc is None
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        ready = threading.Event()
        proc = self.proc

        def copy_log() -> None:
            # Keeps the pipe drained for the server's whole life.
            assert proc.stdout is not None
            with open(self.log_path, "ab") as log:
                for line in proc.stdout:
                    log.write(line)
                    log.flush()
                    if b"Ready to accept connections" in line:
                        ready.set()
            ready.set()  # exited: start() reports it

        self._copier = threading.Thread(target=copy_log, daemon=True)
        self._copier.start()
        if not ready.wait(START_TIMEOUT) or proc.poll() is not None:
            self.stop()
            pytest.fail(f"redis-server did not start on port {self.port}:\n{self.log()}",
                        pytrace=False)
        assert self.client().ping() is True
        return self

    def client(self):  # type: ignore[no-untyped-def]
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5.0,
                           socket_connect_timeout=5.0)

    def stop(self) -> None:
        if self.proc is None:
            return
        terminate(self.proc, grace=10)
        if self._copier is not None:
            self._copier.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def servers(tmp_path_factory, redis_server):
    """Two hub servers sharing rooms through ``redis_server``."""
    a = start_hub_server(tmp_path_factory, "hub-server-A", "--redis", redis_server.url)
    b = start_hub_server(tmp_path_factory, "hub-server-B", "--redis", redis_server.url)
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture
def clients():
    opened: List[RoomClient] = []
    yield opened
    drop_all(opened)


_probe_count = [0]


def bus_ready(servers, clients: List[RoomClient]) -> None:
    """Probe A -> B and B -> A until each arrives: both hubs subscribed and
    publishing."""
    a, b = servers
    _probe_count[0] += 1
    room = f"probe-{_probe_count[0]}"
    pa = RoomClient(a.port, room, "probe-A", server="A")
    pb = RoomClient(b.port, room, "probe-B", server="B")
    clients.extend([pa, pb])
    probe(pa, pb, "A")
    probe(pb, pa, "B")


def split_clients(servers, plan) -> List[RoomClient]:
    """``plan``: (room, name, server index, exclude_self)."""
    return [RoomClient(servers[s].port, room, name, exclude_self, server="AB"[s])
            for room, name, s, exclude_self in plan]


def standard_plan(tag: str) -> list:
    plan = []
    for room in ("alpha", "beta"):  # on both processes
        for i in range(8):
            plan.append((room, f"{tag}{room[0]}{i}", i % 2, i == 3))
    plan += [("gamma", f"{tag}g{i}", 0, False) for i in range(3)]  # A only
    plan += [("delta", f"{tag}d{i}", 1, False) for i in range(3)]  # B only
    return plan


def assert_clean_logs(servers) -> None:
    for server in servers:
        log = server.log_since_mark()
        assert "Traceback" not in log, f"{server.name}:\n{log[-3000:]}"


def test_messages_reach_both_processes_exactly_once(servers, clients):
    bus_ready(servers, clients)
    room_clients = split_clients(servers, standard_plan("x"))
    clients.extend(room_clients)
    exchange(room_clients, 5)
    assert_clean_logs(servers)


def test_same_room_name_on_both_processes_is_one_room_and_rooms_stay_apart(servers, clients):
    bus_ready(servers, clients)
    plan = [("shared", "s-a", 0, False), ("shared", "s-b", 1, False),
            ("only-a", "oa", 0, False), ("only-b", "ob", 1, False),
            ("shared2", "t-a", 0, False), ("shared2", "t-b", 1, False)]
    room_clients = split_clients(servers, plan)
    clients.extend(room_clients)
    exchange(room_clients, 10)


def test_bus_recovers_after_pubsub_connections_are_killed(servers, clients, redis_server):
    bus_ready(servers, clients)
    for server in servers:
        server.mark_log()
    killed = redis_server.client().client_kill_filter(_type="pubsub")
    assert killed == 2  # the listeners of A and B
    # Until they have subscribed again, probes are lost; then they pass.
    bus_ready(servers, clients)
    room_clients = split_clients(servers, standard_plan("k"))
    clients.extend(room_clients)
    exchange(room_clients, 5)
    for server in servers:
        log = server.log_since_mark()
        assert log.count("connection to Redis failed") == 1, log[-3000:]
        assert "subscribed again" in log, log[-3000:]
    assert_clean_logs(servers)


def test_bus_recovers_after_redis_restarts(servers, clients, redis_server):
    bus_ready(servers, clients)
    for server in servers:
        server.mark_log()
    redis_server.stop()
    redis_server.start()
    bus_ready(servers, clients)
    room_clients = split_clients(servers, standard_plan("r"))
    clients.extend(room_clients)
    exchange(room_clients, 5)
    for server in servers:
        log = server.log_since_mark()
        assert "connection to Redis failed" in log and "subscribed again" in log, log[-3000:]
    assert_clean_logs(servers)


# -- RedisBus without gevent, and its refusals -------------------------------------

THREADS_SCRIPT = r'''
import socket, sys, threading, time
import pyws
from pyws import _core
from pyws.redis_bus import RedisBus
from pyws.websocket import WebSocket
from tests.wire import parse_frames

url = sys.argv[1]

def member(hub, room):
    a, b = socket.socketpair()
    b.settimeout(0.2)
    ws = WebSocket(a, _core.Protocol(server=True))
    hub.join(ws, room)
    return ws, b

def read(sock, want, timeout):
    """Text payloads from sock until `want` of them or timeout."""
    got, buf, deadline = [], b"", time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        assert chunk, "EOF"
        frames, buf = parse_frames(buf + chunk)
        got += [f.payload.decode() for f in frames]
    return got

hubs = [pyws.Hub(bus=RedisBus(url, channel="threads-test")) for _ in range(2)]
probes = [member(hubs[0], "p0")[1], member(hubs[1], "p1")[1]]
for src, dst in ((0, 1), (1, 0)):
    deadline, n = time.monotonic() + 15, 0
    while not read(probes[dst], 1, 0.2):
        assert time.monotonic() < deadline, f"no probe from hub {src} reached hub {dst}"
        hubs[src].broadcast(f"p{dst}", f"probe {n}")
        n += 1
    while read(probes[dst], 1, 0):
        pass
peers = [member(hubs[0], "r")[1], member(hubs[0], "r")[1], member(hubs[1], "r")[1]]
assert hubs[0].broadcast("r", "one") == 2
assert hubs[0].broadcast("r", "two") == 2
assert hubs[1].broadcast("r", "three") == 1
for peer in peers:
    got = read(peer, 3, 10)
    assert sorted(got) == ["one", "three", "two"], got
    assert got.index("one") < got.index("two"), got
for i, hub in enumerate(hubs):
    hub.broadcast("r", f"end{i}")
for peer in peers:
    got = read(peer, 2, 10)
    assert sorted(got) == ["end0", "end1"], got  # and no duplicate before them
for hub in hubs:
    hub.close()
for t in threading.enumerate():
    if t.name.startswith("pyws-redis"):
        t.join(5)
        assert not t.is_alive(), t.name
assert "gevent" not in sys.modules
print("ok")
'''


def run_script(code: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], cwd=str(ROOT),
                          env=subprocess_env(), capture_output=True, text=True,
                          timeout=timeout)


def test_bus_in_plain_threads(redis_server):
    proc = run_script(THREADS_SCRIPT, redis_server.url)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "ERROR" not in proc.stderr, proc.stderr


def test_gevent_without_monkey_patching_is_refused():
    proc = run_script("import gevent\nfrom pyws.redis_bus import RedisBus\nRedisBus()\n")
    assert proc.returncode == 1
    assert "RuntimeError: RedisBus: gevent is imported but the socket module is not " \
           "monkey-patched" in proc.stderr
    assert "gevent.monkey.patch_all()" in proc.stderr


def test_import_pyws_does_not_import_redis():
    proc = run_script("import sys, pyws, pyws.redis_bus\n"
                      "print('redis' in sys.modules, 'gevent' in sys.modules)\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]


def test_envelope_round_trip_and_rejects():
    from pyws import _core
    from pyws.redis_bus import decode_envelope, encode_envelope

    for origin, room, opcode, payload in [
            ("0123abcd" * 4, "room", _core.TEXT, "h\u00e9llo".encode()),
            ("o", "", _core.BINARY, b""),
            ("o", "r\u00e9\U0001f600 \ud800 lone surrogate", _core.BINARY, bytes(range(256))),
            ("o" * 255, "x" * 70000, _core.BINARY, b"\x00" * 100000)]:
        data = encode_envelope(origin, room, opcode, payload)
        assert decode_envelope(data) == (origin, room, opcode, payload)
    # 7 bytes of header, then the names and the payload as they are.
    assert encode_envelope("ab", "r", _core.TEXT, b"hi") == b"\x01\x01\x02\x00\x00\x00\x01abrhi"
    with pytest.raises(ValueError):
        encode_envelope("o" * 256, "r", _core.TEXT, b"")
    with pytest.raises(ValueError):
        encode_envelope("o", "r", 9, b"")  # a ping is no broadcast
    good = encode_envelope("o", "room", _core.TEXT, b"text")
    for bad in [b"", good[:6], b"\x02" + good[1:], good[:1] + b"\x09" + good[2:],
                good[:9],  # origin and room cut short
                encode_envelope("o", "r", _core.BINARY, b"\xff")[:1] + b"\x01"
                + encode_envelope("o", "r", _core.BINARY, b"\xff")[2:]]:  # bad UTF-8 text
        with pytest.raises(ValueError):
            decode_envelope(bad)
