"""A gevent WSGI server whose handler upgrades WebSocket requests."""
from __future__ import annotations

import ipaddress
from typing import Any, Iterable, Optional, Sequence, Tuple

from gevent import Greenlet  # type: ignore[import-untyped, unused-ignore]
from gevent.pywsgi import WSGIServer  # type: ignore[import-untyped, unused-ignore]

from . import _core
from ._handshake import HandshakePolicy, OnUpgrade
from .compression import Compression
from .handler import DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_REQUEST_SIZE, WebSocketHandler
from .websocket import DEFAULT_CLOSE_TIMEOUT, DEFAULT_PING_TIMEOUT, check_non_negative

__all__ = ["WebSocketServer"]


class _ConnectionGreenlet(Greenlet):  # type: ignore[misc, type-arg, unused-ignore]
    """A connection's greenlet, without the record of the stack that spawned
    it (gevent keeps up to ten frames of it per greenlet, for debugging
    output; here they would only say "the accept loop").  That record lives
    as long as the connection, a few hundred bytes on every idle one."""

    spawning_stack_limit = 0


class WebSocketServer(WSGIServer):  # type: ignore[misc, unused-ignore]
    """``gevent.pywsgi.WSGIServer`` with :class:`WebSocketHandler` preset.

    It holds the WebSocket options the handler reads:

    - ``max_message_size``: largest message accepted, in bytes (0: no
      limit); a larger one fails the connection with 1009.
    - ``subprotocols``: supported subprotocols, in order of preference.
    - ``origins``: None (any origin), or the allowed ``Origin`` values,
      ``scheme://host[:port]``; a browser request from another origin is
      answered 403 (protection against cross-site WebSocket hijacking).
      Requests without ``Origin`` (not from a browser) are allowed.
    - ``extra_headers``: (name, value) pairs added to every ``101`` response.
    - ``on_upgrade(environ)``: called for each valid upgrade request before
      the ``101``; returning ``(status, headers, body)`` refuses it with that
      answer (e.g. ``(401, [], "log in first")``), None accepts it.
    - ``compression``: permessage-deflate (RFC 7692) when the client offers
      it: True (default settings), False (never), or a
      ``pyws.PerMessageDeflate``.
    - ``handshake_timeout``: seconds a client has to send its request head
      (408 and the connection dropped after that; None: no limit).
    - ``max_request_size``: largest request head (request line and
      headers) in bytes; a larger one gets 431 (None: pywsgi's own limits).
    - ``close_timeout``: seconds to wait for the client's close frame.
    - ``ping_interval``: send a keepalive ping that often (None: never);
      ``ping_timeout``: drop the connection (1011) when its pong is that late.
    - ``idle_timeout``: close with 1001 when nothing arrived for that long.

    Other arguments are those of ``WSGIServer``.
    """

    handler_class = WebSocketHandler

    def __init__(self, listener: Any, application: Any = None, *args: Any,
                 max_message_size: int = _core.DEFAULT_MAX_MESSAGE_SIZE,
                 subprotocols: Optional[Sequence[str]] = None,
                 origins: Optional[Iterable[str]] = None,
                 extra_headers: Optional[Iterable[Tuple[str, str]]] = None,
                 on_upgrade: Optional[OnUpgrade] = None,
                 compression: Compression = True,
                 handshake_timeout: Optional[float] = DEFAULT_HANDSHAKE_TIMEOUT,
                 max_request_size: Optional[int] = DEFAULT_MAX_REQUEST_SIZE,
                 close_timeout: Optional[float] = DEFAULT_CLOSE_TIMEOUT,
                 ping_interval: Optional[float] = None,
                 ping_timeout: Optional[float] = DEFAULT_PING_TIMEOUT,
                 idle_timeout: Optional[float] = None,
                 **kwargs: Any) -> None:
        if max_message_size < 0:
            raise ValueError(f"max_message_size must be >= 0 (0: no limit), "
                             f"not {max_message_size}")
        check_non_negative(handshake_timeout=handshake_timeout,
                           max_request_size=max_request_size, close_timeout=close_timeout,
                           ping_interval=ping_interval, ping_timeout=ping_timeout,
                           idle_timeout=idle_timeout)
        if origins is not None and not isinstance(origins, (str, bytes)):
            origins = list(origins)
        # Validates them all (TypeError, ValueError) before anything starts.
        policy = HandshakePolicy(origins=origins, subprotocols=subprotocols,
                                 extra_headers=extra_headers, on_upgrade=on_upgrade,
                                 compression=compression)
        super().__init__(listener, application, *args, **kwargs)
        self.max_message_size = max_message_size
        self.subprotocols = policy.subprotocols
        self.origins = origins
        self.extra_headers = policy.extra_headers
        self.on_upgrade = on_upgrade
        self.compression = compression
        self.handshake_timeout = handshake_timeout
        self.max_request_size = max_request_size
        self.close_timeout = close_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.idle_timeout = idle_timeout

    def do_handle(self, *args: Any) -> None:
        """Spawn the connection's greenlet on ``_serve`` (gevent's own entry
        point calls the handler through ``handle(*args)``, a call that costs
        an extra interpreter level on the C stack, about 500 bytes that a
        greenlet blocked in ``receive()`` keeps for the life of its
        connection)."""
        spawn = self._spawn  # type: ignore[attr-defined]  # BaseServer's, not in the stubs
        if spawn is None:
            super().do_handle(*args)
            return
        if spawn == Greenlet.spawn:  # the default: no pool
            spawn = _ConnectionGreenlet.spawn
        try:
            spawn(self._serve, *args)
        except BaseException:
            self.do_close(*args)
            raise

    def update_environ(self) -> None:
        """SERVER_NAME without a DNS lookup when the server is bound to an IP
        address: that address, as Werkzeug's server does.  gevent looks the
        name up with ``getfqdn`` through its resolver's thread pool, and the
        idle thread that leaves behind makes every socket system call of the
        process a little dearer (the kernel counts references to a file only
        in processes with several threads): about 3% of the throughput of
        small messages.  A host name is still looked up, by gevent."""
        address = self.address
        if (isinstance(address, tuple) and "SERVER_NAME" not in self.environ
                and _is_ip_literal(address[0])):
            self.environ["SERVER_NAME"] = str(address[0])
        super().update_environ()

    def _serve(self, sock: Any, address: Any) -> None:
        try:
            self._handle(sock, address)  # type: ignore[attr-defined]
        finally:
            self.do_close(sock, address)


def _is_ip_literal(host: Any) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
