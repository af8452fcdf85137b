"""Echo server: the classic Flask + gevent-websocket program, on pyws.

The view below is the one every Flask + gevent-websocket tutorial shows; only
the import changed (it was ``from geventwebsocket.handler import
WebSocketHandler``).  Run it and open http://127.0.0.1:9527/ in a browser:

    python3 examples/echo.py [--host 127.0.0.1] [--port 9527]
                             [--max-message-size 1048576]
"""
from __future__ import annotations

import argparse
import base64
import errno
import hashlib
import os
import re
import signal
from typing import Union

import gevent
from flask import Flask, Response, request
from gevent.pool import Pool
from gevent.pywsgi import WSGIServer  # noqa: F401  (the plain form: see main())

from pyws import (
    WebSocketHandler,  # noqa: F401  was: from geventwebsocket.handler import WebSocketHandler
    WebSocketServer,
)

HERE = os.path.dirname(os.path.abspath(__file__))

app = Flask(__name__)

# No templates/ folder: the page is the HTML file next to this script.
with open(os.path.join(HERE, "echo.html"), encoding="utf-8") as _f:
    PAGE = _f.read()


def _hashes(tag: str) -> str:
    """CSP sources for the page's inline <tag> blocks: exactly those run."""
    return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
                    for body in re.findall(rf"<{tag}>(.*?)</{tag}>", PAGE, re.S))


# The chat's policy: this page's own code and its WebSocket, nothing else.
CSP = (f"default-src 'self'; script-src 'self' {_hashes('script')}; "
       f"style-src 'self' {_hashes('style')}; connect-src 'self'; img-src 'self' data:; "
       "object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


@app.after_request
def security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@app.route("/")
def index() -> Response:
    return Response(PAGE, mimetype="text/html")


@app.route("/ws")
def ws() -> Union[Response, str]:
    user_socket = request.environ.get("wsgi.websocket")
    if user_socket is None:  # a plain HTTP request, not an upgrade
        return Response("expected a WebSocket request\n", 400, mimetype="text/plain")
    while True:
        msg = user_socket.receive()  # str, bytes, or None once closed
        if msg is None:
            break
        user_socket.send(msg)  # text stays text, bytes stay binary
    return ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="pyws echo demo (Flask + gevent)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=9527,
                        help="port to listen on (default: %(default)s)")
    parser.add_argument("--max-message-size", type=int, default=1 << 20,
                        metavar="BYTES",
                        help="largest message accepted, 0 for no limit; a "
                             "larger one closes the connection with 1009 "
                             "(default: %(default)s)")
    args = parser.parse_args(argv)
    if args.max_message_size < 0:
        parser.error("--max-message-size must be >= 0")

    # WebSocketServer is gevent's WSGIServer with pyws's handler preset and
    # the WebSocket options.  The plain gevent-websocket form works as well
    # (with the default options):
    #     server = WSGIServer((args.host, args.port), app,
    #                         handler_class=WebSocketHandler)
    # A pool (unbounded) lets stop() end open connections: they are closed
    # with 1001 "going away" instead of being cut when the process exits.
    server = WebSocketServer((args.host, args.port), app,
                             max_message_size=args.max_message_size,
                             spawn=Pool())

    # Ctrl-C and SIGTERM stop the server; serve_forever() then returns.
    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, server.stop)

    try:
        server.start()  # binds and listens
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        # One line, not a traceback: the usual cause is a second copy running.
        raise SystemExit(f"port {args.port} on {args.host} is in use: stop the other "
                         "server or choose another port with --port") from None
    host, port = server.address[0], server.address[1]
    if ":" in host:  # IPv6
        host = f"[{host}]"
    print(f"serving on http://{host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
