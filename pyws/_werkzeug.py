"""Werkzeug and Flask, adapted to WebSocket requests.

Werkzeug (>= 2.2) routes an upgrade request only to rules declared
``websocket=True``; Flask logs what a view raises with a traceback, also the
ordinary end of a WebSocket.  The helpers below let a plain ``@app.route``
serve a WebSocket and keep those ends to one log line, and let a server
tell a ``pyws.flask.Sock`` route (which performs its own handshake) from a
plain one.  Nothing here imports Werkzeug or Flask: an application that
uses them has loaded them.
"""
from __future__ import annotations

import logging
import sys
import weakref
from typing import Any, Callable, Dict

from .exceptions import ConnectionClosed, ProtocolError

__all__ = ["find_routing_app", "routed_view", "mark_sock_view", "is_sock_view",
           "prepare_routing_app", "present_upgrade_as_websocket", "present_mismatch_as_get",
           "WebSocketEndFilter",
           "quiet_flask_logger", "ORIGINAL_UPGRADE_KEY"]

logger = logging.getLogger("pyws.handler")

Environ = Dict[str, Any]

#: Where ``present_mismatch_as_get`` keeps the Upgrade and Connection
#: headers it hid from the application.
ORIGINAL_UPGRADE_KEY = "pyws.original_upgrade_headers"
# How many wrapper levels (middleware) to look through for a Werkzeug url_map.
_MAX_APP_DEPTH = 5
# The views of pyws.flask.Sock routes (weakly: a view goes with its app).
_SOCK_VIEWS: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()

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
    None (no match, redirect, wrong method...).  A request pyws takes for an
    upgrade is matched as one (against ``websocket=True`` rules), also when
    Werkzeug's own test would not see it (see ``present_upgrade_as_websocket``)."""
    try:
        adapter = owner.url_map.bind_to_environ(environ)
        if _upgrade_tokens(environ):
            try:
                rule, _args = adapter.match(return_rule=True, websocket=True)
            except TypeError:  # Werkzeug < 2.2: no WebSocket routing
                rule, _args = adapter.match(return_rule=True)
        else:
            rule, _args = adapter.match(return_rule=True)
    except Exception:
        return None
    views = getattr(owner, "view_functions", None)
    return views.get(rule.endpoint) if isinstance(views, dict) else None


def mark_sock_view(view: Callable[..., Any]) -> None:
    """Record ``view`` as a ``pyws.flask.Sock`` route's."""
    _SOCK_VIEWS.add(view)


def is_sock_view(view: Any) -> bool:
    """Whether ``view`` is a ``pyws.flask.Sock`` route, which upgrades by itself."""
    try:
        return view in _SOCK_VIEWS
    except TypeError:  # not weak-referenceable: not one of ours
        return False


def prepare_routing_app(app: Any, environ: Environ) -> None:
    """Adapt a Werkzeug/Flask application to a WebSocket request."""
    owner = find_routing_app(app)
    if owner is None:
        return
    present_upgrade_as_websocket(environ)
    if not is_sock_view(routed_view(owner, environ)):
        # A Sock route checks the upgrade itself and refuses a broken one
        # with the handshake's answer; a plain route is shown a GET.
        present_mismatch_as_get(owner.url_map, environ)
    app_logger = getattr(owner, "logger", None)
    if isinstance(app_logger, logging.Logger) and hasattr(owner, "log_exception"):
        quiet_flask_logger(app_logger)


def _upgrade_tokens(environ: Environ) -> bool:
    """Whether ``Upgrade`` names websocket among its tokens (pyws's test,
    that of ``_handshake.asks_for_websocket``)."""
    upgrade = environ.get("HTTP_UPGRADE")
    if not upgrade:
        return False
    return any(token.strip().lower() == "websocket" for token in upgrade.split(","))


def present_upgrade_as_websocket(environ: Environ) -> None:
    """Let Werkzeug's router see an upgrade that pyws accepts.

    Werkzeug takes a request for a WebSocket one only when ``Upgrade`` is
    exactly ``websocket``; RFC 7230 allows a token list (``websocket, foo``,
    or repeated headers, which servers join with commas), which pyws
    accepts.  For those, ``HTTP_UPGRADE`` becomes ``websocket`` (the
    original stays in ``environ[ORIGINAL_UPGRADE_KEY]``), so that the
    ``websocket=True`` rule of a ``Sock`` route matches.  The handshake
    itself is unaffected: the token it checks is still there.
    """
    upgrade = environ.get("HTTP_UPGRADE", "")
    if not _upgrade_tokens(environ) or upgrade.strip().lower() == "websocket":
        return
    environ.setdefault(ORIGINAL_UPGRADE_KEY, {"HTTP_UPGRADE": upgrade,
                                              "HTTP_CONNECTION": environ.get(
                                                  "HTTP_CONNECTION", "")})
    environ["HTTP_UPGRADE"] = "websocket"


def present_mismatch_as_get(url_map: Any, environ: Environ) -> None:
    """Let a plain ``@app.route('/ws')`` serve a WebSocket on Werkzeug >= 2.2.

    Werkzeug only matches upgrade requests against routes declared with
    ``websocket=True`` and answers 400 (WebsocketMismatch) otherwise.  When
    that would happen, the request is shown to the application as a plain
    GET; the original headers stay in ``environ[ORIGINAL_UPGRADE_KEY]``.
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
    environ[ORIGINAL_UPGRADE_KEY] = {"HTTP_UPGRADE": environ.pop("HTTP_UPGRADE", ""),
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

