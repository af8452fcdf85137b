"""The server side of the opening handshake, shared by every way pyws serves.

Nothing here imports gevent: the gevent handler (``pyws.handler``), the
Flask extension (``pyws.flask``) and the upgrade on a raw socket under the
Werkzeug development server or gunicorn's threaded workers all validate
requests, apply the handshake options (``HandshakePolicy``) and run
WebSocket applications with the functions below.
"""
from __future__ import annotations

import logging
import re
import socket
import sys
from http import HTTPStatus
from typing import (Any, Callable, Dict, FrozenSet, Iterable, List, Mapping,
                    NamedTuple, Optional, Sequence, Tuple, Union)
from urllib.parse import urlsplit

from . import _core
from .compression import Compression, PerMessageDeflate, resolve
from .exceptions import ConnectionClosed, HandshakeError, ProtocolError
from .websocket import (DEFAULT_CLOSE_TIMEOUT, DEFAULT_PING_TIMEOUT, WebSocket,
                        check_non_negative, drain_buffered)

__all__ = ["Environ", "HeaderList", "UpgradeRefusal", "OnUpgrade", "HandshakePolicy",
           "Refusal", "Negotiated", "Deflate", "negotiate", "asks_for_websocket", "environ_headers",
           "LIMIT_DEFAULTS", "check_limits", "new_websocket", "raw_socket", "accept_raw",
           "WebSocketEndFilter", "find_routing_app", "routed_view", "is_sock_view",
           "present_mismatch_as_get", "quiet_flask_logger"]

logger = logging.getLogger("pyws.handler")

Environ = Dict[str, Any]
HeaderList = List[Tuple[str, str]]
#: What an ``on_upgrade`` hook returns to refuse: ``(status, headers, body)``,
#: status an int (403) or a status line ("403 Forbidden").
UpgradeRefusal = Tuple[Union[int, str], Sequence[Tuple[str, str]], Union[str, bytes]]
#: ``on_upgrade(environ)``: None lets the upgrade go on; a refusal is answered.
OnUpgrade = Callable[[Environ], Optional[UpgradeRefusal]]
#: permessage-deflate as agreed: the four parameters and this side's settings.
Deflate = Tuple[Tuple[bool, bool, int, int], PerMessageDeflate]


class Negotiated(NamedTuple):
    """The outcome of an accepted upgrade request."""

    headers: HeaderList             #: the ``101`` response's headers
    subprotocol: Optional[str]
    deflate: Optional[Deflate]      #: None: no compression

#: The connection options and their defaults (None: off / no limit).
LIMIT_DEFAULTS: Mapping[str, Optional[float]] = {
    "max_message_size": _core.DEFAULT_MAX_MESSAGE_SIZE,
    "close_timeout": DEFAULT_CLOSE_TIMEOUT,
    "ping_interval": None,
    "ping_timeout": DEFAULT_PING_TIMEOUT,
    "idle_timeout": None,
}

# How many wrapper levels (middleware) to look through for a Werkzeug url_map.
_MAX_APP_DEPTH = 5
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Headers the handshake writes itself, or that would corrupt a 101 response.
_RESERVED_RESPONSE_HEADERS = frozenset({
    "upgrade", "connection", "sec-websocket-accept", "sec-websocket-protocol",
    "sec-websocket-extensions", "sec-websocket-version", "content-length",
    "transfer-encoding",
})


# -- refusals ----------------------------------------------------------------

