"""A Flask program written for flask-sock, run against either peer.

The only line that differs between the peers is the import of ``Sock`` and
``ConnectionClosed`` (``FS_PEER``: ``flask-sock`` or ``pyws``).  Options come
from the environment, so that gunicorn, which imports ``fs_app:app``, gets
them too: ``FS_OPTIONS``, JSON for ``app.config['SOCK_SERVER_OPTIONS']``.

The program reports what its views did on stdout, one ``EVENT ...`` line
each (the test waits for them in the server's log).

Run as a script (gunicorn loads it as a module instead)::

    fs_app.py werkzeug            # app.run() on port 0, threaded
    fs_app.py gevent-patched      # monkey.patch_all(); WSGIServer(addr, app)
    fs_app.py gevent-unpatched    # WSGIServer(addr, app), nothing patched
    fs_app.py pyws-server         # pyws.WebSocketServer (pyws only: its handler
                                  # performs the Sock routes' handshakes)

The port is printed as ``PORT <n>``.
"""
from __future__ import annotations

import sys

if __name__ == "__main__" and sys.argv[1:2] in (["gevent-patched"], ["pyws-server"]):
    from gevent import monkey

    monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402
from typing import Any  # noqa: E402

from flask import Flask, request  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

PEER = os.environ.get("FS_PEER", "pyws")
if PEER == "pyws":
    from pyws.flask import ConnectionClosed, Sock  # noqa: E402
elif PEER == "flask-sock":
    from flask_sock import ConnectionClosed, Sock  # type: ignore[no-redef]  # noqa: E402
else:
    raise SystemExit(f"FS_PEER must be pyws or flask-sock, not {PEER!r}")

app = Flask(__name__)
if os.environ.get("FS_OPTIONS"):
    app.config["SOCK_SERVER_OPTIONS"] = json.loads(os.environ["FS_OPTIONS"])
sock = Sock(app)


def event(text: str) -> None:
    print(f"EVENT {text}", flush=True)


@app.route("/")
def index() -> str:
    return "index"


@app.teardown_request
def teardown(exc: Any) -> None:
    """After the route's wrapper returned: had it let an exception out,
    Flask would have logged it (a traceback) before this line."""
    if request.path != "/":
        event(f"teardown {request.path} exc={type(exc).__name__ if exc else None}")


@sock.route("/echo")
def echo(ws: Any) -> None:
    while True:
        data = ws.receive()
        ws.send(data)


@sock.route("/clock/<tag>")
def clock(ws: Any, tag: str) -> None:
    """flask-sock's clock example: never checks receive() for None."""
    event(f"clock-started {tag}")
    try:
        while True:
            data = ws.receive()
            if data == "stop":
                break
    finally:
        event(f"clock-ended {tag}")


@sock.route("/timeout")
def timeout(ws: Any) -> None:
    idle = ws.receive(timeout=0.2)
    zero = ws.receive(timeout=0)
    ws.send(json.dumps({"idle": idle, "zero": zero, "connected": ws.connected,
                        "path": ws.environ["PATH_INFO"],
                        "query": ws.environ.get("QUERY_STRING", "")}))
    message = ws.receive(timeout=10)
    ws.send(f"got {message}")
    ws.close(reason=4001, message="bye")
    event(f"timeout-closed connected={ws.connected}")


@sock.route("/client-close/<tag>")
def client_close(ws: Any, tag: str) -> None:
    ws.send("ready")
    received = []
    try:
        while True:
            received.append(ws.receive())
    except ConnectionClosed as exc:
        event(f"client-close {tag} reason={exc.reason} message={exc.message} "
              f"connected={ws.connected} received={','.join(received)}")
    for name, call in (("send", lambda: ws.send("late")),
                       ("receive", lambda: ws.receive()),
                       ("receive0", lambda: ws.receive(timeout=0)),
                       ("close", lambda: ws.close())):
        try:
            call()
        except ConnectionClosed as exc:
            event(f"after-close {tag} {name} raised reason={exc.reason}")
        else:
            event(f"after-close {tag} {name} returned")
    # Not caught: the route wrapper must end quietly on it.
    ws.receive()


@sock.route("/subprotocol")
def subprotocol(ws: Any) -> None:
    ws.send(str(ws.subprotocol))
    ws.receive()


@sock.route("/send-object")
def send_object(ws: Any) -> None:
    """simple-websocket sends str(data); pyws refuses (deliberately)."""
    try:
        ws.send(42)
    except TypeError as exc:
        ws.send(f"TypeError: {exc}")
    ws.receive()


@sock.route("/raise")
def raise_after_message(ws: Any) -> None:
    ws.receive()
    raise RuntimeError("the view failed on purpose")


def _serve(kind: str) -> None:
    if kind == "werkzeug":
        app.run("127.0.0.1", 0, threaded=True)  # Werkzeug prints the port
        return
    if kind not in ("gevent-patched", "gevent-unpatched", "pyws-server"):
        raise SystemExit(f"unknown server kind {kind!r}")
    if kind == "pyws-server":
        from pyws import WebSocketServer as WSGIServer
    else:
        from gevent.pywsgi import WSGIServer  # type: ignore[assignment]

    server = WSGIServer(("127.0.0.1", 0), app)
    server.start()
    print(f"PORT {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    _serve(sys.argv[1])
