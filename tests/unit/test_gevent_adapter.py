"""What pyws relies on in gevent, pinned (see pyws/_gevent.py).

pyws drives gevent sockets below their Python methods; each gevent internal
it uses is checked here by name, so that a gevent release that moves one
fails one test that says which.  The transport chosen for each kind of
socket is checked too, unpatched and under ``monkey.patch_all()`` (where
``socket.socket`` is gevent's class and must not be taken for the stdlib's).
Each mode runs in a subprocess (this file as a script): the test process
never imports gevent.
"""
from __future__ import annotations

import json
import sys
from typing import Any, Dict

import pytest

from tests.script_json import script_json


def check_internals() -> Dict[str, Any]:
    """Run by the subprocess: each internal, what it was found to be."""
    import _socket
    import socket

    import gevent
    import gevent.socket
    from greenlet import getcurrent

    from pyws import _core, _gevent

    found: Dict[str, Any] = {}
    a, b = gevent.socket.socketpair()
    found["plain class is gevent._socket3.socket"] = (
        type(a).__module__ + "." + type(a).__qualname__)
    found["_sock is a _socket.socket"] = isinstance(a._sock, _socket.socket)
    for name in ("_read_event", "_write_event"):
        watcher = getattr(a, name, None)
        found[f"{name} has start, stop, callback"] = all(
            hasattr(watcher, attr) for attr in ("start", "stop", "callback"))
    found["hub has switch and loop.run_callback"] = (
        callable(getattr(a.hub, "switch", None))
        and callable(getattr(getattr(a.hub, "loop", None), "run_callback", None)))
    found["greenlet has switch"] = callable(getattr(getcurrent(), "switch", None))
    # Every name the C binding calls (Protocol.read_message's wait), on the
    # objects it calls them on.
    targets = {"start": a._read_event, "stop": a._read_event, "switch": a.hub}
    found["every name the C binding calls exists"] = sorted(
        name for name in _core.CALLED_NAMES
        if not callable(getattr(targets.get(name), name, None)))

    # A close from another greenlet throws an OSError into a greenlet parked
    # on the watcher with its own switch (SocketWaiter.wait, read_message).
    waiter = _gevent.SocketWaiter(a)
    outcome: Dict[str, str] = {}

    def park() -> None:
        try:
            waiter.wait(False, None)
            outcome["wait"] = "returned"
        except OSError as exc:
            outcome["wait"] = "OSError"
            outcome["errno"] = str(exc.errno)

    task = gevent.spawn(park)
    gevent.sleep(0.01)
    a.close()
    task.join(timeout=5)
    found["close from another greenlet ends a wait with OSError"] = outcome.get("wait")
    found["closed: _sock.fileno() is -1"] = a._sock.fileno()
    found["closed: _read_event is None"] = a._read_event is None
    b.close()

    # The server internals WebSocketServer spawns connections with.
    import gevent.pool
    from gevent.server import StreamServer

    calls = []
    servers = {"no pool": StreamServer(("127.0.0.1", 0), lambda s, a: calls.append(a)),
               "pool": StreamServer(("127.0.0.1", 0), lambda s, a: calls.append(a),
                                    spawn=gevent.pool.Pool())}
    found["StreamServer._spawn"] = {
        name: ("Greenlet.spawn" if _gevent.server_spawn(srv) == gevent.Greenlet.spawn
               else "pool" if callable(_gevent.server_spawn(srv)) else "none")
        for name, srv in servers.items()}
    _gevent.server_handle(servers["no pool"], None, "the address")
    found["StreamServer._handle calls the handler"] = calls == ["the address"]

    # A wait with a timeout ends with socket.timeout.
    a, b = gevent.socket.socketpair()
    try:
        _gevent.SocketWaiter(a).wait(False, 0.01)
        found["wait with a timeout"] = "returned"
    except socket.timeout:
        found["wait with a timeout"] = "socket.timeout"
    a.close()
    b.close()
    return found


def check_transports() -> Dict[str, str]:
    """Run by the subprocess: the transport chosen for each kind of socket."""
    import socket
    import ssl

    import gevent.socket
    import gevent.ssl

    from pyws.transport import transport_for

    chosen: Dict[str, str] = {}

    def name(sock: Any) -> str:
        return type(transport_for(sock)).__name__

    a, b = socket.socketpair()  # the stdlib's, or gevent's once patched
    chosen["socket.socket"] = name(a)
    a.close()
    b.close()
    a, b = gevent.socket.socketpair()
    chosen["gevent.socket.socket"] = name(a)
    context = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    wrapped = context.wrap_socket(a, server_hostname="localhost",
                                  do_handshake_on_connect=False)
    chosen["gevent TLS socket"] = name(wrapped)
    wrapped.close()
    b.close()
    return chosen


@pytest.fixture(scope="module")
def unpatched() -> Dict[str, Any]:
    pytest.importorskip("gevent")
    result: Dict[str, Any] = script_json(__file__, 60)
    return result


@pytest.fixture(scope="module")
def patched() -> Dict[str, Any]:
    pytest.importorskip("gevent")
    result: Dict[str, Any] = script_json(__file__, 60, "--patched")
    return result


EXPECTED_INTERNALS = {
    "plain class is gevent._socket3.socket": "gevent._socket3.socket",
    "_sock is a _socket.socket": True,
    "_read_event has start, stop, callback": True,
    "_write_event has start, stop, callback": True,
    "hub has switch and loop.run_callback": True,
    "greenlet has switch": True,
    "every name the C binding calls exists": [],
    "close from another greenlet ends a wait with OSError": "OSError",
    "closed: _sock.fileno() is -1": -1,
    "closed: _read_event is None": True,
    "wait with a timeout": "socket.timeout",
    "StreamServer._spawn": {"no pool": "Greenlet.spawn", "pool": "pool"},
    "StreamServer._handle calls the handler": True,
}


@pytest.mark.parametrize("internal", sorted(EXPECTED_INTERNALS))
def test_gevent_internal_pyws_relies_on(unpatched: Dict[str, Any], internal: str) -> None:
    assert unpatched["internals"][internal] == EXPECTED_INTERNALS[internal], (
        f"gevent changed an internal pyws/_gevent.py relies on: {internal}")


def test_transports_unpatched(unpatched: Dict[str, Any]) -> None:
    assert unpatched["transports"] == {"socket.socket": "BlockingTransport",
                                       "gevent.socket.socket": "GeventTransport",
                                       "gevent TLS socket": "_GeventStreamTransport"}


def test_transports_under_monkey_patching(patched: Dict[str, Any]) -> None:
    """patch_all() makes socket.socket gevent's: it gets the gevent
    transport (the C fast path), not the one for stdlib sockets."""
    assert patched["transports"] == {"socket.socket": "GeventTransport",
                                     "gevent.socket.socket": "GeventTransport",
                                     "gevent TLS socket": "_GeventStreamTransport"}
    assert patched["internals"] == EXPECTED_INTERNALS


if __name__ == "__main__":
    if "--patched" in sys.argv:
        from gevent import monkey

        monkey.patch_all()
    json.dump({"internals": check_internals(), "transports": check_transports()}, sys.stdout)