class Refusal(Exception):
    """An upgrade request answered with an HTTP error instead of ``101``."""

    def __init__(self, status: int, body: Union[str, bytes],
                 headers: Sequence[Tuple[str, str]] = ()) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        self.headers: HeaderList = list(headers)

    @property
    def status_line(self) -> str:
        try:
            phrase = HTTPStatus(self.status).phrase
        except ValueError:
            phrase = "Unknown"
        return f"{self.status} {phrase}"

    def response_headers(self) -> HeaderList:
        """The headers to send: the refusal's own, plus a plain-text
        Content-Type unless given, the length, and ``Connection: close``."""
        names = {name.lower() for name, _ in self.headers}
        headers = [(n, v) for n, v in self.headers
                   if n.lower() not in ("content-length", "connection")]
        if "content-type" not in names:
            headers.append(("Content-Type", "text/plain; charset=utf-8"))
        headers.append(("Content-Length", str(len(self.body))))
        headers.append(("Connection", "close"))
        return headers

    @classmethod
    def from_handshake_error(cls, exc: HandshakeError) -> Refusal:
        return cls(exc.status, f"WebSocket handshake failed: {exc}\n", exc.headers)

    @classmethod
    def from_hook(cls, result: object) -> Refusal:
        """The refusal an ``on_upgrade`` hook returned; TypeError or
        ValueError when it is not ``(status, headers, body)``."""
        if not isinstance(result, tuple) or len(result) != 3:
            raise TypeError("on_upgrade must return None or (status, headers, body), "
                            f"not {result!r}")
        status, headers, body = result
        if isinstance(status, str):
            try:
                code = int(status.split(None, 1)[0])
            except (ValueError, IndexError):
                raise ValueError(f"on_upgrade: bad status {status!r}") from None
        elif isinstance(status, int) and not isinstance(status, bool):
            code = status
        else:
            raise TypeError(f"on_upgrade: the status is an int or a str, not {status!r}")
        if not 200 <= code <= 599:
            raise ValueError(f"on_upgrade: status {code} cannot refuse an upgrade "
                             "(use 200-599)")
        if not isinstance(body, (str, bytes)):
            raise TypeError(f"on_upgrade: the body is str or bytes, not {type(body).__name__}")
        return cls(code, body, _checked_headers(headers, "on_upgrade", reserved=False))


def _checked_headers(headers: Iterable[Tuple[str, str]], what: str,
                     reserved: bool) -> HeaderList:
    if isinstance(headers, (str, bytes)) or isinstance(headers, Mapping):
        raise TypeError(f"{what}: headers are a sequence of (name, value) pairs")
    checked: HeaderList = []
    for item in headers:
        if not (isinstance(item, tuple) and len(item) == 2
                and isinstance(item[0], str) and isinstance(item[1], str)):
            raise TypeError(f"{what}: a header is a (name, value) pair of str, not {item!r}")
        name, value = item
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"{what}: bad header name {name!r}")
        if "\r" in value or "\n" in value or "\0" in value:
            raise ValueError(f"{what}: bad value for header {name}")
        if reserved and name.lower() in _RESERVED_RESPONSE_HEADERS:
            raise ValueError(f"{what}: the {name} header is written by the handshake")
        checked.append((name, value))
    return checked


# -- the handshake options ---------------------------------------------------

def _origin_key(value: str) -> Optional[str]:
    """``scheme://host[:port]`` in canonical form (lower case, default port
    dropped), "null" for the opaque origin; None when ``value`` is not an
    origin."""
    value = value.strip()
    if value.lower() == "null":
        return "null"
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if (not scheme or not host or parts.username is not None
            or parts.password is not None or parts.path or parts.query
            or parts.fragment or "?" in value or "#" in value):
        return None
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


