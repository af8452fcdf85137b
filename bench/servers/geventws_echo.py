"""gevent-websocket echo: gevent's ``WSGIServer`` with geventwebsocket's
handler, the setup pyws replaces.  gevent-websocket has no message size
limit, so ``--max-size`` is accepted and has nothing to set."""
from __future__ import annotations

import _common

args = _common.parse_args(__doc__)

from gevent.pywsgi import WSGIServer  # noqa: E402
from geventwebsocket.handler import WebSocketHandler  # noqa: E402


def app(environ, start_response):
    ws = environ.get("wsgi.websocket")
    if ws is None:
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [b"WebSocket only\n"]
    while True:
        msg = ws.receive()
        if msg is None:
            break
        ws.send(msg)  # str: text frame, bytes: binary frame
    return []


WSGIServer((args.host, args.port), app, handler_class=WebSocketHandler,
           log=None).serve_forever()
