"""pyws broadcast: every connection joins one ``pyws.Hub`` room; any message
a member sends is broadcast to the room (the frame is encoded once and
written to every member by the hub's C fan-out, or queued to the member's
writer greenlet when its socket is busy).  A member is greeted once it has
joined, so that the load generator knows when the room is complete."""
from __future__ import annotations

import _common

args = _common.parse_args(__doc__)

import pyws  # noqa: E402

hub = pyws.Hub()


def app(environ, start_response):
    ws = environ.get("wsgi.websocket")
    if ws is None:
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [b"WebSocket only\n"]
    hub.join(ws, "room")
    ws.send("joined")
    while True:
        msg = ws.receive()
        if msg is None:
            break
        hub.broadcast("room", msg)
    return []


pyws.WebSocketServer((args.host, args.port), app, max_message_size=args.max_size,
                     log=None).serve_forever()