class HandshakePolicy:
    """The handshake options of a server or of a ``Sock``.

    - ``origins``: None (every origin), or the allowed origins, exact
      ``scheme://host[:port]`` strings (host case-insensitive, a default port
      may be given or not; ``"null"`` for the opaque origin).  A request
      whose ``Origin`` is not among them is answered 403.  A request without
      ``Origin`` (not from a browser) is allowed.
    - ``subprotocols``: supported subprotocols, in order of preference.
    - ``extra_headers``: (name, value) pairs added to the ``101`` response.
    - ``on_upgrade(environ)``: called for a valid upgrade request, before
      the ``101``; returning ``(status, headers, body)`` refuses it with that
      answer, returning None lets it go on.
    - ``compression``: permessage-deflate, True / False / a
      ``PerMessageDeflate``; None leaves it to the other policies (on by
      default).
    """

    __slots__ = ("origins", "subprotocols", "extra_headers", "on_upgrade", "compression")

    def __init__(self, origins: Optional[Iterable[str]] = None,
                 subprotocols: Optional[Sequence[str]] = None,
                 extra_headers: Optional[Iterable[Tuple[str, str]]] = None,
                 on_upgrade: Optional[OnUpgrade] = None,
                 compression: Compression = None) -> None:
        allowed: Optional[FrozenSet[str]] = None
        if origins is not None:
            if isinstance(origins, (str, bytes)):
                raise TypeError("origins is a list of origins, not a str")
            keys = set()
            for origin in origins:
                if not isinstance(origin, str):
                    raise TypeError(f"an origin is a str, not {origin!r}")
                key = _origin_key(origin)
                if key is None:
                    raise ValueError(f"not an origin: {origin!r} (an origin is "
                                     "scheme://host[:port], without a path)")
                keys.add(key)
            allowed = frozenset(keys)
        if isinstance(subprotocols, (str, bytes)):
            raise TypeError("subprotocols is a sequence of names, not a str")
        if on_upgrade is not None and not callable(on_upgrade):
            raise TypeError("on_upgrade must be callable")
        #: The allowed origins in canonical form, or None for all.
        self.origins = allowed
        self.subprotocols: Optional[List[str]] = (list(subprotocols) if subprotocols
                                                  else None)
        self.extra_headers: HeaderList = _checked_headers(
            extra_headers or (), "extra_headers", reserved=True)
        self.on_upgrade = on_upgrade
        resolve(compression)  # TypeError for anything else
        self.compression = compression

    @classmethod
    def of_server(cls, server: object) -> HandshakePolicy:
        """The options a server object holds as attributes (those of
        ``WebSocketServer``; absent ones take their defaults)."""
        return cls(origins=getattr(server, "origins", None),
                   subprotocols=getattr(server, "subprotocols", None) or None,
                   extra_headers=getattr(server, "extra_headers", None),
                   on_upgrade=getattr(server, "on_upgrade", None),
                   compression=getattr(server, "compression", None))

    def origin_allowed(self, origins: Sequence[str]) -> bool:
        """Whether a request carrying these ``Origin`` values may upgrade."""
        if self.origins is None or not origins:
            return True
        if len(origins) > 1:
            return False  # ambiguous: never sent by a browser
        key = _origin_key(origins[0])
        return key is not None and key in self.origins


def asks_for_websocket(environ: Environ) -> bool:
    """Whether the request says ``Upgrade: websocket``."""
    upgrade = environ.get("HTTP_UPGRADE")
    if not upgrade:
        return False
    return any(token.strip().lower() == "websocket" for token in upgrade.split(","))


def environ_headers(environ: Environ) -> HeaderList:
    """The request headers rebuilt from the environ (repeated fields arrive
    joined with commas, as the server put them)."""
    return [(key[5:].replace("_", "-"), str(value))
            for key, value in environ.items() if key.startswith("HTTP_")]


