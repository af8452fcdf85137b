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

import gevent  # type: ignore[import-untyped, unused-ignore]
from gevent.pywsgi import WSGIHandler  # type: ignore[import-untyped, unused-ignore]

from . import _core
from .exceptions import ConnectionClosed, HandshakeError, ProtocolError
from .websocket import DEFAULT_CLOSE_TIMEOUT, DEFAULT_PING_TIMEOUT, WebSocket

__all__ = ["WebSocketHandler"]

logger = logging.getLogger("pyws.handler")

Environ = Dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], None]]

# How many wrapper levels (middleware) to look through for a Werkzeug url_map.
_MAX_APP_DEPTH = 5

#: Seconds a client has to deliver its request head (request line and headers).
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
#: Largest request head accepted, in bytes (request line and headers).
DEFAULT_MAX_REQUEST_SIZE = 32768

def _plain_response(status: str, body: bytes) -> bytes:
    """A complete HTTP response that closes the connection."""
    return (f"HTTP/1.1 {status}\r\nConnection: close\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode("ascii") + body


_TIMEOUT_RESPONSE = _plain_response("408 Request Timeout",
                                    b"the request head did not arrive in time\n")
_TOO_LARGE_RESPONSE = _plain_response("431 Request Header Fields Too Large",
                                      b"the request head is too large\n")


class _HeadTooLarge(Exception):
    """The request head exceeded ``max_request_size``."""


class _HeadLimit:
    """A reader over pywsgi's rfile for the header block: counts the bytes
    read and refuses to go past the limit, so a client cannot make the
    server buffer an arbitrarily large head."""

    def __init__(self, rfile: Any, budget: int) -> None:
        self._rfile = rfile
        self._budget = budget

    def readline(self, size: int = -1) -> bytes:
        # Ask for one byte more than the budget, to tell "exactly at the
        # limit" from "over it".
        want = self._budget + 1 if size < 0 else min(size, self._budget + 1)
        line: bytes = self._rfile.readline(want)
        self._budget -= len(line)
        if self._budget < 0:
            raise _HeadTooLarge()
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rfile, name)


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
    ``max_message_size``, ``subprotocols``, ``handshake_timeout``,
    ``max_request_size``, ``close_timeout``, ``ping_interval``,
    ``ping_timeout``, ``idle_timeout``; defaults apply under a plain
    ``WSGIServer``.
    """

    #: The WebSocket of the current request, None outside one.
    websocket: Optional[WebSocket] = None
    _head_deadline: Any = None

    def handle_one_request(self) -> Any:
        """pywsgi's request cycle, with a deadline on reading the head: a
        client that connects and sends nothing (or drips) is answered 408
        and dropped after ``handshake_timeout`` seconds."""
        timeout = getattr(self.server, "handshake_timeout", DEFAULT_HANDSHAKE_TIMEOUT)
        if timeout is None:
            return super().handle_one_request()
        deadline = gevent.Timeout(timeout)
        self._head_deadline = deadline
        deadline.start()
        try:
            return super().handle_one_request()
        except gevent.Timeout as exc:
            if exc is not deadline:
                raise
            logger.info("request head from %s did not arrive within %gs",
                        _peer(self.client_address), timeout)
            self.close_connection = True
            return ("408", _TIMEOUT_RESPONSE)
        finally:
            deadline.close()
            self._head_deadline = None

    def read_request(self, raw_requestline: str) -> Any:
        result = super().read_request(raw_requestline)
        # The head is in: the application runs without the deadline.
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        return result

    def MessageClass(self, fp: Any, *args: Any) -> Any:  # noqa: N802 (pywsgi's name)
        limit = getattr(self.server, "max_request_size", DEFAULT_MAX_REQUEST_SIZE)
        if limit is not None:
            fp = _HeadLimit(fp, limit - len(getattr(self, "requestline", "") or ""))
        return super().MessageClass(fp, *args)

    def _handle_client_error(self, ex: BaseException) -> Any:
        if isinstance(ex, _HeadTooLarge):
            logger.info("request head from %s exceeds %d bytes",
                        _peer(self.client_address),
                        getattr(self.server, "max_request_size", DEFAULT_MAX_REQUEST_SIZE))
            self.close_connection = True
            return ("431", _TOO_LARGE_RESPONSE)
        # Not in the gevent stubs: a documented pywsgi hook for subclasses.
        return super()._handle_client_error(ex)  # type: ignore[misc, unused-ignore]

    def run_application(self) -> None:
        environ = cast(Environ, self.environ)
        if not _asks_for_websocket(environ):
            super().run_application()
            return
        server = self.server
        try:
            accept, subprotocol = _core.check_request(
                environ.get("REQUEST_METHOD", ""), self.request_version or "",
                _request_headers(self.headers, environ),
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
            close_timeout=getattr(server, "close_timeout", DEFAULT_CLOSE_TIMEOUT),
            ping_interval=getattr(server, "ping_interval", None),
            ping_timeout=getattr(server, "ping_timeout", DEFAULT_PING_TIMEOUT),
            idle_timeout=getattr(server, "idle_timeout", None),
        )
        self.websocket = ws
        environ["wsgi.websocket"] = ws
        environ["wsgi.websocket_version"] = "13"
        try:
            self._run_websocket_app(ws)
        finally:
            self.websocket = None
            self.close_connection = True
            # The environ holds the socket and the socket its environ: break
            # the cycle so the connection's memory goes now, not at the next
            # garbage collection.
            environ["wsgi.websocket"] = None
            ws.environ = None

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


def _request_headers(headers: Any, environ: Environ) -> List[Tuple[str, str]]:
    """The request headers as (name, value) pairs, each field as it was sent:
    pywsgi's header object keeps repeated fields apart (the environ joins
    them with commas, which would hide a second Host or key)."""
    items = getattr(headers, "items", None)
    if items is not None:
        return [(str(name), str(value)) for name, value in items()]
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
