"""``WebSocket.receive()`` and ``send()``: their arguments and errors, and on a
gevent socket, where receiving is one C call (``Protocol.read_message``), the
waits (several readers, a close from another greenlet, a timeout).  The gevent cases run
in a subprocess (this file as a script), so that the test process never
imports gevent.  Whether both paths give the same messages and bytes on the
same input is tests/unit/test_direct_io.py's subject.
"""
from __future__ import annotations

import gc
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import weakref
from typing import Any, Dict, Tuple

import pytest

from pyws import _core
from pyws import websocket as websocket_module
from pyws.exceptions import ConnectionClosed, WebSocketError
from pyws.options import DEFAULTS
from pyws.websocket import WebSocket
from tests.script_json import script_json
from tests.wire import OP_CLOSE, OP_PING, OP_TEXT, build_frame, close_payload, parse_frames

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pair() -> Tuple[WebSocket, socket.socket]:
    ours, peer = socket.socketpair()
    return WebSocket(ours, _core.Protocol(server=True), close_timeout=0.5), peer


def read_frames(peer: socket.socket, n: int) -> list:
    data = b""
    while True:
        frames, _ = parse_frames(data)
        if len(frames) >= n:
            return frames
        chunk = peer.recv(65536)
        assert chunk, "peer closed early"
        data += chunk


def test_send_takes_message_and_binary_by_position_or_keyword() -> None:
    ws, peer = pair()
    try:
        ws.send("a")
        ws.send(b"b")
        ws.send("c", True)
        ws.send(message="d")
        ws.send(b"e", binary=False)
        ws.send(binary=True, message=b"f")
        frames = read_frames(peer, 6)
        assert [(f.opcode, f.payload) for f in frames] == [
            (1, b"a"), (2, b"b"), (2, b"c"), (1, b"d"), (1, b"e"), (2, b"f")]
    finally:
        ws.close()
        peer.close()


@pytest.mark.parametrize("call,message", [
    (lambda ws: ws.send(), "missing 1 required positional argument: 'message'"),
    (lambda ws: ws.send("a", None, 1), "takes from 2 to 3 positional arguments but 4"),
    (lambda ws: ws.send("a", text=True), "unexpected keyword argument 'text'"),
    (lambda ws: ws.send("a", message="b"), "multiple values for argument 'message'"),
    (lambda ws: ws.receive(1), "receive() takes 1 positional argument but 2"),
    (lambda ws: ws.receive(timeout=1), "unexpected keyword argument 'timeout'"),
    (lambda ws: ws.send(None), "cannot send NoneType"),
    (lambda ws: ws.send(3), "cannot send int: a message is str (sent as text) or "
                            "bytes-like (sent as binary)"),
    (lambda ws: ws.send({"a": 1}), "cannot send dict: a message is str (sent as text) or "
                                   "bytes-like (sent as binary); to send it as JSON: "
                                   "ws.send(json.dumps(message))"),
    (lambda ws: ws.send([1]), "to send it as JSON: ws.send(json.dumps(message))"),
])
def test_bad_arguments_raise_type_error_naming_the_problem(call: Any, message: str) -> None:
    ws, peer = pair()
    try:
        with pytest.raises(TypeError, match=message.replace("(", r"\(").replace(")", r"\)")):
            call(ws)
    finally:
        ws.close()
        peer.close()


def test_invalid_text_from_bytes_is_a_value_error_and_nothing_is_sent() -> None:
    ws, peer = pair()
    try:
        with pytest.raises(ValueError, match="UTF-8"):
            ws.send(b"\xff", binary=False)
        ws.send("ok")
        assert [f.payload for f in read_frames(peer, 1)] == [b"ok"]
    finally:
        ws.close()
        peer.close()


def test_send_after_close_raises_connection_closed_with_the_code() -> None:
    ws, peer = pair()
    ws.close(1001, "going away")
    peer.close()
    with pytest.raises(ConnectionClosed) as info:
        ws.send("late")
    assert info.value.code in (1001, 1006)
    assert ws.receive() is None


