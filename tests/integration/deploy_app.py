"""One Flask app served every way pyws supports (tests/integration/test_deploy_*).

Routes:

- ``/ws``: ``Sock`` route, echo.
- ``/room/<name>``: ``Sock`` route, sends ``name`` (URL variables as kwargs),
  then echoes.
- ``/article``: the gevent-websocket article style, a plain route reading
  ``request.environ['wsgi.websocket']``, echo.
- ``/guarded``: a second ``Sock`` with every handshake option: origins,
  subprotocols, extra headers, and an ``on_upgrade`` that refuses with 401
  when ``?token=bad`` (it reads ``flask.request``: it runs in the request's
  context); sends a JSON description of the socket, then echoes.
- ``/fail``: ``Sock`` route that raises after one message (closes 1011).
- ``/``: a page that echoes one message over ``/ws`` (for Chromium);
  ``/?path=/guarded`` tries that route instead (its origins refuse the page's).

Run as a script, it serves the app (port printed on stdout for the gevent
servers; told with --port for Werkzeug's):

    deploy_app.py --server gevent [--tls CERT KEY]
    deploy_app.py --server gevent-options      # WebSocketServer handshake options
    deploy_app.py --server werkzeug --port N [--tls CERT KEY]

gunicorn loads ``deploy_app:app`` (with ``--chdir tests/integration``).
"""
from __future__ import annotations

import sys

if __name__ == "__main__" and "gevent" in " ".join(sys.argv[1:]):
    from gevent import monkey

    monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
from typing import Dict, List, Optional, Tuple  # noqa: E402

from flask import Flask, Response, request  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from pyws import WebSocket  # noqa: E402
from pyws.flask import Sock  # noqa: E402
from tests.server_port import start_and_announce  # noqa: E402

ALLOWED_ORIGINS = ["https://app.example", "http://127.0.0.1:8000"]
SUBPROTOCOLS = ["chat.v2", "chat.v1"]
EXTRA_HEADER = ("X-Pyws-Deploy", "extra-header-value")
SERVER_HEADER = ("X-Pyws-Server", "server-level")
SERVER_ORIGINS = ["https://server.example"]

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>pyws deploy</title></head>
<body>
<p id="state">connecting</p>
<p id="echo"></p>
<script>
const path = new URLSearchParams(location.search).get("path") || "/ws";
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://")
                         + location.host + path);
ws.onopen = () => {
  document.getElementById("state").textContent = "open";
  ws.send("hello from chromium");
};
ws.onmessage = (event) => {
  document.getElementById("echo").textContent = event.data;
  ws.close(1000);
};
ws.onclose = (event) => {
  document.getElementById("state").textContent = "closed " + event.code;
};
</script>
</body></html>
"""


def echo(ws: WebSocket) -> None:
    for message in ws:
        ws.send(message)


def guarded_refusal(environ: Dict[str, object]) -> Optional[Tuple[int, List[Tuple[str, str]], str]]:
    if request.args.get("token") == "bad":  # flask.request: in the request context
        return (401, [("WWW-Authenticate", 'Bearer realm="deploy"')],
                f"bad token for {environ['PATH_INFO']}\n")
    return None


def create_app() -> Flask:
    app = Flask(__name__)
    sock = Sock(app)
    guarded = Sock(app, origins=ALLOWED_ORIGINS, subprotocols=SUBPROTOCOLS,
                   extra_headers=[EXTRA_HEADER], on_upgrade=guarded_refusal,
                   max_message_size=1024)

    @app.route("/")
    def index() -> Response:
        return Response(PAGE, mimetype="text/html")

    @sock.route("/ws")
    def ws_echo(ws: WebSocket) -> None:
        echo(ws)

    @sock.route("/room/<name>")
    def room(ws: WebSocket, name: str) -> None:
        ws.send(name)
        echo(ws)

    @sock.route("/fail")
    def fail(ws: WebSocket) -> None:
        ws.receive()
        raise RuntimeError("the view failed on purpose")

    @app.route("/article")
    def article() -> str:
        user_socket = request.environ.get("wsgi.websocket")
        if user_socket is None:
            return "expected a WebSocket request\n", 400  # type: ignore[return-value]
        while True:
            msg = user_socket.receive()
            if msg is None:
                break
            user_socket.send(msg)
        return ""

    @guarded.route("/guarded")
    def guarded_view(ws: WebSocket) -> None:
        ws.send(json.dumps({"protocol": ws.subprotocol, "origin": ws.origin,
                            "max_message_size": ws._proto.max_message_size}))
        echo(ws)

    return app


app = create_app()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True,
                        choices=["gevent", "gevent-options", "werkzeug"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    args = parser.parse_args()

    if args.server == "werkzeug":
        app.run("127.0.0.1", args.port, threaded=True,
                ssl_context=tuple(args.tls) if args.tls else None)
        return

    import ssl

    from pyws import WebSocketServer

    kwargs: Dict[str, object] = {}
    if args.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*args.tls)
        kwargs["ssl_context"] = context
    if args.server == "gevent-options":
        def server_refusal(environ: Dict[str, object]
                           ) -> Optional[Tuple[str, List[Tuple[str, str]], bytes]]:
            if environ.get("HTTP_X_REFUSE") == "yes":
                return ("429 Too Many Requests", [("Retry-After", "7")], b"slow down\n")
            return None

        kwargs.update(origins=SERVER_ORIGINS, subprotocols=["server.v1"],
                      extra_headers=[SERVER_HEADER], on_upgrade=server_refusal)
    server = WebSocketServer(("127.0.0.1", args.port), app, **kwargs)  # type: ignore[arg-type]
    start_and_announce(server)
    server.serve_forever()


if __name__ == "__main__":
    main()
