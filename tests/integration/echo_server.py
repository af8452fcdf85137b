"""Test server, run as a subprocess by tests/conftest.py.

Prints the port it listens on (one line on stdout), then serves until killed.

    --kind handler   gevent.pywsgi.WSGIServer(..., handler_class=pyws.WebSocketHandler)
    --kind server    pyws.WebSocketServer(..., max_message_size=..., subprotocols=...)
    --app wsgi       a plain WSGI app (routes below)
    --app flask      a Flask app: '/', '/ws' (plain route using
                     request.environ['wsgi.websocket']), '/ws-flag'
                     (route declared websocket=True)

WSGI routes: '/' HTML page; '/ws' echo; '/info' first sends a JSON object
describing the server-side WebSocket (compression and TCP_NODELAY
included), then echoes; '/close' echoes the first message twice then
closes with 4000 "bye"; '/concurrent?greenlets=N&count=M'
sends N*M messages from N greenlets at once, then closes with 1000.  A
request to a WebSocket route without ``wsgi.websocket`` gets
400 "no websocket in environ".
"""
from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
from urllib.parse import parse_qs  # noqa: E402

import gevent  # noqa: E402
import gevent.pywsgi  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(HERE))  # tests/, for concurrent_messages

from concurrent_messages import message as concurrent_message  # noqa: E402

import pyws  # noqa: E402
from tests.server_port import start_and_announce  # noqa: E402

PAGE = b"<!doctype html><html><body><h1>pyws test server</h1></body></html>"


def echo(ws) -> None:
    while True:
        msg = ws.receive()
        if msg is None:
            break
        ws.send(msg)


def wsgi_app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    ws = environ.get("wsgi.websocket")
    if path == "/" and ws is None:
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                  ("Content-Length", str(len(PAGE)))])
        return [PAGE]
    if path not in ("/ws", "/info", "/close", "/concurrent"):
        body = b"not found"
        start_response("404 Not Found", [("Content-Type", "text/plain"),
                                         ("Content-Length", str(len(body)))])
        return [body]
    if ws is None:
        body = b"no websocket in environ"
        start_response("400 Bad Request", [("Content-Type", "text/plain"),
                                           ("Content-Length", str(len(body)))])
        return [body]
    if path == "/ws":
        echo(ws)
    elif path == "/info":
        ws.send(json.dumps({
            "path": ws.path,
            "origin": ws.origin,
            "protocol": ws.subprotocol,
            "query": environ.get("QUERY_STRING", ""),
            "closed": ws.closed,
            "compressed": ws.compressed,
            "tcp_nodelay": bool(ws.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)),
        }))
        echo(ws)
    elif path == "/close":
        msg = ws.receive()
        ws.send(msg)
        ws.send(msg)
        ws.close(4000, b"bye")
    elif path == "/concurrent":
        qs = parse_qs(environ.get("QUERY_STRING", ""))
        n = int(qs.get("greenlets", ["4"])[0])
        count = int(qs.get("count", ["50"])[0])

        def sender(i: int) -> None:
            for j in range(count):
                ws.send(concurrent_message(i, j))
                if j % 7 == 0:
                    gevent.sleep(0)

        gevent.joinall([gevent.spawn(sender, i) for i in range(n)], raise_error=True)
        ws.close(1000, b"done")
    return []


def flask_app():
    from flask import Flask, request

    app = Flask(__name__)

    @app.route("/")
    def index():
        return PAGE.decode()

    @app.route("/ws")
    def ws_plain():
        ws = request.environ["wsgi.websocket"]
        echo(ws)
        return ""

    @app.route("/ws-flag", websocket=True)
    def ws_flag():
        ws = request.environ["wsgi.websocket"]
        echo(ws)
        return ""

    return app


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--kind", choices=["handler", "server"], default="handler")
    p.add_argument("--app", choices=["wsgi", "flask"], default="wsgi")
    p.add_argument("--max-message-size", type=int, default=None)
    p.add_argument("--subprotocols", default=None, help="comma-separated")
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                   help="another WebSocketServer keyword (a number, None, True or False)")
    args = p.parse_args()

    app = wsgi_app if args.app == "wsgi" else flask_app()
    if args.kind == "handler":
        server = gevent.pywsgi.WSGIServer(("127.0.0.1", 0), app,
                                          handler_class=pyws.WebSocketHandler)
    else:
        kw = {}
        if args.max_message_size is not None:
            kw["max_message_size"] = args.max_message_size
        if args.subprotocols:
            kw["subprotocols"] = args.subprotocols.split(",")
        for option in args.option:
            name, _, value = option.partition("=")
            kw[name] = ({"None": None, "True": True, "False": False}[value]
                        if value in ("None", "True", "False") else
                        float(value) if "." in value else int(value))
        server = pyws.WebSocketServer(("127.0.0.1", 0), app, **kw)
    start_and_announce(server)
    server.serve_forever()


if __name__ == "__main__":
    main()