def negotiate(environ: Environ, headers: Sequence[Tuple[str, str]],
              policies: Sequence[HandshakePolicy],
              subprotocols: Optional[Sequence[str]] = None) -> Negotiated:
    """Validate an upgrade request and apply the options.

    Returns the headers of the ``101`` response, the selected subprotocol
    and the permessage-deflate agreement.  Raises ``Refusal``: 400, 405 or
    426 for a broken request (the C engine's checks; 400 too for a malformed
    Sec-WebSocket-Extensions), 403 for an origin one of ``policies`` does not
    allow, or what an ``on_upgrade`` hook answered.  ``subprotocols``
    defaults to the last policy's that has some, compression to the last
    policy's that says.  Exceptions raised by hooks propagate.
    """
    if subprotocols is None:
        for policy in policies:
            if policy.subprotocols:
                subprotocols = policy.subprotocols
    try:
        accept, subprotocol = _core.check_request(
            str(environ.get("REQUEST_METHOD", "")),
            str(environ.get("SERVER_PROTOCOL", "")), headers,
            subprotocols=subprotocols or None)
    except HandshakeError as exc:
        raise Refusal.from_handshake_error(exc) from None
    origins = [value for name, value in headers if name.lower() == "origin"]
    for policy in policies:
        if not policy.origin_allowed(origins):
            shown = origins[0] if len(origins) == 1 else ", ".join(origins)
            raise Refusal(403, f"WebSocket handshake refused: origin {shown!r} "
                               "is not allowed\n")
    for policy in policies:
        if policy.on_upgrade is not None:
            result = policy.on_upgrade(environ)
            if result is not None:
                raise Refusal.from_hook(result)
    response = _core.response_headers(accept, subprotocol)
    deflate = _negotiate_deflate(headers, policies)
    if deflate is not None:
        response.append(("Sec-WebSocket-Extensions", deflate[0]))
    for policy in policies:
        response.extend(policy.extra_headers)
    return Negotiated(response, subprotocol, deflate[1] if deflate else None)


def _negotiate_deflate(headers: Sequence[Tuple[str, str]],
                       policies: Sequence[HandshakePolicy]
                       ) -> Optional[Tuple[str, Deflate]]:
    """The Sec-WebSocket-Extensions answer and the agreement, or None."""
    choice: Compression = True
    for policy in policies:
        if policy.compression is not None:
            choice = policy.compression
    settings = resolve(choice)
    if settings is None:
        return None
    try:
        agreed = _core.negotiate_deflate(headers, settings.params())
    except HandshakeError as exc:
        raise Refusal.from_handshake_error(exc) from None
    if agreed is None:
        return None
    value, params = agreed
    return value, (params, settings)


# -- connection options ------------------------------------------------------

def check_limits(options: Mapping[str, Optional[float]]) -> Dict[str, Optional[float]]:
    """Validate connection options (the names of ``LIMIT_DEFAULTS``)."""
    unknown = set(options) - set(LIMIT_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}; "
                        f"known: {', '.join(LIMIT_DEFAULTS)}")
    checked = dict(options)
    if "max_message_size" in checked:
        size = checked["max_message_size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"max_message_size must be an int >= 0 (0: no limit), "
                             f"not {size!r}")
    check_non_negative(**{k: v for k, v in checked.items() if k != "max_message_size"})
    return checked


def new_websocket(sock: socket.socket, environ: Environ, subprotocol: Optional[str],
                  limits: Mapping[str, Optional[float]], *, rfile: Any = None,
                  pending: bytes = b"", close_socket: bool = True,
                  deflate: Optional[Deflate] = None) -> WebSocket:
    """The server-side WebSocket of an accepted upgrade request."""
    def limit(name: str) -> Optional[float]:
        return limits.get(name, LIMIT_DEFAULTS[name])

    size = limit("max_message_size")
    return WebSocket(
        sock, new_protocol(True, int(size or 0), deflate),
        rfile=rfile, environ=environ, path=environ.get("PATH_INFO"),
        origin=environ.get("HTTP_ORIGIN"), subprotocol=subprotocol, version="13",
        close_timeout=limit("close_timeout"), ping_interval=limit("ping_interval"),
        ping_timeout=limit("ping_timeout"), idle_timeout=limit("idle_timeout"),
        pending=pending, close_socket=close_socket)


def new_protocol(server: bool, max_message_size: int,
                 deflate: Optional[Deflate]) -> _core.Protocol:
    """The C engine for one connection, with the agreed compression."""
    if deflate is None:
        return _core.Protocol(server=server, max_message_size=max_message_size)
    params, settings = deflate
    return _core.Protocol(server=server, max_message_size=max_message_size, deflate=params,
                          deflate_level=settings.level,
                          deflate_mem_level=settings.mem_level)


# -- the upgrade on a server's raw socket ---------------------------------------