def test_receive_returns_queued_messages_then_none_once_then_raises() -> None:
    """gevent-websocket's contract: every message that arrived, then None
    once, then ConnectionClosed (a WebSocketError), so that a loop that
    never checks for None ends."""
    ws, peer = pair()
    mask = b"\x01\x02\x03\x04"
    peer.sendall(b"".join(build_frame(OP_TEXT, f"m{i}", mask=mask) for i in range(5)))
    peer.shutdown(socket.SHUT_WR)
    assert [ws.receive() for _ in range(5)] == [f"m{i}" for i in range(5)]
    assert ws.receive() is None
    with pytest.raises(WebSocketError) as caught:
        ws.receive()
    assert isinstance(caught.value, ConnectionClosed) and caught.value.code == 1006
    with pytest.raises(ConnectionClosed):
        ws.receive()
    peer.close()


def test_a_websocket_in_a_reference_cycle_is_collected() -> None:
    """An application that keeps its WebSocket in a structure the socket
    reaches back to (a close callback, a room) must not leak it."""
    class Holder:
        ws: Any = None

        def on_close(self, _ws: Any) -> None:
            pass

    ws, peer = pair()
    holder = Holder()
    holder.ws = ws
    ws.add_close_callback(holder.on_close)  # ws -> callback -> holder -> ws
    ref = weakref.ref(ws)
    del ws, holder
    gc.collect()
    assert ref() is None
    peer.close()


# -- under gevent, in a subprocess ------------------------------------------

