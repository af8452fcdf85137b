"""The server side of the opening handshake: what to answer, and with what.

Validates an upgrade request (the C engine's checks), applies the handshake
options of a server or a ``Sock`` (``HandshakePolicy``: origins,
subprotocols, extra headers, ``on_upgrade``, compression) and gives the
``101`` response's headers (``negotiate``) or a ``Refusal``, the HTTP error
to send instead.  It neither reads nor writes a socket: the gevent handler
and the raw-socket upgrade (``pyws._raw_socket``) do, each its own way.
"""
from __future__ import annotations

import re
import socket
from http import HTTPStatus
from typing import (
    Any,
    Callable,
    Dict,
    FrozenSet,
    Iterable,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Type,
    Union,
)
from urllib.parse import urlsplit

from . import _core
from .compression import Compression, PerMessageDeflate, resolve
from .exceptions import HandshakeError
from .options import Options
from .websocket import WebSocket

__all__ = ["Environ", "HeaderList", "UpgradeRefusal", "OnUpgrade", "Deflate", "Negotiated",
           "Refusal", "HandshakePolicy", "asks_for_websocket", "environ_headers",
           "negotiate", "switching_protocols", "response_head", "status_phrase",
           "new_websocket", "new_protocol"]

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
        return f"{self.status} {status_phrase(self.status) or 'Unknown'}"

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
    if isinstance(headers, (str, bytes, Mapping)):
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
    def from_options(cls, options: Options, compression: bool = True) -> HandshakePolicy:
        """The handshake options of ``options``; ``compression=False``
        leaves compression to the other policies (a ``Sock`` that did not
        set it follows the server)."""
        return cls(origins=options.origins, subprotocols=options.subprotocols,
                   extra_headers=options.extra_headers, on_upgrade=options.on_upgrade,
                   compression=options.compression if compression else None)

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
    joined with commas, as the server put them).  WSGI keeps Content-Length
    and Content-Type out of the HTTP_ keys; the body check needs the first."""
    headers = [(key[5:].replace("_", "-"), str(value))
               for key, value in environ.items() if key.startswith("HTTP_")]
    for key, name in (("CONTENT_LENGTH", "Content-Length"), ("CONTENT_TYPE", "Content-Type")):
        value = environ.get(key)
        if value:  # servers put "" for a request without the header
            headers.append((name, str(value)))
    return headers


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


def new_websocket(sock: socket.socket, environ: Environ, subprotocol: Optional[str],
                  options: Options, *, rfile: Any = None,
                  pending: bytes = b"", close_socket: bool = True,
                  deflate: Optional[Deflate] = None,
                  cls: Type[WebSocket] = WebSocket) -> WebSocket:
    """The server-side WebSocket of an accepted upgrade request."""
    return cls(
        sock, new_protocol(True, options.max_message_size, deflate),
        rfile=rfile, environ=environ, path=environ.get("PATH_INFO"),
        origin=environ.get("HTTP_ORIGIN"), subprotocol=subprotocol,
        protocol=environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL"), version="13",
        close_timeout=options.close_timeout, ping_interval=options.ping_interval,
        ping_timeout=options.ping_timeout, idle_timeout=options.idle_timeout,
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



def status_phrase(status: int) -> str:
    """The reason phrase of an HTTP status ("" for a code without one)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def response_head(status: int, headers: Sequence[Tuple[str, str]],
                  phrase: Optional[str] = None) -> bytes:
    """An HTTP/1.1 response head: the status line (``phrase`` by default
    the status's own) and ``headers``."""
    if phrase is None:
        phrase = status_phrase(status)
    head = f"HTTP/1.1 {status} {phrase}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
    return head.encode("latin-1")


def switching_protocols(headers: Sequence[Tuple[str, str]]) -> bytes:
    """The ``101`` response head, for a route that writes it itself."""
    return response_head(101, headers)
