"""The conformance suite's echo server over one transport, as a subprocess.

    python3 tests/conformance/echo_over.py TRANSPORT [--max-message-size N]
                                           [--certfile F --keyfile F]

TRANSPORT picks how the server's sockets are driven (see pyws/transport.py):

- ``gevent-patched``: examples/echo.py itself, after ``monkey.patch_all()``
  (gevent's socket is then ``socket.socket``: the gevent transport must
  still be chosen);
- ``threads``: the same echo view as a ``pyws.flask.Sock`` route on
  Werkzeug's threaded server (stdlib sockets, one thread each);
- ``tls``: ``pyws.WebSocketServer`` over TLS (gevent's SSL socket, driven
  through its own methods).

The plain gevent transport is examples/echo.py run as it is (conftest.py).
Prints ``serving on http://127.0.0.1:PORT`` once it listens, as echo.py does.
"""
from __future__ import annotations

import sys

if len(sys.argv) > 1 and sys.argv[1] == "gevent-patched":
    from gevent import monkey

    monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
from typing import Any, List, Optional  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "examples"))


def echo_loop(ws: Any) -> None:
    while True:
        message = ws.receive()
        if message is None:
            return
        ws.send(message)


def serve_threads(max_size: int) -> None:
    from flask import Flask
    from werkzeug.serving import make_server

    from pyws.flask import Sock

    app = Flask(__name__)
    sock = Sock(app, max_message_size=max_size)
    sock.route("/ws")(echo_loop)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(f"serving on http://127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()


def serve_tls(max_size: int, certfile: str, keyfile: str) -> None:
    from pyws import WebSocketServer

    def app(environ: Any, start_response: Any) -> List[bytes]:
        ws = environ.get("wsgi.websocket")
        if ws is None:
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [b"expected a WebSocket request\n"]
        echo_loop(ws)
        return []

    server = WebSocketServer(("127.0.0.1", 0), app, max_message_size=max_size,
                             certfile=certfile, keyfile=keyfile, log=None)
    server.start()
    print(f"serving on http://127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("transport", choices=["gevent-patched", "threads", "tls"])
    parser.add_argument("--max-message-size", type=int, default=1 << 20)
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    args = parser.parse_args(argv)
    if args.transport == "gevent-patched":
        import echo

        echo.main(["--host", "127.0.0.1", "--port", "0",
                   "--max-message-size", str(args.max_message_size)])
    elif args.transport == "threads":
        serve_threads(args.max_message_size)
    else:
        serve_tls(args.max_message_size, args.certfile, args.keyfile)


if __name__ == "__main__":
    main()
