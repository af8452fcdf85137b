"""A gevent WSGI server whose handler upgrades WebSocket requests."""
from __future__ import annotations

import ipaddress
import logging
from typing import Any, Callable, Dict, FrozenSet, Optional

from ._extras import missing

try:
    from gevent import Greenlet  # type: ignore[import-untyped, unused-ignore]
    from gevent import ssl as gevent_ssl  # type: ignore[import-untyped, unused-ignore]
    from gevent.pywsgi import WSGIServer  # type: ignore[import-untyped, unused-ignore]
except ModuleNotFoundError as exc:
    raise missing(exc, "pyws.server") from None

from . import _gevent
from .handler import Client, WebSocketHandler, install_settings, request_logger
from .options import OPTION_NAMES, Options, split

__all__ = ["WebSocketServer"]

logger = logging.getLogger("pyws.server")

#: The logger of ``WebSocketServer.logger`` (gevent-websocket's
#: ``geventwebsocket.server``): apart from ``pyws.server``, whose warnings
#: must not go through its debug-only handler.
SERVER_LOGGER_NAME = "pyws.server.requests"

#: Keywords WSGIServer takes besides the WebSocket options (its own, and
#: the TLS ones it hands to the ssl module).
_WSGI_SERVER_KEYWORDS: FrozenSet[str] = frozenset({
    "backlog", "spawn", "log", "error_log", "handler_class", "environ",
    "ssl_context", "keyfile", "certfile", "server_side", "cert_reqs", "ssl_version",
    "ca_certs", "do_handshake_on_connect", "suppress_ragged_eofs", "ciphers",
})


class _ConnectionGreenlet(Greenlet):  # type: ignore[misc, type-arg, unused-ignore]
    """A connection's greenlet, without the record of the stack that spawned
    it (gevent keeps up to ten frames of it per greenlet, for debugging
    output; here they would only say "the accept loop").  That record lives
    as long as the connection, a few hundred bytes on every idle one."""

    spawning_stack_limit = 0


#: gevent-websocket's format for the records of a server run with
#: ``debug=True`` (a rule above and below each, where it was logged).
DEBUG_LOG_FORMAT = "\n".join([
    "-" * 80,
    "%(levelname)s in %(module)s [%(pathname)s:%(lineno)d]:",
    "%(message)s",
    "-" * 80,
])


