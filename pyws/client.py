"""The client side: ``connect(url)`` opens a :class:`pyws.WebSocket`."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union
from urllib.parse import urlsplit

from . import _core
from ._handshake import new_protocol
from .compression import Compression, PerMessageDeflate, resolve
from .exceptions import HandshakeError
from .options import DEFAULTS, Options, check_seconds
from .transport import client_modules
from .websocket import WebSocket

if TYPE_CHECKING:
    import socket
    import ssl

__all__ = ["connect"]

Headers = Union[Mapping[str, str], Sequence[Tuple[str, str]]]

# Written by the handshake itself; a second copy would make the request invalid.
_RESERVED_HEADERS = frozenset({
    "host", "upgrade", "connection", "sec-websocket-key",
    "sec-websocket-version", "sec-websocket-protocol", "sec-websocket-extensions",
})
_MAX_RESPONSE_HEAD = 65536
_READ_SIZE = 65536
#: How much of a refusing server's body goes into the HandshakeError.
_BODY_SHOWN = 512


class _Target(NamedTuple):
    secure: bool
    host: str  # for connecting: no brackets around IPv6 addresses
    port: int
    host_header: str
    resource: str


def connect(url: str, subprotocols: Optional[Sequence[str]] = None,
            headers: Optional[Headers] = None, timeout: Optional[float] = None,
            max_message_size: int = DEFAULTS.max_message_size,
            origin: Optional[str] = None, *,
            ssl_context: Optional[ssl.SSLContext] = None,
            close_timeout: Optional[float] = DEFAULTS.close_timeout,
            ping_interval: Optional[float] = DEFAULTS.ping_interval,
            ping_timeout: Optional[float] = DEFAULTS.ping_timeout,
            idle_timeout: Optional[float] = DEFAULTS.idle_timeout,
            compression: Compression = DEFAULTS.compression,
            options: Optional[Options] = None) -> WebSocket:
    """Open a WebSocket connection to ``url`` and return it.

    ``url`` is ``ws://host[:port]/path[?query]`` or ``wss://...``; wss uses
    ``ssl_context``, by default ``ssl.create_default_context()`` (certificate
    and host name verified).
    ``subprotocols`` are offered in order; the one the server selected is the
    WebSocket's ``subprotocol``.  ``headers`` (a mapping or (name, value) pairs)
    are added to the request, as is ``Origin`` when ``origin`` is given.
    ``max_message_size``, ``close_timeout``, ``ping_interval``,
    ``ping_timeout``, ``idle_timeout``, ``compression`` (offered;
    ``ws.compressed`` tells whether the server accepted it): the connection
    options of :class:`pyws.options.Options`, checked there; ``options``
    gives them as one object (the keywords then must be left out).

    ``timeout`` (seconds, None: none) bounds the TCP connect plus the opening
    handshake as a whole; afterwards the socket is blocking again, so use
    ``close_timeout`` and your own timeouts for the rest.

    Blocking: it works in plain threads.  Under gevent it cooperates when
    gevent has monkey-patched ``socket``, or, unpatched, when called from a
    greenlet other than the main one (gevent's socket is used then; give
    such a caller's wss ``ssl_context`` as a ``gevent.ssl.SSLContext``).

    Raises ValueError for a bad URL, HandshakeError (``status``: the
    server's status, 0 if the answer was not HTTP) when the server refuses
    or answers wrongly, OSError (TimeoutError included) for network errors.
    """
    request = prepare(url, subprotocols, headers, origin, options, timeout,
                      max_message_size=max_message_size, close_timeout=close_timeout,
                      ping_interval=ping_interval, ping_timeout=ping_timeout,
                      idle_timeout=idle_timeout, compression=compression)
    target = request.target
    deadline = None if timeout is None else time.monotonic() + timeout
    socket_module, ssl_module = client_modules()
    sock = socket_module.create_connection((target.host, target.port), timeout)
    try:
        if target.secure:
            context = ssl_context or ssl_module.create_default_context()
            _set_remaining(sock, deadline)
            sock = context.wrap_socket(sock, server_hostname=target.host)
        _set_remaining(sock, deadline)
        sock.sendall(request.data)
        buf = bytearray()
        while True:
            _set_remaining(sock, deadline)
            chunk = sock.recv(_READ_SIZE)
            if not chunk:
                raise HandshakeError("the server closed the connection during "
                                     "the opening handshake", 0)
            buf += chunk
            try:
                answer = request.check_response(buf)
            except HandshakeError as exc:
                raise _with_answer(exc, buf, sock, deadline) from None
            if answer is not None:
                break
        sock.settimeout(None)
    except BaseException:
        sock.close()
        raise
    return request.websocket(sock, answer)


class Request:
    """A client's opening handshake, apart from the I/O (shared by this
    module's ``connect`` and ``pyws.asyncio.connect``): the URL's parts,
    the request's bytes, and the checks of the server's answer."""

    __slots__ = ("target", "data", "key", "subprotocols", "origin", "settings", "options",
                 "timeout")

    def __init__(self, target: _Target, data: bytes, key: str,
                 subprotocols: Optional[Sequence[str]], origin: Optional[str],
                 settings: Optional[PerMessageDeflate], options: Options,
                 timeout: Optional[float]) -> None:
        self.target = target
        #: The request head to send.
        self.data = data
        self.key = key
        self.subprotocols = subprotocols
        self.origin = origin
        self.settings = settings
        self.options = options
        #: The bound on the TCP connect plus the handshake (seconds or None).
        self.timeout = timeout

    def check_response(self, buf: bytearray) -> Optional[Answer]:
        """The server's answer once its head is complete in ``buf``, else
        None; HandshakeError when it refuses or answers wrongly."""
        settings = self.settings
        parsed = _core.check_response(buf, self.key, self.subprotocols,
                                      settings.params() if settings else None)
        if parsed is None:
            if len(buf) > _MAX_RESPONSE_HEAD:
                raise HandshakeError("the server's response head exceeds "
                                     f"{_MAX_RESPONSE_HEAD} bytes", 0)
            return None
        head_length, selected, headers, agreed = parsed
        protocol = new_protocol(False, self.options.max_message_size,
                                (agreed, settings) if agreed and settings else None)
        return Answer(protocol, selected, headers, bytes(buf[head_length:]))

    def websocket(self, sock: Any, answer: Answer, **keywords: Any) -> WebSocket:
        """The open connection (``keywords``: more of WebSocket's)."""
        opts = self.options
        subprotocols = self.subprotocols
        return WebSocket(sock, answer.protocol, path=self.target.resource, origin=self.origin,
                         subprotocol=answer.subprotocol, version="13",
                         protocol=", ".join(subprotocols) if subprotocols else None,
                         close_timeout=opts.close_timeout, ping_interval=opts.ping_interval,
                         ping_timeout=opts.ping_timeout, idle_timeout=opts.idle_timeout,
                         pending=answer.pending, **keywords)


class Answer(NamedTuple):
    """The server's accepting answer."""

    protocol: _core.Protocol
    subprotocol: Optional[str]
    headers: List[Tuple[str, str]]
    #: Bytes after the head: the start of the WebSocket stream.
    pending: bytes


def prepare(url: str, subprotocols: Optional[Sequence[str]], headers: Optional[Headers],
            origin: Optional[str], options: Optional[Options], timeout: Optional[float],
            **given: Any) -> Request:
    """Check ``connect()``'s arguments and build the request (``given``:
    the connection options passed as keywords, defaults included)."""
    given = {name: value for name, value in given.items()
             if value != getattr(DEFAULTS, name)}
    if options is not None and given:
        raise TypeError(f"connect() takes options= or {', '.join(given)}, not both")
    opts = options if options is not None else Options.build(None, **given)
    check_seconds("timeout", timeout)
    target = _parse_url(url)
    if isinstance(subprotocols, str):
        raise TypeError("subprotocols is a sequence of names, not a str")
    extra: List[Tuple[str, str]] = []
    if headers:
        items = headers.items() if isinstance(headers, Mapping) else headers
        for name, value in items:
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"the {name} header is set by pyws; "
                                 "use the URL and the subprotocols argument")
            extra.append((name, value))
    if origin is not None:
        extra.append(("Origin", origin))
    settings = resolve(opts.compression)
    if settings is not None:
        extra.append(("Sec-WebSocket-Extensions", _core.deflate_offer(settings.params())))
    data, key = _core.client_request(target.host_header, target.resource,
                                     subprotocols, extra or None)
    return Request(target, data, key, subprotocols, origin, settings, opts, timeout)


def _with_answer(error: HandshakeError, buf: bytearray, sock: Any,
                 deadline: Optional[float]) -> HandshakeError:
    """``error`` with what the server said: its status line and the start
    of its body (a server that refuses usually explains why there), read
    for at most a second more."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return error
    status_line = bytes(buf[:buf.find(b"\r\n")]).decode("latin-1")
    body = bytes(buf[head_end + 4:])
    limit = time.monotonic() + 1.0
    if deadline is not None:
        limit = min(limit, deadline)
    try:
        while len(body) < _BODY_SHOWN and time.monotonic() < limit:
            sock.settimeout(max(limit - time.monotonic(), 0.001))
            chunk = sock.recv(_BODY_SHOWN)
            if not chunk:
                break
            body += chunk
    except OSError:
        pass  # what came is what we show
    text = " ".join(body[:_BODY_SHOWN].decode("utf-8", "replace").split())
    message = f"{error.message}; the server answered {status_line!r}"
    if text:
        message += f": {text}"
    return HandshakeError(message, error.status, error.headers, status_line=status_line,
                          body=body)


def _set_remaining(sock: socket.socket, deadline: Optional[float]) -> None:
    if deadline is None:
        return
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("WebSocket opening handshake timed out")
    sock.settimeout(remaining)


def _parse_url(url: str) -> _Target:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss"):
        raise ValueError(f"not a WebSocket URL (ws:// or wss://): {url!r}")
    if parts.fragment:
        raise ValueError(f"a WebSocket URL cannot have a fragment: {url!r}")
    host = parts.hostname
    if not host:
        raise ValueError(f"no host in WebSocket URL {url!r}")
    secure = scheme == "wss"
    default_port = 443 if secure else 80
    try:
        port = parts.port or default_port
    except ValueError as exc:
        raise ValueError(f"bad port in WebSocket URL {url!r}: {exc}") from None
    host_header = f"[{host}]" if ":" in host else host
    if port != default_port:
        host_header += f":{port}"
    resource = parts.path or "/"
    if parts.query:
        resource += "?" + parts.query
    return _Target(secure, host, port, host_header, resource)
