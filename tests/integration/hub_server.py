"""Rooms test server, run as a subprocess by the hub integration tests.

Prints the port it listens on (one line on stdout), then serves until killed.

A WebSocket to ``/<room>`` joins the hub room ``<room>`` and gets the text
message ``joined <room>``; from then on, every message it sends is
broadcast to its room, itself included (``/<room>?exclude_self=1``: to the
others only).

    --redis URL        share the rooms through a pyws.redis_bus.RedisBus
    --queue-size N     the hub's queue_size
    --overflow POLICY  the hub's overflow policy (disconnect or drop)
"""
from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

import pyws  # noqa: E402
from pyws.hub import DEFAULT_QUEUE_SIZE  # noqa: E402
from tests.server_port import start_and_announce  # noqa: E402


def make_app(hub: pyws.Hub):
    def app(environ, start_response):
        ws = environ.get("wsgi.websocket")
        if ws is None:
            body = b"no websocket in environ"
            start_response("400 Bad Request", [("Content-Type", "text/plain"),
                                               ("Content-Length", str(len(body)))])
            return [body]
        # PATH_INFO is already percent-decoded, as latin-1 (PEP 3333).
        room = environ.get("PATH_INFO", "/")[1:].encode("latin-1").decode("utf-8")
        exclude_self = "exclude_self=1" in environ.get("QUERY_STRING", "")
        hub.join(ws, room)
        # Sent before any broadcast can reach it only if nobody in the room
        # talks yet; the tests wait for every "joined" before sending.
        ws.send(f"joined {room}")
        while True:
            message = ws.receive()
            if message is None:
                break
            hub.broadcast(room, message, exclude=ws if exclude_self else None)
        return []
    return app


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--redis", default=None, metavar="URL")
    p.add_argument("--queue-size", type=int, default=DEFAULT_QUEUE_SIZE)
    p.add_argument("--overflow", default="disconnect")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")

    bus = None
    if args.redis:
        from pyws.redis_bus import RedisBus
        bus = RedisBus(args.redis, max_backoff=1.0)
    hub = pyws.Hub(queue_size=args.queue_size, overflow=args.overflow, bus=bus)
    # No access log: 200 lines of upgrades would drown the hub's own logs.
    server = pyws.WebSocketServer(("127.0.0.1", 0), make_app(hub), log=None)
    start_and_announce(server)
    try:
        server.serve_forever()
    finally:
        hub.close()


if __name__ == "__main__":
    main()