def gevent_checks() -> Dict[str, Any]:
    """Run by the subprocess: each check's observed result."""
    import select

    import gevent
    import gevent.event
    import gevent.socket

    from pyws.websocket import WebSocket as GWebSocket

    mask = b"\x01\x02\x03\x04"
    results: Dict[str, Any] = {}

    def gpair() -> Tuple[Any, Any]:
        ours, peer = gevent.socket.socketpair()
        return GWebSocket(ours, _core.Protocol(server=True), close_timeout=0.5), peer

    # Two greenlets read one connection: every message goes to exactly one
    # of them, none is lost, each sees its own in order.
    ws, peer = gpair()
    got: Dict[str, list] = {"a": [], "b": []}

    def reader(name: str) -> None:
        while True:
            message = ws.receive()
            if message is None:
                return
            got[name].append(message)
            gevent.sleep(0)

    tasks = [gevent.spawn(reader, "a"), gevent.spawn(reader, "b")]
    for i in range(200):
        peer.sendall(build_frame(OP_TEXT, str(i), mask=mask))
        if i % 7 == 0:
            gevent.sleep(0.001)
    peer.shutdown(socket.SHUT_WR)
    gevent.joinall(tasks, timeout=10)
    merged = sorted(int(m) for m in got["a"] + got["b"])
    results["two_readers"] = {
        "all_once": merged == list(range(200)),
        "each_in_order": all(lst == sorted(lst, key=int) for lst in got.values()),
        "both_done": all(t.dead for t in tasks)}
    peer.close()

    # A close from another greenlet ends a wait in receive() with None.
    ws, peer = gpair()
    waiting = gevent.spawn(ws.receive)
    gevent.sleep(0.05)
    ws.close()
    waiting.join(timeout=5)
    results["closed_while_waiting"] = {"dead": waiting.dead, "value": waiting.value,
                                       "exception": repr(waiting.exception)}
    peer.close()

    # A socket timeout: receive() waits through gevent's own wait, and the
    # timeout ends the connection (None), as on the Python path.
    ws, peer = gpair()
    ws.socket.settimeout(0.05)
    results["timeout"] = repr(ws.receive())
    peer.close()

    # Messages sent while the reader waits arrive; its send() answers them.
    ws, peer = gpair()

    def echo() -> None:
        while True:
            message = ws.receive()
            if message is None:
                return
            ws.send(message)

    task = gevent.spawn(echo)
    for i in range(50):
        peer.sendall(build_frame(OP_TEXT, f"e{i}", mask=mask))
    frames, data = [], b""
    while len(frames) < 50:
        data += peer.recv(65536)
        frames, _ = parse_frames(data)
    peer.close()
    task.join(timeout=5)
    results["echo"] = [f.payload.decode() for f in frames] == [f"e{i}" for i in range(50)]

    # A burst (20 requests in one write) answered one by one: the replies
    # leave together when the burst ends, in order, not in 20 writes.
    ws, peer = gpair()
    seen_by_peer = []
    peer.sendall(b"".join(build_frame(OP_TEXT, f"b{i}", mask=mask) for i in range(20)))
    for _ in range(20):
        ws.send(ws.receive())
        seen_by_peer.append(bool(select.select([peer], [], [], 0)[0]))
    frames, data = [], b""
    while len(frames) < 20:
        data += peer.recv(65536)
        frames, _ = parse_frames(data)
    results["burst"] = {"readable_after_each_send": seen_by_peer,
                        "replies": [f.payload.decode() for f in frames]}
    peer.close()

    # A reply in a burst, then the application waits on something else
    # instead of calling receive(): the reply still goes out.
    ws, peer = gpair()
    peer.sendall(build_frame(OP_TEXT, "q1", mask=mask) + build_frame(OP_TEXT, "q2", mask=mask))
    answered = gevent.event.Event()

    def slow_app() -> None:
        ws.send("re:" + ws.receive())
        answered.wait(5)  # set by the peer once the reply came
        ws.send("re:" + ws.receive())

    task = gevent.spawn(slow_app)
    with gevent.Timeout(5, False):
        first = peer.recv(65536)
    answered.set()
    data = first
    with gevent.Timeout(5, False):
        while len(parse_frames(data)[0]) < 2:
            data += peer.recv(65536)
    task.join(timeout=5)
    results["reply_then_wait"] = {
        "first": [f.payload.decode() for f in parse_frames(first)[0]],
        "all": [f.payload.decode() for f in parse_frames(data)[0]]}
    peer.close()

    # A broadcast right after a reply in a burst reaches the member after
    # that reply, never before it.
    import pyws
    hub = pyws.Hub()
    ws, peer = gpair()
    hub.join(ws, "room")
    peer.sendall(build_frame(OP_TEXT, "m1", mask=mask) + build_frame(OP_TEXT, "m2", mask=mask))
    ws.send("reply:" + ws.receive())
    hub.broadcast("room", "news")
    ws.send("reply:" + ws.receive())
    data = b""
    with gevent.Timeout(5, False):
        while len(parse_frames(data)[0]) < 3:
            data += peer.recv(65536)
    results["reply_then_broadcast"] = [f.payload.decode() for f in parse_frames(data)[0]]
    hub.close()
    peer.close()

    # Keepalive on 300 connections: one task runs every connection's timers
    # (pyws/_timers.py), so idle connections hold no greenlet each, and
    # every one of them still gets its pings.
    import greenlet

    def live_greenlets() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects()
                   if isinstance(o, greenlet.greenlet) and not o.dead)

    before = live_greenlets()
    pairs = []
    for _ in range(300):
        ours, peer = gevent.socket.socketpair()
        pairs.append((GWebSocket(ours, _core.Protocol(server=True), close_timeout=0.5,
                                 ping_interval=0.2, ping_timeout=30.0), peer))
    gevent.sleep(0)
    held = live_greenlets() - before
    pinged = 0
    with gevent.Timeout(10, False):
        for _ws, peer in pairs:
            data = b""
            while not parse_frames(data)[0]:
                data += peer.recv(65536)
            pinged += parse_frames(data)[0][0].opcode == OP_PING
    results["keepalive"] = {"greenlets_for_300": held, "pinged": pinged}
    for ws, peer in pairs:
        peer.close()  # first: the close handshake then ends at once, with EOF
        ws.close()
    return results


