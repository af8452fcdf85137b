"""The options of a WebSocket connection, in one place.

``Options`` holds every option any entry point takes, its default and its
check.  ``WebSocketServer``, ``WebSocketHandler``, ``pyws.flask.Sock``, the
gunicorn worker and ``connect`` build one from their keyword arguments
(``Options.build``), so that a bad value gets the same message everywhere
and a default is written once, here.  The C engine checks its arguments
again, as a safety net.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple

from . import _core
from .compression import Compression, PerMessageDeflate

__all__ = ["Options", "DEFAULTS", "OPTION_NAMES", "CONNECTION_OPTIONS", "HANDSHAKE_OPTIONS",
           "split", "check_seconds"]

logger = logging.getLogger("pyws.options")

#: ``on_upgrade(environ)``: None lets the upgrade go on; ``(status, headers,
#: body)`` refuses it with that answer.
OnUpgrade = Callable[[Dict[str, Any]], Optional[Tuple[Any, Any, Any]]]

_NUMBER = (int, float)


@dataclass(frozen=True)
class Options:
    """The options of a WebSocket connection (server or client side).

    Connection options (every side):

    - ``max_message_size`` (1048576): the largest message accepted, in
      bytes; a larger one fails the connection with 1009.  0: no limit.
    - ``close_timeout`` (1.0): the longest ``close()`` waits for the peer's
      close frame, in seconds; it returns as soon as the frame arrives (a
      round trip), and after this long drops the connection without it.
      None: forever.
    - ``ping_interval`` (20.0): send a keepalive ping that often, in
      seconds (websockets' default), so that a peer gone without a word
      (a laptop closed, a NAT entry expired) is noticed and its connection
      freed.  None: never.
    - ``ping_timeout`` (20.0): with ``ping_interval``, drop the connection
      (1011) when a ping's pong is that late.  None: wait forever.
    - ``idle_timeout`` (None): close with 1001 when nothing arrived for that
      long.  None: never.
    - ``compression`` (True): permessage-deflate (RFC 7692): True (default
      settings), False (never), or a ``pyws.PerMessageDeflate``.  A client
      offers it; a server accepts it when offered.

    Handshake options (the server side):

    - ``handshake_timeout`` (10.0): seconds a client has to send its request
      head (then 408 and the connection dropped).  For ``connect``: bounds
      the TCP connect plus the opening handshake.  None: no limit.
    - ``max_request_size`` (32768): the largest request head (request line
      and headers), in bytes; a larger one gets 431.  None: gevent's own
      limits.
    - ``origins`` (None): the allowed ``Origin`` values,
      ``scheme://host[:port]``; a browser request from another origin is
      answered 403.  A request without ``Origin`` is allowed.  None: any.
    - ``subprotocols`` (None): the supported subprotocols, in order of
      preference.
    - ``extra_headers`` (()): (name, value) pairs added to every ``101``.
    - ``on_upgrade`` (None): ``on_upgrade(environ)``, called for each valid
      upgrade request before the ``101``; returning ``(status, headers,
      body)`` refuses it with that answer, None accepts it.

    Build one with ``Options.build(**keywords)`` (or the constructor): an
    unknown name is a TypeError naming it, a bad value a ValueError or
    TypeError naming the option.  ``replace(**keywords)`` gives a copy with
    some options changed, checked the same way.
    """

    max_message_size: int = _core.DEFAULT_MAX_MESSAGE_SIZE
    close_timeout: Optional[float] = 1.0
    ping_interval: Optional[float] = 20.0
    ping_timeout: Optional[float] = 20.0
    idle_timeout: Optional[float] = None
    compression: Compression = True
    handshake_timeout: Optional[float] = 10.0
    max_request_size: Optional[int] = 32768
    origins: Optional[Tuple[str, ...]] = None
    subprotocols: Optional[Tuple[str, ...]] = None
    extra_headers: Tuple[Tuple[str, str], ...] = field(default=())
    on_upgrade: Optional[OnUpgrade] = None

    def __post_init__(self) -> None:
        size = self.max_message_size
        if size is None:
            object.__setattr__(self, "max_message_size", 0)
        elif not isinstance(size, int) or isinstance(size, bool):
            raise TypeError(f"max_message_size must be an int (0: no limit), not {size!r}")
        elif size < 0:
            raise ValueError(f"max_message_size must be >= 0 (0: no limit), not {size}")
        for name in ("close_timeout", "ping_interval", "ping_timeout", "idle_timeout",
                     "handshake_timeout"):
            check_seconds(name, getattr(self, name))
        request = self.max_request_size
        if request is not None:
            if not isinstance(request, int) or isinstance(request, bool):
                raise TypeError(f"max_request_size must be an int or None, not {request!r}")
            if request < 0:
                raise ValueError(f"max_request_size must be >= 0 or None, not {request}")
        if not isinstance(self.compression, (bool, PerMessageDeflate)):
            raise TypeError("compression must be True, False or a pyws.PerMessageDeflate, "
                            f"not {self.compression!r}")
        object.__setattr__(self, "origins", _names("origins", self.origins))
        object.__setattr__(self, "subprotocols", _names("subprotocols", self.subprotocols))
        object.__setattr__(self, "extra_headers", _pairs(self.extra_headers))
        if self.on_upgrade is not None and not callable(self.on_upgrade):
            raise TypeError(f"on_upgrade must be callable or None, not {self.on_upgrade!r}")

    @classmethod
    def build(cls, base: Optional[Options] = None, **keywords: Any) -> Options:
        """``base`` (the defaults when None) with ``keywords`` changed."""
        unknown = [name for name in keywords if name not in OPTION_NAMES]
        if unknown:
            raise TypeError(f"unknown WebSocket option {unknown[0]!r}"
                            + (f" (and {', '.join(map(repr, unknown[1:]))})"
                               if len(unknown) > 1 else "")
                            + f"; the options are: {', '.join(OPTION_NAMES)}")
        return dataclasses.replace(base if base is not None else DEFAULTS, **keywords)

    def replace(self, **keywords: Any) -> Options:
        """A copy with ``keywords`` changed (checked like ``build``)."""
        return Options.build(self, **keywords)

    def connection(self) -> Dict[str, Any]:
        """The connection options, as keywords."""
        return {name: getattr(self, name) for name in CONNECTION_OPTIONS}


def check_seconds(name: str, value: Any) -> None:
    """TypeError or ValueError naming ``name`` unless ``value`` is None or a
    number of seconds >= 0."""
    if value is None:
        return
    if not isinstance(value, _NUMBER) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number of seconds or None, not {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0 or None, not {value}")


def _names(name: str, value: Any) -> Optional[Tuple[str, ...]]:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a list of str, not {value!r}")
    items = tuple(value)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{name}: each item must be a str, not {item!r}")
    return items


def _pairs(value: Any) -> Tuple[Tuple[str, str], ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise TypeError("extra_headers must be a list of (name, value) pairs, "
                        f"not {value!r}")
    pairs = []
    for item in value:
        if not (isinstance(item, tuple) and len(item) == 2
                and isinstance(item[0], str) and isinstance(item[1], str)):
            raise TypeError(f"extra_headers: each header must be a (name, value) pair of "
                            f"str, not {item!r}")
        pairs.append(item)
    return tuple(pairs)


#: Every option's name, in the order of the table above.
OPTION_NAMES: Tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Options))
#: The options of an open connection (what a ``Sock`` may override).
CONNECTION_OPTIONS: Tuple[str, ...] = ("max_message_size", "close_timeout", "ping_interval",
                                       "ping_timeout", "idle_timeout")
#: The options of the server's handshake.
HANDSHAKE_OPTIONS: Tuple[str, ...] = ("origins", "subprotocols", "extra_headers",
                                      "on_upgrade", "compression")
#: The defaults.
DEFAULTS = Options()


def split(keywords: Mapping[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``keywords`` as (options, the rest)."""
    options = {k: v for k, v in keywords.items() if k in OPTION_NAMES}
    rest = {k: v for k, v in keywords.items() if k not in OPTION_NAMES}
    return options, rest

