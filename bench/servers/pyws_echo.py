"""pyws echo: ``pyws.WebSocketServer`` (gevent pywsgi) and a plain WSGI app."""
from __future__ import annotations

import _common

args = _common.parse_args(__doc__)

import pyws  # noqa: E402  (after the rlimit, like every server here)


def app(environ, start_response):
    ws = environ.get("wsgi.websocket")
    if ws is None:
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [b"WebSocket only\n"]
    while True:
        msg = ws.receive()  # str, bytes, or None once closed
        if msg is None:
            break
        ws.send(msg)  # text stays text, bytes stay binary
    return []


# log=None: no access log line per connection (the peers log none either).
pyws.WebSocketServer((args.host, args.port), app, max_message_size=args.max_size,
                     log=None).serve_forever()
