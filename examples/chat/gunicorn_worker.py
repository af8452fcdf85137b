"""A gunicorn worker class for pyws apps: gunicorn's gevent pywsgi worker with
pyws's WebSocket handler.

    cd examples/chat
    PYWS_REDIS_URL=redis://127.0.0.1:6379/0 \\
        gunicorn -w 4 -k gunicorn_worker.Worker -b 127.0.0.1:9527 'app:create_app()'

Each worker is a process of its own: without Redis, users of different
workers would not see each other, so give the app $PYWS_REDIS_URL.
gunicorn's gevent worker monkey-patches before it loads the app.  When a
worker stops (SIGTERM, SIGINT, SIGQUIT, a reload), its WebSockets are closed
at once with 1001 "going away", so that pages reconnect (to another worker)
instead of waiting out the graceful timeout.
"""
from __future__ import annotations

from typing import Any, Set

import gevent
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler, PyWSGIServer

from pyws import WebSocketHandler

#: The WebSockets open in this worker process (pyws.WebSocket has no
#: __weakref__ slot, hence a plain set, emptied as the connections end).
_open_sockets: Set[Any] = set()


class Handler(WebSocketHandler, PyWSGIHandler):
    """pyws's upgrade handling, gunicorn's access log and environ."""

    def _run_websocket_app(self, ws):
        _open_sockets.add(ws)
        try:
            super()._run_websocket_app(ws)
        finally:
            _open_sockets.discard(ws)


class Server(PyWSGIServer):
    """Where the handler reads its WebSocket options (see WebSocketServer)."""

    max_message_size = 64 * 1024
    ping_interval = 20.0
    ping_timeout = 20.0
    close_timeout = 3.0


class Worker(GeventPyWSGIWorker):
    server_class = Server
    wsgi_handler = Handler

    def handle_exit(self, sig, frame):
        gevent.spawn(_close_all)
        super().handle_exit(sig, frame)

    def handle_quit(self, sig, frame):
        gevent.spawn(_close_all)
        super().handle_quit(sig, frame)


def _close_all() -> None:
    for ws in list(_open_sockets):
        gevent.spawn(_close, ws)


def _close(ws) -> None:
    try:
        ws.close(1001, "server shutting down")
    except Exception:
        pass
