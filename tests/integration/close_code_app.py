"""Applications that end in every way, for tests/integration/test_close_codes.py.

Each family has the same five endings, under ``/<family>/<ending>``:

- ``raise-after-receive``: receives one message, then raises;
- ``raise-after-send``: sends "hello", then raises;
- ``raise-before``: raises before touching the socket;
- ``refuse``: answers 403 before touching the socket;
- ``return``: receives one message, then returns.

Families: ``sock`` (``pyws.flask.Sock`` routes; ``refuse`` calls
``abort(403)``), ``flask`` (plain Flask routes reading
``environ['wsgi.websocket']``; ``refuse`` returns a 403 response) and, under
the gevent servers only, ``wsgi`` (a bare WSGI application).

Run as a script, it serves them (port printed on stdout for the gevent
servers; told with --port for Werkzeug's):

    close_code_app.py --server gevent [--patch] [--tls CERT KEY]
    close_code_app.py --server werkzeug --port N [--tls CERT KEY]

gunicorn loads ``close_code_app:app`` (with ``--chdir tests/integration``).
"""
from __future__ import annotations

import sys

if __name__ == "__main__" and "--patch" in sys.argv:
    from gevent import monkey

    monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
from typing import Any, Callable, Dict, Iterable  # noqa: E402

from flask import Flask, abort, request  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from pyws import WebSocket  # noqa: E402
from pyws.flask import Sock  # noqa: E402
from tests.server_port import start_and_announce  # noqa: E402

ENDINGS = ["raise-after-receive", "raise-after-send", "raise-before", "refuse", "return"]
FAILURE = "the application failed on purpose"


def end(ws: WebSocket, ending: str) -> None:
    """The ending shared by every family, except ``refuse``."""
    if ending == "raise-after-receive":
        ws.receive()
        raise RuntimeError(FAILURE)
    if ending == "raise-after-send":
        ws.send("hello")
        raise RuntimeError(FAILURE)
    if ending == "raise-before":
        raise RuntimeError(FAILURE)
    if ending == "return":
        ws.receive()
        return
    raise AssertionError(ending)


def create_app() -> Flask:
    app = Flask(__name__)
    sock = Sock(app)

    @sock.route("/sock/<ending>")
    def sock_view(ws: WebSocket, ending: str) -> None:
        if ending == "refuse":
            abort(403)
        end(ws, ending)

    @app.route("/flask/<ending>")
    def flask_view(ending: str) -> Any:
        ws = request.environ.get("wsgi.websocket")
        if ws is None:
            return "WebSocket expected\n", 400
        if ending == "refuse":
            return "go away\n", 403
        end(ws, ending)
        return ""

    return app


app = create_app()

StartResponse = Callable[..., Any]


def wsgi_app(environ: Dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """A bare WSGI application (no Flask)."""
    ws = environ.get("wsgi.websocket")
    ending = environ.get("PATH_INFO", "").rsplit("/", 1)[-1]
    if ws is None:
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [b"WebSocket expected\n"]
    if ending == "refuse":
        start_response("403 Forbidden", [("Content-Type", "text/plain")])
        return [b"go away\n"]
    end(ws, ending)
    start_response("200 OK", [])
    return []


class Dispatch:
    """``/wsgi/...`` to the bare WSGI app, the rest to Flask; ``app``
    lets pyws find the Flask app behind it (for its ``Sock`` routes)."""

    def __init__(self, flask_app: Flask) -> None:
        self.app = flask_app

    def __call__(self, environ: Dict[str, Any],
                 start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith("/wsgi/"):
            return wsgi_app(environ, start_response)
        return self.app(environ, start_response)


dispatch = Dispatch(app)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True, choices=["gevent", "werkzeug"])
    parser.add_argument("--patch", action="store_true", help="gevent.monkey.patch_all()")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    args = parser.parse_args()

    if args.server == "werkzeug":
        app.run("127.0.0.1", args.port, threaded=True,
                ssl_context=tuple(args.tls) if args.tls else None)
        return

    from pyws import WebSocketServer

    kwargs: Dict[str, Any] = {}
    if args.tls:
        # gevent wraps with its own SSL context: a stdlib ssl.SSLContext
        # would make blocking reads that stall every greenlet when unpatched.
        kwargs.update(certfile=args.tls[0], keyfile=args.tls[1])
    server = WebSocketServer(("127.0.0.1", args.port), dispatch, **kwargs)
    start_and_announce(server)
    server.serve_forever()


if __name__ == "__main__":
    main()

