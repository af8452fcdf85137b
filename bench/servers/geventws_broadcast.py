"""gevent-websocket broadcast, the usual way: a set of sockets and a plain
loop of ``send()`` over them in the sender's greenlet.  Members are greeted
once they are in the set, like in pyws_broadcast.py."""
from __future__ import annotations

import _common

args = _common.parse_args(__doc__)

from gevent.pywsgi import WSGIServer  # noqa: E402
from geventwebsocket.exceptions import WebSocketError  # noqa: E402
from geventwebsocket.handler import WebSocketHandler  # noqa: E402

clients = set()


def app(environ, start_response):
    ws = environ.get("wsgi.websocket")
    if ws is None:
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [b"WebSocket only\n"]
    clients.add(ws)
    try:
        ws.send("joined")
        while True:
            msg = ws.receive()
            if msg is None:
                break
            for client in list(clients):
                try:
                    client.send(msg)
                except WebSocketError:
                    clients.discard(client)
    finally:
        clients.discard(ws)
    return []


WSGIServer((args.host, args.port), app, handler_class=WebSocketHandler,
           log=None).serve_forever()
