"""A gunicorn worker for WebSocket apps: gunicorn's gevent pywsgi worker with
pyws's handler, the role of gevent-websocket's ``GeventWebSocketWorker``::

    gunicorn -k pyws.gunicorn.GeventWebSocketWorker -w 4 -b 127.0.0.1:8000 app:app

Each worker process serves many connections in greenlets (gunicorn
monkey-patches before loading the app).  Plain routes reading
``environ['wsgi.websocket']`` and ``pyws.flask.Sock`` routes both work.

The WebSocket options (those of ``pyws.WebSocketServer``) come from, in
increasing order of precedence:

1. ``websocket_options``, a dict on a subclass of the worker;
2. the app's ``config["PYWS_SERVER_OPTIONS"]`` (a Flask app, or any app
   object with a ``config`` mapping), a dict of the same keywords;
3. environment variables (``gunicorn -e NAME=VALUE`` sets them):
   ``PYWS_MAX_MESSAGE_SIZE``, ``PYWS_CLOSE_TIMEOUT``, ``PYWS_PING_INTERVAL``,
   ``PYWS_PING_TIMEOUT``, ``PYWS_IDLE_TIMEOUT``, ``PYWS_HANDSHAKE_TIMEOUT``,
   ``PYWS_MAX_REQUEST_SIZE`` (numbers, ``none`` to turn one off),
   ``PYWS_SUBPROTOCOLS`` and ``PYWS_ORIGINS`` (comma-separated),
   ``PYWS_COMPRESSION`` (``1``/``0``: permessage-deflate on or off).

``extra_headers`` and ``on_upgrade`` come from the first two only.  When a
worker stops (SIGTERM, SIGINT, SIGQUIT, a reload), its WebSockets are closed
at once with 1001 "going away", so that clients reconnect (to another
worker) instead of waiting out the graceful timeout.
"""
from __future__ import annotations

import os
import weakref
from types import FrameType
from typing import Any, ClassVar, Dict, Mapping, Optional

from ._extras import missing

try:
    import gevent  # type: ignore[import-untyped, unused-ignore]
    from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler, PyWSGIServer  # type: ignore[import-untyped, unused-ignore]
except ModuleNotFoundError as exc:
    raise missing(exc, "pyws.gunicorn") from None

from ._handshake import HandshakePolicy
from ._werkzeug import find_routing_app
from .handler import WebSocketHandler
from .options import Options
from .websocket import WebSocket

__all__ = ["GeventWebSocketWorker", "GunicornWebSocketHandler", "server_options"]

#: The app config key holding a dict of WebSocketServer keywords.
CONFIG_KEY = "PYWS_SERVER_OPTIONS"

_NUMBERS = {
    "max_message_size": int,
    "close_timeout": float,
    "ping_interval": float,
    "ping_timeout": float,
    "idle_timeout": float,
    "handshake_timeout": float,
    "max_request_size": int,
}
_LISTS = ("subprotocols", "origins")

_SWITCHES = {"1": True, "on": True, "true": True, "yes": True,
             "0": False, "off": False, "false": False, "no": False}

#: The WebSockets open in this worker process.
_open_sockets: weakref.WeakSet[WebSocket] = weakref.WeakSet()


def server_options(base: Optional[Mapping[str, Any]] = None,
                   config: Optional[Mapping[str, Any]] = None,
                   environ: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """The WebSocket options from ``base``, overridden by ``config`` (the
    app's ``PYWS_SERVER_OPTIONS``), overridden by ``environ`` (``PYWS_*``
    variables).  TypeError or ValueError for an unknown or bad option."""
    options: Dict[str, Any] = dict(base or {})
    options.update(config or {})
    for name, convert in _NUMBERS.items():
        raw = (environ or {}).get(f"PYWS_{name.upper()}")
        if raw is None:
            continue
        if raw.strip().lower() in ("none", ""):
            options[name] = None
            continue
        try:
            options[name] = convert(raw)
        except ValueError:
            raise ValueError(f"PYWS_{name.upper()}={raw!r}: not a number") from None
    raw_switch = (environ or {}).get("PYWS_COMPRESSION")
    if raw_switch is not None:
        switch = raw_switch.strip().lower()
        if switch not in _SWITCHES:
            raise ValueError(f"PYWS_COMPRESSION={raw_switch!r}: not 1/0, on/off, true/false")
        options["compression"] = _SWITCHES[switch]
    for name in _LISTS:
        raw = (environ or {}).get(f"PYWS_{name.upper()}")
        if raw is not None:
            options[name] = [item.strip() for item in raw.split(",") if item.strip()] or None
    # The same checks, and messages, as every other entry point.
    HandshakePolicy.from_options(Options.build(**options))
    return options


class GunicornWebSocketHandler(WebSocketHandler, PyWSGIHandler):  # type: ignore[misc, unused-ignore]
    """pyws's upgrade handling, gunicorn's access log and environ."""

    # gunicorn's access log reads the request and response headers.
    shed_after_upgrade = WebSocketHandler.shed_after_upgrade - {"headers",
                                                                "response_headers"}
    # gunicorn's access log (``--access-logfile``), not gevent-websocket's
    # request log, which its worker replaced with a silent one.
    log_request = PyWSGIHandler.log_request

    def websocket_opened(self, ws: WebSocket) -> None:
        _open_sockets.add(ws)


class WebSocketPyWSGIServer(PyWSGIServer):  # type: ignore[misc, unused-ignore]
    """Where the handler reads the WebSocket options: ``options``, set by
    the worker (see ``server_options``)."""

    options: Options = Options()


class GeventWebSocketWorker(GeventPyWSGIWorker):  # type: ignore[misc, unused-ignore]
    """``gunicorn -k pyws.gunicorn.GeventWebSocketWorker``."""

    wsgi_handler = GunicornWebSocketHandler
    server_class: type = WebSocketPyWSGIServer
    #: WebSocket options for a subclass to set (see the module's doc).
    websocket_options: ClassVar[Dict[str, Any]] = {}

    def run(self) -> None:
        # The app is loaded by now (init_process), so its config is readable.
        owner = find_routing_app(self.wsgi) or self.wsgi
        config = getattr(owner, "config", None)
        app_options = config.get(CONFIG_KEY) if isinstance(config, Mapping) else None
        options = Options.build(**server_options(self.websocket_options, app_options,
                                                 os.environ))
        self.server_class = type("WebSocketPyWSGIServer", (WebSocketPyWSGIServer,),
                                 {"options": options})
        super().run()

    def handle_exit(self, sig: int, frame: Optional[FrameType]) -> None:
        gevent.spawn(_close_all)
        super().handle_exit(sig, frame)

    def handle_quit(self, sig: int, frame: Optional[FrameType]) -> None:
        gevent.spawn(_close_all)
        super().handle_quit(sig, frame)


def _close_all() -> None:
    for ws in list(_open_sockets):
        gevent.spawn(_close, ws)


def _close(ws: WebSocket) -> None:
    try:
        ws.close(1001, "server shutting down")
    except Exception:
        pass