@pytest.fixture(scope="module")
def gevent_results() -> Dict[str, Any]:
    pytest.importorskip("gevent")
    results: Dict[str, Any] = script_json(__file__, timeout=120)
    return results


def test_gevent_keepalive_of_many_connections_runs_in_one_task(
        gevent_results: Dict[str, Any]) -> None:
    """Every connection is pinged, and idle connections with keepalive hold
    no greenlet each (a parked task per connection nearly doubled the
    memory of an idle connection)."""
    keepalive = gevent_results["keepalive"]
    assert keepalive["pinged"] == 300
    assert keepalive["greenlets_for_300"] <= 2


def test_gevent_two_readers_share_the_messages_without_loss(gevent_results: Dict[str, Any]) -> None:
    assert gevent_results["two_readers"] == {"all_once": True, "each_in_order": True,
                                             "both_done": True}


def test_gevent_close_from_another_greenlet_ends_the_wait_with_none(
        gevent_results: Dict[str, Any]) -> None:
    assert gevent_results["closed_while_waiting"] == {"dead": True, "value": None,
                                                      "exception": "None"}


def test_gevent_socket_timeout_ends_the_connection(gevent_results: Dict[str, Any]) -> None:
    assert gevent_results["timeout"] == "None"


def test_gevent_echo_loop_answers_every_message(gevent_results: Dict[str, Any]) -> None:
    assert gevent_results["echo"] is True


def test_gevent_replies_to_a_burst_leave_together_in_order(
        gevent_results: Dict[str, Any]) -> None:
    """While the next request is already in, a reply waits in the engine;
    the last reply of the burst writes them all (one write, not twenty)."""
    burst = gevent_results["burst"]
    assert burst["replies"] == [f"b{i}" for i in range(20)]
    assert burst["readable_after_each_send"] == [False] * 19 + [True]


def test_gevent_a_deferred_reply_goes_out_while_the_application_waits(
        gevent_results: Dict[str, Any]) -> None:
    """The application answers the first of two queued requests, then waits
    for something else without calling receive(): the reply is not held."""
    assert gevent_results["reply_then_wait"] == {"first": ["re:q1"],
                                                 "all": ["re:q1", "re:q2"]}


def test_gevent_a_broadcast_never_overtakes_a_deferred_reply(
        gevent_results: Dict[str, Any]) -> None:
    """The broadcast comes after the reply sent before it (a later
    ws.send() may overtake it: broadcasts go out when the greenlet yields,
    as pyws.Hub documents)."""
    got = gevent_results["reply_then_broadcast"]
    assert got[0] == "reply:m1"
    assert sorted(got) == ["news", "reply:m1", "reply:m2"]


