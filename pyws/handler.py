"""A gevent ``pywsgi`` handler that upgrades WebSocket requests.

Use it with any ``gevent.pywsgi.WSGIServer``::

    WSGIServer(addr, app, handler_class=WebSocketHandler).serve_forever()

or with :class:`pyws.WebSocketServer`, which also carries the protocol
options.  Requests that do not ask for ``Upgrade: websocket`` take the normal
WSGI path, so one application serves both its pages and its sockets.
"""
from __future__ import annotations

import io
import logging
import sys
import time
from typing import (
    Any,
    Dict,
    FrozenSet,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Type,
    cast,
)

from ._extras import missing

try:
    import gevent  # type: ignore[import-untyped, unused-ignore]
    from gevent.pywsgi import WSGIHandler  # type: ignore[import-untyped, unused-ignore]
except ModuleNotFoundError as exc:
    raise missing(exc, "pyws.handler") from None

from ._handshake import (
    Environ,
    HandshakePolicy,
    Negotiated,
    Refusal,
    asks_for_websocket,
    negotiate,
    new_websocket,
)
from ._runner import UPGRADE_KEY, Route, SessionRunner, Upgrade
from ._werkzeug import find_routing_app, is_sock_view, prepare_routing_app, routed_view
from .options import OPTION_NAMES, Options
from .websocket import WebSocket

__all__ = ["Client", "WebSocketHandler", "request_logger"]

logger = logging.getLogger("pyws.handler")

#: The logger a server without one gets from the handler (gevent-websocket's
#: ``geventwebsocket.handler``; see ``WebSocketHandler.logger``).
HANDLER_LOGGER_NAME = "pyws.handler.requests"


class Client:
    """An open WebSocket in ``server.clients``, as gevent-websocket's:
    ``address`` (the client's), ``ws``; an application may set more
    attributes on it (a chat's ``nickname``)."""

    def __init__(self, address: Any, ws: WebSocket) -> None:
        self.address = address
        self.ws = ws

    def __repr__(self) -> str:
        return f"<Client {self.address!r} {self.ws!r}>"


class _DebugOnlyHandler(logging.StreamHandler):  # type: ignore[type-arg, unused-ignore]
    """Writes records to stderr only when its server runs with ``debug``."""

    def __init__(self, debug: bool) -> None:
        super().__init__(sys.stderr)
        self.setLevel(logging.DEBUG)
        self.debug = debug
        #: Whether it set its logger's level to DEBUG (undone by the next).
        self.raised_level = False

    def emit(self, record: logging.LogRecord) -> None:
        if self.debug:
            super().emit(record)


def request_logger(name: str, debug: bool = False,
                   log_format: Optional[str] = None) -> logging.Logger:
    """The logger ``name`` made as gevent-websocket makes its server's:
    records at DEBUG and up go to stderr (in ``log_format``) when ``debug``,
    nowhere otherwise; they propagate as usual, so a program's logging
    configuration sees them either way.  The last call for a name decides."""
    log = logging.getLogger(name)
    for old in [h for h in log.handlers if isinstance(h, _DebugOnlyHandler)]:
        log.removeHandler(old)
        if old.raised_level:
            log.setLevel(logging.NOTSET)
    handler = _DebugOnlyHandler(debug)
    if log_format:
        handler.setFormatter(logging.Formatter(log_format))
    if debug and log.level == logging.NOTSET:
        log.setLevel(logging.DEBUG)
        handler.raised_level = True
    log.addHandler(handler)
    return log

#: The attribute of a server holding its ``ServerSettings``.
_SETTINGS_ATTRIBUTE = "_pyws_settings"


class ServerSettings(NamedTuple):
    """A server's WebSocket options, and its handshake policy made from
    them once (not for every request)."""

    options: Options
    policy: HandshakePolicy


def server_settings(server: Any) -> ServerSettings:
    """The settings of ``server``: its ``options`` (an ``Options``: those of
    ``WebSocketServer``, of the gunicorn worker's server), else the option
    attributes it has (the others take their defaults); made once per
    server."""
    settings = getattr(server, _SETTINGS_ATTRIBUTE, None)
    if isinstance(settings, ServerSettings):
        return settings
    options = getattr(server, "options", None)
    if not isinstance(options, Options):
        options = Options.build(**{name: getattr(server, name) for name in OPTION_NAMES
                                   if hasattr(server, name)})
    return install_settings(server, options)


