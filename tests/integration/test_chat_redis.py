"""examples/chat/app.py --redis: several processes, one chat.

A throw-away redis-server (the Debian package ``redis-server``) and chat
processes started with ``--redis``; the presence entries' time to live is
cut to PRESENCE_TTL seconds so that a crashed process's users time out
quickly."""
from __future__ import annotations

import sys
import threading
import time
from typing import List

import pytest
import websocket

from tests.chat_support import ChatProcess, RedisServer, start_chat
from tests.conftest import free_port
from tests.integration.test_chat_app import ChatClient

PRESENCE_TTL = 3.0  # refreshed every PRESENCE_TTL / 3 seconds


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


def _start(log_dir, redis_server):
    return start_chat(log_dir, "--redis", redis_server.url,
                      env={"PYWS_CHAT_PRESENCE_TTL": str(PRESENCE_TTL)})


@pytest.fixture(scope="module")
def pair(tmp_path_factory, redis_server):
    """Two chat processes sharing the Redis."""
    log_dir = tmp_path_factory.mktemp("chat-redis")
    first = _start(log_dir, redis_server)
    second = _start(log_dir, redis_server)
    yield first, second
    first.stop()
    second.stop()


@pytest.fixture
def connect():
    clients = []

    def make(server, path="/ws"):
        client = ChatClient(server, path)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_rooms_and_presence_span_processes(pair, connect):
    a_server, b_server = pair
    alice, bob, carol = connect(a_server), connect(b_server), connect(b_server)
    alice.join("span", "alice")
    joined = bob.join("span", "bob")
    assert joined["nicks"] == ["alice", "bob"]  # read from Redis
    alice.expect("join", nick="bob")             # through the bus
    alice.expect_nicks(["alice", "bob"])
    carol.join("span-other", "carol")

    alice.send(type="message", text="across processes")
    message = bob.expect("message")
    assert (message["room"], message["nick"], message["text"]) == \
        ("span", "alice", "across processes")
    bob.send(type="message", text="and back")
    assert alice.expect("message", nick="bob")["text"] == "and back"
    carol.send(type="message", text="carol only")
    assert carol.expect("message")["text"] == "carol only"  # nothing from "span" before it

    bob.close()
    alice.expect("leave", nick="bob", reason="left")
    alice.expect_nicks(["alice"])


def test_nickname_in_use_on_another_process_is_refused(pair, connect):
    a_server, b_server = pair
    first, second = connect(a_server), connect(b_server)
    first.join("dup", "sam")
    second.send(type="join", room="dup", nick="sam")
    assert second.error() == "nick_taken"
    second.join("dup", "watch")
    first.close()
    second.expect("leave", nick="sam")  # released as the connection ended
    assert "sam" in connect(b_server).join("dup", "sam")["nicks"]


def test_same_session_takes_over_across_processes(pair, connect):
    a_server, b_server = pair
    watcher, old = connect(a_server), connect(a_server)
    watcher.join("takeover-redis", "watcher")
    old.join("takeover-redis", "eve", session="tab-1")
    new = connect(b_server)
    assert new.join("takeover-redis", "eve", session="tab-1")["nicks"] == ["eve", "watcher"]
    # The old connection's process notices at its next refresh and closes it.
    while True:
        opcode, data = old.ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
    assert int.from_bytes(data[:2], "big") == 4001
    new.send(type="message", text="moved")
    assert watcher.expect("message", nick="eve")["text"] == "moved"
    assert [m for m in watcher.seen if m["type"] == "leave"] == []


def test_users_of_a_crashed_process_time_out(tmp_path, redis_server, pair, connect):
    a_server, _ = pair
    doomed = _start(tmp_path, redis_server)
    polite = _start(tmp_path, redis_server)
    try:
        alice = connect(a_server)
        alice.join("crash", "alice")
        connect(doomed).join("crash", "ghost")
        connect(polite).join("crash", "polite")
        alice.expect_nicks(["alice", "ghost", "polite"])

        # A clean stop (SIGTERM) releases at once.
        polite.stop()
        assert polite.proc.returncode == 0
        alice.expect("leave", nick="polite", reason="left")

        # A crash (SIGKILL) leaves an entry that expires within the TTL,
        # swept by the survivors' refresh.
        doomed.kill()
        leave = alice.expect("leave", nick="ghost")
        assert leave["reason"] == "timeout"
        alice.expect_nicks(["alice"])
    finally:
        doomed.stop()
        polite.stop()