def raw_socket(environ: Environ) -> Optional[socket.socket]:
    """The connection's socket, where the server exposes it: Werkzeug's
    development server (``werkzeug.socket``) and gunicorn's sync, gthread
    and gevent workers (``gunicorn.socket``)."""
    sock = environ.get("werkzeug.socket")
    if sock is None:
        sock = environ.get("gunicorn.socket")
    return sock if isinstance(sock, socket.socket) else None


def _buffered_input(environ: Environ, sock: socket.socket) -> bytes:
    """Bytes the server read past the request head (frames a client sent
    right behind its handshake), taken out of its input buffer."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    if hasattr(stream, "peek") and hasattr(stream, "read1"):
        return drain_buffered(stream, sock)  # Werkzeug: the socket's BufferedReader
    # gunicorn: Body -> reader -> unreader, whose buffer holds the read-ahead.
    unreader = getattr(getattr(stream, "reader", None), "unreader", None)
    take = getattr(unreader, "take_buffered", None)
    if callable(take):
        data = take()
        return bytes(data) if isinstance(data, (bytes, bytearray)) else b""
    buf: Any = getattr(unreader, "buf", None)
    getvalue = getattr(buf, "getvalue", None)
    if callable(getvalue):
        data = getvalue()
        if isinstance(data, bytes) and data:
            buf.seek(0)
            buf.truncate()
            return data
    return b""


def accept_raw(environ: Environ, policies: Sequence[HandshakePolicy],
               limits: Mapping[str, Optional[float]]) -> WebSocket:
    """Upgrade on the server's raw socket: validate, write the ``101``
    ourselves, return the WebSocket.  Raises ``Refusal`` (500 for a valid
    request when the server does not expose its socket) and OSError if the
    client is gone."""
    headers, subprotocol, deflate = negotiate(environ, environ_headers(environ), policies)
    sock = raw_socket(environ)
    if sock is None:
        raise Refusal(500, "WebSocket not supported by this server: it gives the "
                           "application no access to the connection; run the app "
                           "under pyws.WebSocketServer, gunicorn (gthread worker or "
                           "pyws.gunicorn.GeventWebSocketWorker) or Werkzeug's "
                           "development server\n")
    pending = _buffered_input(environ, sock)
    head = "HTTP/1.1 101 Switching Protocols\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
    sock.sendall(head.encode("latin-1"))
    # The server closes its socket itself, after its own bookkeeping.
    return new_websocket(sock, environ, subprotocol, limits, pending=pending,
                         close_socket=False, deflate=deflate)


# -- Werkzeug / Flask routing --------------------------------------------------

def find_routing_app(app: Any) -> Any:
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


def routed_view(owner: Any, environ: Environ) -> Any:
    """The view function ``owner`` (a Flask app) routes this request to, or
    None (no match, redirect, wrong method...)."""
    try:
        rule, _args = owner.url_map.bind_to_environ(environ).match(return_rule=True)
    except Exception:
        return None
    views = getattr(owner, "view_functions", None)
    return views.get(rule.endpoint) if isinstance(views, dict) else None


def is_sock_view(view: Any) -> bool:
    """Whether ``view`` is a ``pyws.flask.Sock`` route, which upgrades by itself."""
    return bool(getattr(view, "_pyws_sock", False))


def prepare_routing_app(app: Any, environ: Environ) -> None:
    """Adapt a Werkzeug/Flask application to a WebSocket request."""
    owner = find_routing_app(app)
    if owner is None:
        return
    present_mismatch_as_get(owner.url_map, environ)
    app_logger = getattr(owner, "logger", None)
    if isinstance(app_logger, logging.Logger) and hasattr(owner, "log_exception"):
        quiet_flask_logger(app_logger)


def present_mismatch_as_get(url_map: Any, environ: Environ) -> None:
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


class WebSocketEndFilter(logging.Filter):
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


def quiet_flask_logger(app_logger: logging.Logger) -> None:
    for existing in app_logger.filters:
        if isinstance(existing, WebSocketEndFilter):
            return
    app_logger.addFilter(WebSocketEndFilter())
