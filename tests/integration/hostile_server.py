"""Echo server for the hostile-client and memory-bound tests.

Run as a subprocess (gevent's monkey-patching and hub never reach pytest);
prints the port it listens on (one line on stdout), then serves until killed.

    python3 tests/integration/hostile_server.py [--handshake-timeout 1.0]
        [--max-request-size 32768] [--max-message-size 65536]
        [--close-timeout 1.0] [--ping-interval S] [--ping-timeout S]
        [--idle-timeout S]

It is ``pyws.WebSocketServer`` with the options given (the others keep their
defaults) serving one WSGI app: '/ws' echoes every message back (text as text,
binary as binary) until the client closes; '/' answers 200 "ok".  The test
reads the process's memory from /proc/<pid>/status, so the server must be this
process itself (no wrapper, no fork).
"""
from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

import pyws  # noqa: E402
from tests.server_port import start_and_announce  # noqa: E402

OK = b"ok\n"


def app(environ, start_response):
    ws = environ.get("wsgi.websocket")
    path = environ.get("PATH_INFO", "")
    if ws is None:
        status = "200 OK" if path == "/" else "404 Not Found"
        body = OK if path == "/" else b"not found\n"
        start_response(status, [("Content-Type", "text/plain"),
                                ("Content-Length", str(len(body)))])
        return [body]
    if path == "/ws":
        while True:
            msg = ws.receive()
            if msg is None:
                break
            ws.send(msg)
    return []


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--handshake-timeout", type=float)
    p.add_argument("--max-request-size", type=int)
    p.add_argument("--max-message-size", type=int)
    p.add_argument("--close-timeout", type=float)
    p.add_argument("--ping-interval", type=float)
    p.add_argument("--ping-timeout", type=float)
    p.add_argument("--idle-timeout", type=float)
    args = p.parse_args()
    options = {name: value for name, value in vars(args).items() if value is not None}

    server = pyws.WebSocketServer(("127.0.0.1", 0), app, **options)
    start_and_announce(server)
    server.serve_forever()


if __name__ == "__main__":
    main()