class WebSocketServer(WSGIServer):  # type: ignore[misc, unused-ignore]
    """``gevent.pywsgi.WSGIServer`` with :class:`WebSocketHandler` preset.

    It holds the WebSocket options the handler reads, ``self.options`` (a
    :class:`pyws.options.Options`; its docstring describes every option):
    give them as keywords (``max_message_size=...``, ``origins=...``,
    ``on_upgrade=...``, ``handshake_timeout=...``...), or as ``options=``
    with keywords changing some.  An unknown keyword is a TypeError naming
    it, a bad value a ValueError or TypeError naming the option.

    Other arguments are those of ``WSGIServer`` (``backlog``, ``spawn``,
    ``log``, ``error_log``, ``handler_class``, ``environ``, and the TLS
    ones: ``ssl_context``, ``keyfile``, ``certfile``...), and those of
    gevent-websocket's server:

    - ``debug``: the server's ``logger`` (see below) shows its records,
      at DEBUG level and up, on stderr in ``debug_log_format``;
    - ``pre_start_hook``: called with the handler before each request; when
      it returns true, the request is served as plain WSGI (no upgrade).

    ``clients`` maps each open WebSocket's client address to its
    :class:`pyws.handler.Client` (``address``, ``ws``, and whatever
    attributes the application sets on it) while its application runs.
    ``logger`` takes the handler's handshake steps (at DEBUG) and, under
    ``debug``, its request lines (not the WebSocket ones), as
    gevent-websocket's does: shown on stderr only with ``debug``, and
    propagated to the program's own logging configuration either way.
    Without ``debug``, the request lines go to pywsgi's access log (``log=``)
    instead, WebSockets included (gevent-websocket's shows none).
    """

    handler_class = WebSocketHandler
    debug_log_format: str = DEBUG_LOG_FORMAT

    def __init__(self, listener: Any, application: Any = None, *args: Any,
                 options: Optional[Options] = None, debug: bool = False,
                 pre_start_hook: Optional[Callable[[Any], Any]] = None,
                 **kwargs: Any) -> None:
        if pre_start_hook is not None and not callable(pre_start_hook):
            raise TypeError(f"pre_start_hook must be callable, not {pre_start_hook!r}")
        #: gevent-websocket's ``debug``: the ``logger`` shows its records.
        self.debug = bool(debug)
        self.pre_start_hook = pre_start_hook
        #: The open WebSockets' clients by address (see the class docstring).
        self.clients: Dict[Any, Client] = {}
        self._logger: Optional[logging.Logger] = None
        option_keywords, server_keywords = split(kwargs)
        unknown = {name: value for name, value in server_keywords.items()
                   if name not in _WSGI_SERVER_KEYWORDS}
        # Here, not at each connection (gevent would hand an unknown keyword
        # to the ssl module when wrapping each socket): Options.build names
        # an unknown keyword (TypeError) and checks the values before
        # anything starts; so does the handshake policy.
        self.options = Options.build(options, **option_keywords, **unknown)
        _warn_of_blocking_tls(server_keywords.get("ssl_context"))
        super().__init__(listener, application, *args, **server_keywords)

    @property
    def logger(self) -> logging.Logger:
        """gevent-websocket's server logger (made on first use, honouring
        ``debug`` and ``debug_log_format``); see the class docstring."""
        if self._logger is None:
            self._logger = request_logger(SERVER_LOGGER_NAME, self.debug,
                                          self.debug_log_format)
        return self._logger

    @logger.setter
    def logger(self, value: logging.Logger) -> None:
        self._logger = value

    @property
    def options(self) -> Options:
        """The WebSocket options; setting them applies to the next requests."""
        return self._options

    @options.setter
    def options(self, options: Options) -> None:
        if not isinstance(options, Options):
            raise TypeError(f"options must be a pyws.options.Options, not {options!r}")
        install_settings(self, options)  # checks the origins before storing
        self._options = options
        # Each option as an attribute too (read them; set ``options``).
        for name in OPTION_NAMES:
            setattr(self, name, getattr(options, name))

    def do_handle(self, *args: Any) -> None:
        """Spawn the connection's greenlet on ``_serve`` (gevent's own entry
        point calls the handler through ``handle(*args)``, a call that costs
        an extra interpreter level on the C stack, about 500 bytes that a
        greenlet blocked in ``receive()`` keeps for the life of its
        connection)."""
        spawn = _gevent.server_spawn(self)
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
        in processes with several threads), which costs small messages
        throughput (docs/benchmarks.md, "Measurements behind design
        choices").  A host name is still looked up, by gevent."""
        address = self.address
        if (isinstance(address, tuple) and "SERVER_NAME" not in self.environ
                and _is_ip_literal(address[0])):
            self.environ["SERVER_NAME"] = str(address[0])
        super().update_environ()

    def _serve(self, sock: Any, address: Any) -> None:
        try:
            _gevent.server_handle(self, sock, address)
        finally:
            self.do_close(sock, address)


def _warn_of_blocking_tls(context: Any) -> None:
    """A stdlib ``ssl.SSLContext`` in a program gevent has not patched
    makes blocking TLS sockets: one slow client stalls every connection."""
    if context is None or isinstance(context, gevent_ssl.SSLContext):
        return
    logger.warning("ssl_context is a stdlib ssl.SSLContext: its sockets block the "
                   "whole server (gevent has not patched ssl); give a "
                   "gevent.ssl.SSLContext (same API), or certfile= and keyfile=")


def _is_ip_literal(host: Any) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