def test_gunicorn_workers_share_rooms(tmp_path, redis_server):
    """The README's gunicorn command: workers are processes of their own,
    sharing rooms and presence through Redis; stopping closes with 1001."""
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        pytest.fail("gunicorn is not installed: pip install -e '.[test]'", pytrace=False)
    port = free_port()
    access_log = tmp_path / "access.log"
    server = ChatProcess(
        "gunicorn examples/chat",
        # At most 5 connections per worker: 8 clients need both workers.
        [sys.executable, "-m", "gunicorn", "--chdir", "examples/chat", "-w", "2",
         "--worker-connections", "5",
         "-k", "pyws.gunicorn.GeventWebSocketWorker", "-b", f"127.0.0.1:{port}",
         "--access-logfile", str(access_log), "--access-logformat", "%(p)s %(U)s %(s)s",
         "app:create_app()"],
        tmp_path / "gunicorn.log",
        {"PYWS_REDIS_URL": redis_server.url, "PYWS_CHAT_PRESENCE_TTL": str(PRESENCE_TTL)})
    server.start_on_port(port)
    clients = []
    try:
        for i in range(8):
            client = ChatClient(server)
            clients.append(client)
            joined = client.join("gunicorn", f"user{i}")
        assert joined["nicks"] == [f"user{i}" for i in range(8)]
        clients[0].send(type="message", text="to every worker")
        for client in clients:
            assert client.expect("message")["text"] == "to every worker"

        server.stop()  # SIGTERM to the master, which stops its workers
        for client in clients:
            while True:
                opcode, data = client.ws.recv_data(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    break
            assert int.from_bytes(data[:2], "big") == 1001
    finally:
        for client in clients:
            client.close()
        server.stop()
    # The workers are gone, their access log complete: both served some.
    workers = {line.split()[0] for line in access_log.read_text().splitlines()
               if line.endswith(" /ws 101")}
    assert len(workers) > 1, access_log.read_text()


def _wait_for_log(server, text: str, timeout: float = 15.0) -> None:
    """Until ``text`` is in the server's log since its mark (a deadline)."""
    deadline = time.monotonic() + timeout
    while text not in server.log_since_mark():
        assert time.monotonic() < deadline, \
            f"{server.name}: no {text!r} within {timeout}s:\n{server.log_since_mark()[-3000:]}"
        time.sleep(0.05)  # polling a log file: there is no event to wait on


def test_redis_outage_loses_no_message_and_logs_two_lines(tmp_path):
    """redis-server killed for a few seconds and restarted (empty): what was
    sent meanwhile arrives once it is back, past the held backlog each
    message gets an error, each process logs the outage in two lines, and
    nobody is announced as joining again."""
    redis = RedisServer(tmp_path)
    env = {"PYWS_CHAT_PRESENCE_TTL": str(PRESENCE_TTL), "PYWS_CHAT_BUS_QUEUE": "6"}
    a_server = start_chat(tmp_path, "--redis", redis.url, env=env)
    b_server = start_chat(tmp_path, "--redis", redis.url, env=env)
    clients: List[ChatClient] = []
    try:
        alice = ChatClient(a_server)
        bob = ChatClient(b_server)
        others = [ChatClient(server) for server in (a_server, b_server) * 5]
        clients += [alice, bob, *others]
        alice.join("outage", "alice")
        bob.join("outage", "bob")
        for i, other in enumerate(others):
            other.join("outage", f"user{i}")
        everyone = ["alice", "bob", *[f"user{i}" for i in range(10)]]
        alice.expect_nicks(everyone, limit=100)
        bob.expect_nicks(everyone, limit=100)
        alice.send(type="message", text="before")
        bob.expect("message", limit=100, text="before")
        alice.expect("message", limit=100, text="before")
        for server in (a_server, b_server):
            server.mark_log()
        seen_before = {id(c): len(c.seen) for c in (alice, bob)}

        redis.kill()
        for server in (a_server, b_server):
            _wait_for_log(server, "connection to Redis failed")
        # Messages while Redis is away: six are held, the 7th and 8th are
        # refused, each with its own error.
        for n in range(8):
            alice.send(type="message", text=f"during {n}")
        errors = [alice.expect("error") for _ in range(2)]
        assert [e["reason"] for e in errors] == ["not_sent", "not_sent"]
        # Long enough for every presence refresh to fail a few times.
        threading.Event().wait(2 * PRESENCE_TTL)
        redis.start()

        for n in range(6):
            assert bob.expect("message", limit=200, text=f"during {n}")["nick"] == "alice"
        alice.send(type="message", text="after")
        bob.expect("message", limit=50, text="after")
        for server in (a_server, b_server):
            _wait_for_log(server, "subscribed again")
        # A join after the outage works, and is the only join announced.
        carol = ChatClient(b_server)
        clients.append(carol)
        carol.join("outage", "carol")
        alice.expect("join", limit=50, nick="carol")
        for client in (alice, bob):
            texts = [m.get("text") for m in client.seen[seen_before[id(client)]:]
                     if m["type"] == "message"]
            assert texts == [f"during {n}" for n in range(6)] + ["after"], texts
            joins = [m["nick"] for m in client.seen[seen_before[id(client)]:]
                     if m["type"] == "join"]
            assert joins in ([], ["carol"]), joins
        for server in (a_server, b_server):
            log = server.log_since_mark()
            assert log.count("connection to Redis failed") == 1, log[-3000:]
            assert log.count("subscribed again") == 1, log[-3000:]
            assert "Traceback" not in log, log[-3000:]
    finally:
        for client in clients:
            client.close()
        a_server.stop()
        b_server.stop()
        redis.stop()