def test_server_bound_to_an_ip_starts_no_resolver_thread() -> None:
    """WebSocketServer fills SERVER_NAME without a DNS lookup for an IP
    address, so that starting it leaves the process single-threaded."""
    pytest.importorskip("gevent")
    script = (
        "import os, pyws, gevent\n"
        "s = pyws.WebSocketServer(('127.0.0.1', 0), lambda e, r: [], log=None)\n"
        "s.start(); gevent.sleep(0.05)\n"
        "print(len(os.listdir('/proc/self/task')), s.environ['SERVER_NAME'])\n"
        "s.stop()\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "127.0.0.1"]


if __name__ == "__main__":
    print(json.dumps(gevent_checks()))


def test_close_returns_as_soon_as_the_peer_answers() -> None:
    """close() waits for the peer's close frame only as long as the peer
    takes: with a 30 s bound, an answering peer ends it at once, and the
    closing handshake is complete."""
    ours, peer = socket.socketpair()
    ws = WebSocket(ours, _core.Protocol(server=True), close_timeout=30.0)

    def answer() -> None:
        read_frames(peer, 1)  # our close frame
        peer.sendall(build_frame(OP_CLOSE, close_payload(1000, "ok"), mask=b"abcd"))

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    closer = threading.Thread(target=ws.close, daemon=True)
    closer.start()
    closer.join(10.0)
    assert not closer.is_alive(), "close() still waiting although the peer answered"
    assert ws.closed and ws.close_code == 1000
    thread.join(10.0)
    peer.close()


def test_close_gives_up_on_a_silent_peer_after_the_short_default() -> None:
    """gevent-websocket's close() does not wait at all; pyws's waits for
    the peer's answer, at most close_timeout, 1 s by default (it was 5 s:
    a program moved over stalled on every dead peer)."""
    ours, peer = socket.socketpair()
    ws = WebSocket(ours, _core.Protocol(server=True))
    assert ws.close_timeout == DEFAULTS.close_timeout == 1.0
    started = time.monotonic()
    ws.close(1001, "bye")
    waited = time.monotonic() - started
    assert DEFAULTS.close_timeout * 0.9 <= waited < 4 * DEFAULTS.close_timeout
    frames = read_frames(peer, 1)
    assert frames[0].opcode == OP_CLOSE and frames[0].payload == close_payload(1001, "bye")
    assert peer.recv(1) == b""  # and then the connection is closed
    peer.close()


def test_the_first_message_over_the_limit_is_a_warning_naming_the_limit(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A program moved from gevent-websocket or flask-sock (no limit) meets
    max_message_size in its log: the first 1009 of a process at WARNING with
    the limit and how to change it, later ones at INFO; receive() ends the
    connection as a close does (None, close_code 1009)."""
    monkeypatch.setattr(websocket_module, "_limit_warned", False)
    caplog.set_level(logging.INFO, logger="pyws.websocket")
    for _ in range(2):
        ours, peer = socket.socketpair()
        ws = WebSocket(ours, _core.Protocol(server=True, max_message_size=10),
                       close_timeout=0.5)
        peer.sendall(build_frame(OP_TEXT, "x" * 100, mask=b"abcd"))
        assert ws.receive() is None
        assert ws.close_code == 1009
        peer.close()
    records = [r for r in caplog.records if "max_message_size" in r.getMessage()]
    assert [r.levelno for r in records] == [logging.WARNING, logging.INFO]
    assert "(10 bytes)" in records[0].getMessage()
    assert "0: no limit" in records[0].getMessage()


def test_a_refused_client_handshake_tells_what_the_server_answered() -> None:
    """HandshakeError carries the server's status line and the start of its
    body, where a refusing server says why (it used to say "(HTTP 403)")."""
    import pyws

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    reason = b"origin 'http://elsewhere.example' is not allowed"

    def refuse() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(reason), reason))
        conn.close()

    thread = threading.Thread(target=refuse, daemon=True)
    thread.start()
    with pytest.raises(pyws.HandshakeError) as caught:
        pyws.connect(f"ws://127.0.0.1:{server.getsockname()[1]}/ws", timeout=10)
    thread.join(10)
    server.close()
    error = caught.value
    assert (error.status, error.status_line, error.body) == (403, "HTTP/1.1 403 Forbidden", reason)
    assert "'HTTP/1.1 403 Forbidden'" in str(error) and reason.decode() in str(error)


def test_messages_that_arrive_while_closing_are_kept_for_receive() -> None:
    """Data the peer sent before it saw our close frame is valid: close()
    keeps it, and receive() returns it before the end (None, then raises)."""
    ours, peer = socket.socketpair()
    ws = WebSocket(ours, _core.Protocol(server=True), close_timeout=10.0)

    def answer() -> None:
        read_frames(peer, 1)  # our close frame
        peer.sendall(build_frame(OP_TEXT, "late 1", mask=b"abcd")
                     + build_frame(OP_TEXT, "late 2", mask=b"abcd")
                     + build_frame(OP_CLOSE, close_payload(1000), mask=b"abcd"))

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    ws.close()
    thread.join(10.0)
    assert [ws.receive(), ws.receive(), ws.receive()] == ["late 1", "late 2", None]
    with pytest.raises(ConnectionClosed):
        ws.receive()
    peer.close()
