"""A gevent ``pywsgi`` handler that upgrades WebSocket requests.

Use it with any ``gevent.pywsgi.WSGIServer``::

    WSGIServer(addr, app, handler_class=WebSocketHandler).serve_forever()

or with :class:`pyws.WebSocketServer`, which also carries the protocol
options.  Requests that do not ask for ``Upgrade: websocket`` take the normal
WSGI path, so one application serves both its pages and its sockets.
"""
from __future__ import annotations

import logging
import sys
from http import HTTPStatus
from typing import Any, Callable, Dict, List, Optional, Tuple, cast

from gevent.pywsgi import WSGIHandler  # type: ignore[import-untyped, unused-ignore]

from . import _core
from .exceptions import ConnectionClosed, HandshakeError, ProtocolError
from .websocket import WebSocket

__all__ = ["WebSocketHandler"]

logger = logging.getLogger("pyws.handler")

Environ = Dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], None]]

# How many wrapper levels (middleware) to look through for a Werkzeug url_map.
_MAX_APP_DEPTH = 5


class WebSocketHandler(WSGIHandler):  # type: ignore[misc, unused-ignore]
    """``WSGIHandler`` that performs the WebSocket opening handshake.

    On a valid upgrade request it answers ``101 Switching Protocols`` and
    calls the application with ``environ['wsgi.websocket']`` set to a
    :class:`pyws.WebSocket`; when the application returns, the WebSocket is
    closed and so is the connection.  An invalid upgrade request gets the
    HTTP error it deserves (400, 405, 426) and the application is not called.

    When the application returns, a still open WebSocket is closed with 1000,
    or with 1008 (4xx) / 1011 (5xx) if the application answered an HTTP error
    without touching the socket; 1011 if it raised.  ConnectionClosed raised
    out of it is logged at debug level, ProtocolError at info level.

    Flask (any Werkzeug ``url_map``): a route declared without
    ``websocket=True`` is shown the request as a plain GET (see
    ``_present_mismatch_as_get``), and a filter on the app's logger turns
    Flask's "Exception on /ws" traceback for those two exceptions, raised in a
    WebSocket view, into the same one-line log.

    Options are read from the server (see :class:`pyws.WebSocketServer`):
    ``max_message_size``, ``subprotocols``, ``close_timeout``; defaults apply
    under a plain ``WSGIServer``.
    """

    #: The WebSocket of the current request, None outside one.
    websocket: Optional[WebSocket] = None

    def run_application(self) -> None:
        environ = cast(Environ, self.environ)
        if not _asks_for_websocket(environ):
            super().run_application()
            return
        server = self.server
        try:
            accept, subprotocol = _core.check_request(
                environ.get("REQUEST_METHOD", ""), self.request_version or "",
                _request_headers(environ),
                subprotocols=getattr(server, "subprotocols", None) or None)
        except HandshakeError as exc:
            self._reject(exc)
            return
        self._switch_protocols(accept, subprotocol)
        ws = WebSocket(
            self.socket,
            _core.Protocol(server=True, max_message_size=getattr(
                server, "max_message_size", _core.DEFAULT_MAX_MESSAGE_SIZE)),
            rfile=self.rfile,
            environ=environ,
            path=environ.get("PATH_INFO"),
            origin=environ.get("HTTP_ORIGIN"),
            subprotocol=subprotocol,
            version="13",
            close_timeout=getattr(server, "close_timeout", 5.0),
        )
        self.websocket = ws
        environ["wsgi.websocket"] = ws
        environ["wsgi.websocket_version"] = "13"
        try:
            self._run_websocket_app(ws)
        finally:
            self.websocket = None
            self.close_connection = True

    def _reject(self, exc: HandshakeError) -> None:
        """Answer a bad upgrade request with ``exc.status`` and its reason."""
        environ = cast(Environ, self.environ)
        logger.info("rejected WebSocket handshake from %s for %s: %s (%d)",
                    _peer(self.client_address), environ.get("PATH_INFO"),
                    exc.message, exc.status)
        try:
            phrase = HTTPStatus(exc.status).phrase
        except ValueError:
            phrase = "Bad Request"
        body = f"WebSocket handshake failed: {exc.message}\n".encode("utf-8")
        headers = list(exc.headers) + [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]
        self.close_connection = True
        self.start_response(f"{exc.status} {phrase}", headers)
        self.write(body)

    def _switch_protocols(self, accept: str, subprotocol: Optional[str]) -> None:
        """Send the 101 response now, through pywsgi's own ``start_response``
        and ``write`` so that its state says headers are sent and it writes
        nothing more (no body framing: a 101 has none)."""
        self.close_connection = True
        self.start_response("101 Switching Protocols",
                            _core.response_headers(accept, subprotocol))
        self.write(b"")

    def _run_websocket_app(self, ws: WebSocket) -> None:
        """Call the application, then close ``ws`` with a code that says how
        it ended."""
        status: List[str] = []

        def start_response(status_line: str, headers: List[Tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            status[:] = [status_line]
            return _discard

        code, reason = 1000, ""
        environ = cast(Environ, self.environ)
        application: Any = self.application
        try:
            _prepare_routing_app(application, environ)
            result = application(environ, start_response)
            try:
                for _chunk in result:
                    pass
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except ConnectionClosed as exc:
            logger.debug("WebSocket %s closed: %s", ws.path, exc)
        except ProtocolError as exc:
            logger.info("WebSocket %s failed by the peer: %s (%d)",
                        ws.path, exc, exc.code)
        except BaseException as exc:
            # An application error is 1011; GreenletExit (server stopping)
            # and the like mean the endpoint is going away.
            code = 1011 if isinstance(exc, Exception) else 1001
            raise
        finally:
            if not ws.closed:
                if status and not ws._used:
                    code, reason = _code_for_status(status[0], code)
                try:
                    ws.close(code, reason)
                except Exception:
                    logger.debug("closing WebSocket %s failed", ws.path,
                                 exc_info=True)


def _discard(data: bytes) -> None:
    """The write callable given to a WebSocket application: HTTP bodies are
    meaningless once the protocol switched."""


def _code_for_status(status_line: str, default: int) -> Tuple[int, str]:
    """1008 for a 4xx answer, 1011 for 5xx, with the status line as reason."""
    try:
        status = int(status_line.split(None, 1)[0])
    except (ValueError, IndexError):
        return default, ""
    if 400 <= status < 500:
        code = 1008
    elif 500 <= status < 600:
        code = 1011
    else:
        return default, ""
    # A close reason is at most 123 UTF-8 bytes.
    reason = status_line.encode("utf-8")[:123].decode("utf-8", "ignore")
    return code, reason


def _asks_for_websocket(environ: Environ) -> bool:
    upgrade = environ.get("HTTP_UPGRADE")
    if not upgrade:
        return False
    return any(token.strip().lower() == "websocket"
               for token in upgrade.split(","))


def _request_headers(environ: Environ) -> List[Tuple[str, str]]:
    """The request headers as (name, value) pairs, rebuilt from ``environ``."""
    return [(key[5:].replace("_", "-"), value)
            for key, value in environ.items() if key.startswith("HTTP_")]


def _peer(address: Any) -> str:
    if isinstance(address, tuple) and address:
        return str(address[0])
    return str(address or "-")


def _find_routing_app(app: Any) -> Any:
    """The object owning a Werkzeug ``url_map`` (a Flask app or similar),
    looking through a few levels of middleware; None if there is none."""
    routing = sys.modules.get("werkzeug.routing")
    if routing is None:
        # No Werkzeug application could exist without this module loaded.
        return None
    map_class = getattr(routing, "Map", None)
    if map_class is None:
        return None
    obj = app
    for _ in range(_MAX_APP_DEPTH):
        if obj is None:
            return None
        if isinstance(getattr(obj, "url_map", None), map_class):
            return obj
        obj = (getattr(obj, "wsgi_app", None) or getattr(obj, "app", None)
               or getattr(obj, "__self__", None))
    return None


def _prepare_routing_app(app: Any, environ: Environ) -> None:
    """Adapt a Werkzeug/Flask application to a WebSocket request."""
    owner = _find_routing_app(app)
    if owner is None:
        return
    _present_mismatch_as_get(owner.url_map, environ)
    app_logger = getattr(owner, "logger", None)
    if isinstance(app_logger, logging.Logger) and hasattr(owner, "log_exception"):
        _quiet_flask_logger(app_logger)


def _present_mismatch_as_get(url_map: Any, environ: Environ) -> None:
    """Let a plain ``@app.route('/ws')`` serve a WebSocket on Werkzeug >= 2.2.

    Werkzeug only matches upgrade requests against routes declared with
    ``websocket=True`` and answers 400 (WebsocketMismatch) otherwise.  When
    that would happen, the request is shown to the application as a plain
    GET; the original headers stay in ``environ['pyws.upgrade']``.
    """
    mismatch = getattr(sys.modules.get("werkzeug.routing"), "WebsocketMismatch", None)
    if mismatch is None:
        return  # Werkzeug < 2.2 has no WebSocket routing
    try:
        url_map.bind_to_environ(environ).match()
    except mismatch:
        pass
    except Exception:
        return  # NotFound, redirects...: the application answers those itself
    else:
        return
    connection = environ.get("HTTP_CONNECTION", "")
    environ["pyws.upgrade"] = {"HTTP_UPGRADE": environ.pop("HTTP_UPGRADE", ""),
                               "HTTP_CONNECTION": connection}
    tokens = [t.strip() for t in connection.split(",")
              if t.strip() and t.strip().lower() != "upgrade"]
    if tokens:
        environ["HTTP_CONNECTION"] = ", ".join(tokens)
    else:
        environ.pop("HTTP_CONNECTION", None)
    logger.debug("presenting WebSocket request for %s to the application as a "
                 "plain GET (its route is not declared websocket=True)",
                 environ.get("PATH_INFO"))


class _WebSocketEndFilter(logging.Filter):
    """Flask catches what a view raises and logs it as an error with its
    traceback; for the WebSocket ending (ConnectionClosed: the client left;
    ProtocolError: it broke the protocol) raised in a WebSocket view, log one
    line on ``pyws.handler`` instead, as for any other WSGI application."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, (ConnectionClosed, ProtocolError)):
            return True
        flask = sys.modules.get("flask")
        if flask is None or not flask.has_request_context():
            return True
        ws = flask.request.environ.get("wsgi.websocket")
        if ws is None:
            return True  # an HTTP view: a real error, keep its traceback
        if isinstance(exc, ConnectionClosed):
            logger.debug("WebSocket %s closed: %s", ws.path, exc)
        else:
            logger.info("WebSocket %s failed by the peer: %s (%d)",
                        ws.path, exc, exc.code)
        return False


def _quiet_flask_logger(app_logger: logging.Logger) -> None:
    for existing in app_logger.filters:
        if isinstance(existing, _WebSocketEndFilter):
            return
    app_logger.addFilter(_WebSocketEndFilter())
