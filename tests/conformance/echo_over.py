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
  through its own methods);
- ``asyncio``: ``pyws.asyncio.serve`` with an ``async for`` echo handler;
- ``uvicorn``: uvicorn with ``--ws pyws.uvicorn:WebSocketProtocol`` serving
  a plain ASGI echo application (uvicorn parses the HTTP request first).

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


def serve_asyncio(max_size: int) -> None:
    import asyncio

    import pyws.asyncio

    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async def run() -> None:
        async with pyws.asyncio.serve(echo, "127.0.0.1", 0,
                                      max_message_size=max_size) as server:
            print(f"serving on http://127.0.0.1:{server.port}", flush=True)
            await server.serve_forever()

    asyncio.run(run())


async def asgi_echo(scope: Any, receive: Any, send: Any) -> None:
    """A WebSocket echo as a bare ASGI application; plain HTTP gets the 400
    that the echo views of the other transports answer."""
    if scope["type"] == "http":
        body = b"expected a WebSocket request\n"
        await send({"type": "http.response.start", "status": 400,
                    "headers": [(b"content-type", b"text/plain"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        return
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            return
        if event.get("text") is not None:
            await send({"type": "websocket.send", "text": event["text"]})
        else:
            await send({"type": "websocket.send", "bytes": event["bytes"]})


def serve_uvicorn(max_size: int) -> None:
    import socket

    import uvicorn

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    config = uvicorn.Config(asgi_echo, ws="pyws.uvicorn:WebSocketProtocol",
                            ws_max_size=max_size, lifespan="off", log_level="warning",
                            http="httptools")
    print(f"serving on http://127.0.0.1:{listener.getsockname()[1]}", flush=True)
    uvicorn.Server(config).run(sockets=[listener])


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("transport",
                        choices=["gevent-patched", "threads", "tls", "asyncio", "uvicorn"])
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
    elif args.transport == "asyncio":
        serve_asyncio(args.max_message_size)
    elif args.transport == "uvicorn":
        serve_uvicorn(args.max_message_size)
    else:
        serve_tls(args.max_message_size, args.certfile, args.keyfile)


if __name__ == "__main__":
    main()