def install_settings(server: Any, options: Options,
                     policy: Optional[HandshakePolicy] = None) -> ServerSettings:
    """Give ``server`` these options (the handshake policy is made from them
    unless given: a TypeError or ValueError for a bad origin and the like)."""
    settings = ServerSettings(options, policy or HandshakePolicy.from_options(options))
    try:
        setattr(server, _SETTINGS_ATTRIBUTE, settings)
    except AttributeError:
        pass  # a server with __slots__: made again next time
    return settings

def _plain_response(status: str, body: bytes) -> bytes:
    """A complete HTTP response that closes the connection."""
    return (f"HTTP/1.1 {status}\r\nConnection: close\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode("ascii") + body


_TIMEOUT_RESPONSE = _plain_response("408 Request Timeout",
                                    b"the request head did not arrive in time\n")
_TOO_LARGE_RESPONSE = _plain_response("431 Request Header Fields Too Large",
                                      b"the request head is too large\n")


#: Handler attributes dropped once the connection is a WebSocket (see
#: WebSocketHandler._shed_request_state); pywsgi's class defaults stand in.
_SHED_ATTRIBUTES = frozenset({
    "headers", "response_headers", "_head_deadline", "time_finish", "result",
    "response_use_chunked", "provided_date", "provided_content_length", "_line_in", "_served",
})


def _closed_reader() -> io.BufferedReader[io.BytesIO]:
    reader = io.BufferedReader(io.BytesIO())
    reader.close()
    return reader


#: What an upgraded connection's pywsgi reader is replaced with: a closed
#: reader, the same for every connection (see _let_go_of_reader).
_CLOSED_READER: Any = _closed_reader()


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
    HTTP error it deserves (400, 405, 426; 403 for an origin not allowed;
    what ``on_upgrade`` answered) and the application is not called.

    When the application returns, a still open WebSocket is closed by the
    rule of ``pyws._runner`` (1000; 1011 if it raised or answered a 5xx;
    1008 if it answered a 4xx).  ConnectionClosed raised out of it is logged
    at debug level, ProtocolError at info level.

    Flask (any Werkzeug ``url_map``): a route declared without
    ``websocket=True`` is shown the request as a plain GET (see
    ``present_mismatch_as_get``), and a filter on the app's logger turns
    Flask's "Exception on /ws" traceback for those two exceptions, raised in a
    WebSocket view, into the same one-line log.  A ``pyws.flask.Sock`` route
    performs the handshake itself, with its options and the server's: the
    application is called with the upgrade request untouched and an
    ``Upgrade`` (``pyws._runner``) whose ``accept`` does the handshake
    through this handler.

    Options are the server's ``options`` (a :class:`pyws.options.Options`,
    as :class:`pyws.WebSocketServer` holds), or the option attributes the
    server has; defaults apply under a plain ``WSGIServer``.
    """

    #: The WebSocket of the current request, None outside one.
    websocket: Optional[WebSocket] = None
    #: Attributes the handler drops once the request became a WebSocket,
    #: for the connection's lifetime (see ``_shed_request_state``): the
    #: parsed request headers, the encoded response headers, and some that
    #: equal pywsgi's class defaults.  A subclass whose ``log_request``
    #: reads ``headers`` or ``response_headers`` (gunicorn's) keeps them.
    shed_after_upgrade: FrozenSet[str] = _SHED_ATTRIBUTES
    #: gevent-websocket's switch: set it (on the handler, before
    #: ``run_application``) to have the handshake done but the application
    #: not called; the WebSocket is then ``self.websocket``, the caller's.
    prevent_wsgi_call: bool = False
    _head_deadline: Any = None
    # Whether bytes of the current request's line came, and how many
    # requests this connection's head deadline has let through.
    _line_in = False
    _served = 0

    @property
    def logger(self) -> logging.Logger:
        """The server's ``logger`` (gevent-websocket's): a server without
        one (a plain ``WSGIServer``) is given one, silent but propagating."""
        server_logger = getattr(self.server, "logger", None)
        if not isinstance(server_logger, logging.Logger):
            server_logger = request_logger(HANDLER_LOGGER_NAME)
            try:
                self.server.logger = server_logger
            except AttributeError:
                pass  # a server with __slots__: made again next time
        return server_logger

    @property
    def active_client(self) -> Client:
        """This connection's entry in ``server.clients`` (KeyError when it
        is not a WebSocket whose application runs)."""
        return cast(Client, self.server.clients[self.client_address])

    def log_request(self) -> None:
        """Under ``debug=True``, gevent-websocket's request log: each
        request but the WebSockets (status 101) on ``logger`` at INFO.
        Otherwise pywsgi's access log (``log=``, stderr by default;
        ``log=None`` silences it), WebSockets included: operators want it,
        and gevent-websocket's silence there is no contract.  One or the
        other, so that a program whose logging shows INFO does not get each
        line twice."""
        line = self.format_request()
        if getattr(self.server, "debug", False):
            if _status_code(self.status) != 101:
                self.logger.info(line)
            return
        log = getattr(self.server, "log", None)
        if log is not None:
            log.write(line + "\n")

    def handle_one_request(self) -> Any:
        """pywsgi's request cycle, with a deadline on reading the head: a
        client that connects and sends nothing (or drips) is answered 408
        and dropped after ``handshake_timeout`` seconds."""
        timeout = server_settings(self.server).options.handshake_timeout
        if timeout is None:
            return super().handle_one_request()
        # Held by the handler only, not by a local of this frame: the frame
        # lives as long as the connection, the deadline only until the head
        # is in (read_request lets it go).
        self._head_deadline = gevent.Timeout(timeout)
        self._head_deadline.start()
        self._line_in = False
        try:
            return super().handle_one_request()
        except gevent.Timeout as exc:
            if exc is not self._head_deadline:
                raise
            self.close_connection = True
            if self._served and not self._line_in:
                # A keep-alive connection that sent no new request: closed
                # quietly, as an idle connection, not answered and logged
                # as a request (the log line would repeat the previous one).
                logger.debug("closing idle keep-alive connection from %s after %gs",
                             _peer(self.client_address), timeout)
                return None
            logger.info("request head from %s did not arrive within %gs",
                        _peer(self.client_address), timeout)
            self.requestline = ""  # what came of this request (not the previous one)
            self.time_start = time.time() - timeout
            return ("408", _TIMEOUT_RESPONSE)
        finally:
            self._end_head_deadline()

    def read_requestline(self) -> str:
        line: str = super().read_requestline()
        # Bytes of a new request came (the deadline then means a slow
        # client, not an idle keep-alive connection).
        self._line_in = bool(line)
        return line

    def _end_head_deadline(self) -> None:
        deadline = self._head_deadline
        if deadline is not None:
            self._head_deadline = None
            deadline.close()

    def read_request(self, raw_requestline: str) -> Any:
        result = super().read_request(raw_requestline)
        # The head is in: the application runs without the deadline.
        self._end_head_deadline()
        self._served += 1
        return result

    def MessageClass(self, fp: Any, *args: Any) -> Any:  # noqa: N802 (pywsgi's name)
        limit = server_settings(self.server).options.max_request_size
        if limit is not None:
            fp = _HeadLimit(fp, limit - len(getattr(self, "requestline", "") or ""))
        return super().MessageClass(fp, *args)

    def _handle_client_error(self, ex: BaseException) -> Any:
        if isinstance(ex, _HeadTooLarge):
            logger.info("request head from %s exceeds %d bytes",
                        _peer(self.client_address),
                        server_settings(self.server).options.max_request_size)
            self.close_connection = True
            return ("431", _TOO_LARGE_RESPONSE)
        if isinstance(ex, (ConnectionError, TimeoutError)):
            # The client left (or reset) in the middle of its request head:
            # nothing to answer and nothing wrong with the server.
            logger.debug("client %s gone during its request head: %s",
                         _peer(self.client_address), ex)
            self.close_connection = True
            return None
        # Not in the gevent stubs: a documented pywsgi hook for subclasses.
        return super()._handle_client_error(ex)  # type: ignore[misc, unused-ignore]

    def run_application(self) -> None:
        environ = cast(Environ, self.environ)
        # gevent-websocket's hook, called for every request: true means
        # "serve it as plain WSGI", even an upgrade request.
        pre_start_hook = getattr(self.server, "pre_start_hook", None)
        if pre_start_hook and pre_start_hook(self):
            super().run_application()
            return
        if not asks_for_websocket(environ):
            super().run_application()
            return
        owner = find_routing_app(self.application)
        if owner is not None and is_sock_view(routed_view(owner, environ)):
            self._run_deferred(environ)
            return
        # The handshake runs in its own frame, so that what it needed (the
        # policy, the response headers) is gone while the application runs.
        ws = self._accept(environ)
        if ws is None:
            return
        upgrade = Upgrade(Route.HANDLER, _upgraded_already)
        upgrade.accepted(ws)
        if self.prevent_wsgi_call:
            return  # the caller runs the WebSocket (self.websocket)
        environ[UPGRADE_KEY] = upgrade
        try:
            self._add_client(ws)
            prepare_routing_app(self.application, environ)
            SessionRunner(upgrade).run(self.application, environ)
        finally:
            self._forget()

    def _accept(self, environ: Environ) -> Optional[WebSocket]:
        """Validate the upgrade request and switch protocols; the WebSocket,
        or None when the request was refused (and answered)."""
        application: Any = self.application
        policy = server_settings(self.server).policy
        try:
            negotiated = negotiate(
                environ, _request_headers(self.headers, environ), [policy],
                _app_subprotocols(application, environ, policy))
        except Refusal as refusal:
            self._reject(refusal)
            return None
        except Exception:
            logger.exception("WebSocket handshake for %s: on_upgrade failed",
                             environ.get("PATH_INFO"))
            self._reject(Refusal(500, "WebSocket handshake failed: server error\n"))
            return None
        return self._switch_protocols(negotiated, {}, WebSocket)

    def _run_deferred(self, environ: Environ) -> None:
        """A ``pyws.flask.Sock`` route: the application is called with the
        upgrade request as it is and an ``Upgrade`` whose ``accept`` the
        route calls with its own options to perform the handshake (the
        server's options apply too).  Until then nothing is sent, so the
        route can still refuse with any HTTP answer."""
        server_policy = server_settings(self.server).policy

        def accept(policies: Sequence[HandshakePolicy], overrides: Mapping[str, Any],
                   websocket_class: Type[WebSocket]) -> WebSocket:
            negotiated = negotiate(environ, _request_headers(self.headers, environ),
                                   [server_policy, *policies])
            ws = self._switch_protocols(negotiated, overrides, websocket_class)
            self._add_client(ws)
            return ws

        upgrade = Upgrade(Route.HANDLER, accept)
        environ[UPGRADE_KEY] = upgrade
        prepare_routing_app(self.application, environ)
        # pywsgi's run_application, with the runner between the application
        # and pywsgi's start_response: an HTTP answer goes out as usual, a
        # session is closed by the rule and nothing more is written.
        try:
            self.result = SessionRunner(upgrade, self.start_response).run(
                self.application, environ)
            if self.result is not None:
                self.process_result()
        finally:
            close = getattr(self.result, "close", None)
            self.result = None
            try:
                if close is not None:
                    close()
            finally:
                if upgrade.websocket is not None:
                    self._forget()

    def _add_client(self, ws: WebSocket) -> None:
        """Enter the WebSocket in ``server.clients`` for as long as the
        application runs (``_forget`` takes it out); a server without
        ``clients`` (a plain ``WSGIServer``) is given the dict."""
        clients: Optional[Dict[Any, Client]] = getattr(self.server, "clients", None)
        if clients is None:
            self.server.clients = {}
            # Read back: the server may keep the dict in a form of its own.
            clients = self.server.clients
        clients[self.client_address] = Client(self.client_address, ws)

    def _forget(self) -> None:
        clients: Optional[Dict[Any, Client]] = getattr(self.server, "clients", None)
        if clients is not None:
            client = clients.get(self.client_address)
            if client is not None and client.ws is self.websocket:
                del clients[self.client_address]
        self.websocket = None
        self.close_connection = True

    def _reject(self, refusal: Refusal) -> None:
        """Answer a refused upgrade request with its status and reason."""
        environ = cast(Environ, self.environ)
        logger.info("refused WebSocket handshake from %s for %s: %s (%d)",
                    _peer(self.client_address), environ.get("PATH_INFO"),
                    refusal.body.decode("utf-8", "replace").strip(), refusal.status)
        self.close_connection = True
        self.start_response(refusal.status_line, refusal.response_headers())
        self.write(refusal.body)

    def _switch_protocols(self, negotiated: Negotiated, overrides: Mapping[str, Any],
                          websocket_class: Type[WebSocket]) -> WebSocket:
        """Send the 101 response now, through pywsgi's own ``start_response``
        and ``write`` so that its state says headers are sent and it writes
        nothing more (no body framing: a 101 has none); then build the
        WebSocket, with the server's connection options unless ``overrides``
        (a ``Sock``'s, checked already) changes some."""
        environ = cast(Environ, self.environ)
        self.close_connection = True
        self.start_response("101 Switching Protocols", negotiated.headers)
        self.write(b"")
        options = server_settings(self.server).options
        if overrides:
            options = options.replace(**overrides)
        rfile = self.rfile
        ws = new_websocket(self.socket, environ, negotiated.subprotocol, options,
                           rfile=rfile, deflate=negotiated.deflate, cls=websocket_class)
        self._let_go_of_reader(rfile, environ)
        ws.handler = self
        self.websocket = ws
        self.logger.debug("WebSocket opened for %s from %s", environ.get("PATH_INFO"),
                          _peer(self.client_address))
        self.websocket_opened(ws)
        self._shed_request_state()
        return ws

    def _let_go_of_reader(self, rfile: Any, environ: Environ) -> None:
        """The WebSocket took what pywsgi's reader held and closed it; the
        handler, its ``Input`` and ``environ['wsgi.input']`` now share one
        closed reader instead (reading it fails the same way)."""
        if rfile is None or not getattr(rfile, "closed", False):
            return
        self.rfile = _CLOSED_READER
        wsgi_input: Any = self.wsgi_input
        if getattr(wsgi_input, "rfile", None) is rfile:
            wsgi_input.rfile = _CLOSED_READER
        if environ.get("wsgi.input") is rfile:
            environ["wsgi.input"] = _CLOSED_READER

    def _shed_request_state(self) -> None:
        """Let go, for the lifetime of the WebSocket, of the attributes named
        in ``shed_after_upgrade``: reading one gives pywsgi's class default.
        The others go into a fresh dict: the instance dict pywsgi fills
        (about 30 names, in an order that varies with the requests served)
        is often a 1.5 KiB table; 21 names fit a 0.5 KiB one."""
        shed = self.shed_after_upgrade
        self.__dict__ = {name: value for name, value in self.__dict__.items()
                         if name not in shed}

    def websocket_opened(self, ws: WebSocket) -> None:
        """Called with each WebSocket this handler opens, before the
        application uses it (a hook for subclasses; does nothing)."""


def _upgraded_already(policies: Sequence[HandshakePolicy],
                      limits: Mapping[str, Optional[float]],
                      websocket_class: Type[WebSocket]) -> WebSocket:
    raise RuntimeError("this request was upgraded already")


def _app_subprotocols(application: Any, environ: Environ,
                      policy: HandshakePolicy) -> Optional[List[str]]:
    """The subprotocols to offer: an application with ``app_protocol(path)``
    (``pyws.resource.Resource``, as in gevent-websocket) names its own,
    preferred over the server's."""
    app_protocol = getattr(application, "app_protocol", None)
    if not callable(app_protocol):
        return policy.subprotocols
    name = app_protocol(environ.get("PATH_INFO", ""))
    if not name:
        return policy.subprotocols
    return [str(name)] + [p for p in policy.subprotocols or () if p != name]


def _request_headers(headers: Any, environ: Environ) -> List[Tuple[str, str]]:
    """The request headers as (name, value) pairs, each field as it was sent:
    pywsgi's header object keeps repeated fields apart (the environ joins
    them with commas, which would hide a second Host or key)."""
    items = getattr(headers, "items", None)
    if items is not None:
        return [(str(name), str(value)) for name, value in items()]
    return [(key[5:].replace("_", "-"), value)
            for key, value in environ.items() if key.startswith("HTTP_")]


def _status_code(status: Any) -> Optional[int]:
    """The number of a status line (str or bytes), None if there is none."""
    if isinstance(status, bytes):
        status = status.decode("latin-1")
    try:
        return int(str(status).split(None, 1)[0])
    except (ValueError, IndexError):
        return None


def _peer(address: Any) -> str:
    if isinstance(address, tuple) and address:
        return str(address[0])
    return str(address or "-")
