"""Flask extension: WebSocket routes that work under every server pyws knows.

::

    from flask import Flask
    from pyws.flask import Sock

    app = Flask(__name__)
    sock = Sock(app)

    @sock.route('/ws')
    def echo(ws):                  # ws: a pyws.WebSocket
        for message in ws:
            ws.send(message)

The same view runs unchanged under

- gevent: ``pyws.WebSocketServer`` / ``WSGIServer(..., handler_class=
  pyws.WebSocketHandler)``, and gunicorn with
  ``-k pyws.gunicorn.GeventWebSocketWorker``: the handler performs the
  handshake when the route asks for it, with the route's options and the
  server's;
- Werkzeug's development server (``flask run``, ``app.run()``, threaded) and
  gunicorn's ``gthread`` (and ``sync``, ``gevent``) workers: the route
  performs the handshake itself on the connection's socket
  (``environ['werkzeug.socket']`` / ``environ['gunicorn.socket']``) and
  runs the WebSocket in the request's thread.

``Sock(app)`` also gives plain routes that read
``request.environ['wsgi.websocket']`` (the gevent-websocket style) their
socket under Werkzeug's server and gunicorn's threaded workers, through a
WSGI middleware it puts around ``app.wsgi_app``.
"""
from __future__ import annotations

import functools
import logging
import socket
from typing import (Any, Callable, Dict, Iterable, List, Optional, Tuple, TypeVar,
                    Union)

from flask import Blueprint, Flask, Response, current_app, request

from ._runner import UPGRADE_KEY, Route, SessionRunner, Upgrade, shut_down, upgrade_of
from ._handshake import Environ, HandshakePolicy, Refusal, asks_for_websocket
from ._raw_socket import accept_raw, raw_socket
from ._werkzeug import is_sock_view, mark_sock_view, prepare_routing_app, routed_view
from .options import CONNECTION_OPTIONS, OPTION_NAMES, Options
from .websocket import WebSocket

__all__ = ["Sock"]

logger = logging.getLogger("pyws.flask")

View = TypeVar("View", bound=Callable[..., Any])
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

_SWITCHING = "101 Switching Protocols"
# Options about reading the request head: the server's, not a route's.
_SERVER_ONLY = frozenset({"handshake_timeout", "max_request_size"})


class Sock:
    """WebSocket routes for a Flask app: ``@sock.route(rule)``.

    Options (``pyws.options.Options`` describes each): the handshake
    options ``origins``, ``subprotocols``, ``extra_headers``, ``on_upgrade``
    (called before the ``101``, inside the request's Flask context),
    ``compression`` (None, the default: the server's setting under a gevent
    server, on elsewhere), and the connection options ``max_message_size``,
    ``close_timeout``, ``ping_interval``, ``ping_timeout``, ``idle_timeout``;
    as keywords, or as ``options=`` (all of its connection options then
    apply) with keywords changing some.  Under a gevent server, the
    connection options given here override the server's for these routes,
    and the server's handshake options apply as well (both origin lists must
    allow a request).  ``handshake_timeout`` and ``max_request_size`` are
    the server's only: a TypeError here, as is an unknown keyword.
    """

    def __init__(self, app: Optional[Flask] = None, *, options: Optional[Options] = None,
                 **keywords: Any) -> None:
        server_only = [name for name in keywords if name in _SERVER_ONLY]
        if server_only:
            raise TypeError(f"{server_only[0]} is an option of the server, not of Sock")
        if keywords.get("compression", True) is None:
            del keywords["compression"]  # None: follow the server
        #: This extension's options (defaults for those not given).
        self.options = Options.build(options, **keywords)
        given = set(keywords) | (set(OPTION_NAMES) if options is not None else set())
        #: The handshake options of this extension's routes.
        self.policy = HandshakePolicy.from_options(
            self.options, compression="compression" in given)
        #: The connection options given, which override a server's.
        self.overrides: Dict[str, Any] = {name: getattr(self.options, name)
                                          for name in CONNECTION_OPTIONS if name in given}
        #: The first app this extension was initialised with.
        self.app: Optional[Flask] = None
        self._apps: List[Flask] = []
        self._routes: List[Tuple[str, Callable[..., Any], Dict[str, Any]]] = []
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the routes declared so far on ``app`` (and the later
        ones too), and install the upgrade middleware for plain routes."""
        if app in self._apps:
            return
        socks: List[Sock] = app.extensions.setdefault("pyws", [])
        socks.append(self)
        if not any(isinstance(m, _UpgradeMiddleware) for m in _middlewares(app)):
            app.wsgi_app = _UpgradeMiddleware(app.wsgi_app, app, self)  # type: ignore[method-assign]
        self._apps.append(app)
        if self.app is None:
            self.app = app
        for rule, view, options in self._routes:
            _add_rules(app, rule, view, options)

    def route(self, rule: str, bp: Optional[Blueprint] = None,
              **options: Any) -> Callable[[View], View]:
        """Declare a WebSocket route: the decorated function is called as
        ``f(ws, **url_variables)`` once the handshake succeeded; when it
        returns, the WebSocket is closed (1000; 1011 if it raised, the error
        being logged as Flask logs view errors; 1008 for ``abort(4xx)``).  ``bp``: register on that
        blueprint instead of the app.  Other keywords are those of
        ``app.route`` (``endpoint``, ``defaults``, ...); the method is GET.
        A request that is not an upgrade gets 400 "WebSocket expected"."""
        methods = options.pop("methods", None)
        if methods is not None and [m.upper() for m in methods] != ["GET"]:
            raise ValueError("a WebSocket route only takes GET requests")
        options.pop("websocket", None)

        def decorator(f: View) -> View:
            view = self._make_view(f)
            rule_options = dict(options)
            rule_options.setdefault("endpoint", f.__name__)
            if bp is not None:
                _add_rules(bp, rule, view, rule_options)
            else:
                self._routes.append((rule, view, rule_options))
                for app in self._apps:
                    _add_rules(app, rule, view, rule_options)
            return f

        return decorator

    def _make_view(self, f: Callable[..., Any]) -> Callable[..., Response]:
        @functools.wraps(f)
        def view(**kwargs: Any) -> Response:
            return self._serve(f, kwargs)

        # Tells the gevent handler (and the middleware) that this route does
        # the handshake itself.
        mark_sock_view(view)
        return view

    def _serve(self, f: Callable[..., Any], kwargs: Dict[str, Any]) -> Response:
        environ: Environ = request.environ
        ws = environ.get("wsgi.websocket")
        if isinstance(ws, WebSocket):  # upgraded already (a handler that did not defer)
            f(ws, **kwargs)
            return _finished()
        if not asks_for_websocket(environ):
            return Response("WebSocket expected\n", 400,
                            {"Content-Type": "text/plain; charset=utf-8"})
        upgrade = upgrade_of(environ)
        try:
            if upgrade is None:
                # No route can switch protocols here: accept_raw checks the
                # request (its 4xx) and then refuses with 500.
                accept_raw(environ, [self.policy], self.overrides)
                raise AssertionError("accept_raw upgraded without a socket")
            ws = upgrade.accept([self.policy], self.overrides)
        except Refusal as refusal:
            _log_refusal(environ, refusal)
            return _refusal_response(refusal, environ)
        except OSError as exc:  # the client left before its 101
            logger.debug("WebSocket %s: client gone during the handshake: %s",
                         environ.get("PATH_INFO"), exc)
            sock = raw_socket(environ)
            if sock is not None:
                shut_down(sock)
            return _finished()
        # What f raises, Flask logs and answers with a 500 (or the status of
        # an HTTPException): the session runner around the application
        # closes the socket by that (pyws._runner: 1011, 1008 for a 4xx).
        f(ws, **kwargs)
        return _finished()


def _add_rules(target: Union[Flask, Blueprint], rule: str, view: Callable[..., Any],
               options: Dict[str, Any]) -> None:
    # Two rules, one view: Werkzeug (>= 2.2) routes upgrade requests only to
    # websocket=True rules, and answers plain requests to those with a bare
    # 400; the plain rule lets the view say "WebSocket expected" instead.
    target.add_url_rule(rule, view_func=view, methods=["GET"], websocket=True, **options)
    target.add_url_rule(rule, view_func=view, methods=["GET"], **options)


def _log_refusal(environ: Environ, refusal: Refusal) -> None:
    logger.info("refused WebSocket handshake for %s: %s (%d)", environ.get("PATH_INFO"),
                refusal.body.decode("utf-8", "replace").strip(), refusal.status)


def _refusal_response(refusal: Refusal, environ: Environ) -> Response:
    # A refused upgrade ends its connection, as the gevent handler's refusals
    # do: on a server that exposes its socket the read side is shut now, so
    # nothing the client writes after its request is answered, and the server
    # closes once its answer is out (Werkzeug's, which reads a finished
    # request's leftover input until EOF, is not held by such a client).
    # The server itself decides about keep-alive headers.
    sock = raw_socket(environ)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass
    headers = [(n, v) for n, v in refusal.response_headers() if n.lower() != "connection"]
    return Response(refusal.body, refusal.status, headers)


def _finished() -> Response:
    """The answer of a route whose WebSocket is over; the session runner
    keeps it from the wire (its status, 101, means a normal end)."""
    response: Response = current_app.response_class(status=101)
    return response


def _middlewares(app: Flask) -> List[object]:
    found: List[object] = []
    obj: object = app.wsgi_app
    for _ in range(8):
        found.append(obj)
        inner = getattr(obj, "wsgi_app", None) or getattr(obj, "app", None)
        if inner is None or inner is app:
            break
        obj = inner
    return found


class _UpgradeMiddleware:
    """Around ``app.wsgi_app``: under servers that expose the connection's
    socket (Werkzeug's, gunicorn's thread workers), an upgrade request for a
    plain route (not a ``Sock`` route, which upgrades itself) is upgraded
    here with the first ``Sock``'s options, and the route finds its
    WebSocket in ``environ['wsgi.websocket']``, as under gevent.  For both
    kinds of route it runs the application through the session runner, which
    ends the session by the close-code rule.  Under the gevent handler,
    which does all that itself, it does nothing."""

    def __init__(self, wsgi_app: WSGIApp, app: Flask, sock: Sock) -> None:
        self.wsgi_app = wsgi_app
        self.app = app
        self.sock = sock

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if ("wsgi.websocket" in environ or upgrade_of(environ) is not None
                or not asks_for_websocket(environ)):
            return self.wsgi_app(environ, start_response)
        raw = raw_socket(environ)
        if raw is None:
            return self.wsgi_app(environ, start_response)  # Sock routes answer 500
        upgrade = Upgrade(Route.RAW, functools.partial(accept_raw, environ))
        environ[UPGRADE_KEY] = upgrade
        if not is_sock_view(routed_view(self.app, environ)):
            refused = self._upgrade_plain_route(environ, upgrade, raw)
            if refused is not None:
                return refused(environ, start_response)
        prepare_routing_app(self.wsgi_app, environ)
        try:
            result = SessionRunner(upgrade, start_response).run(self.wsgi_app, environ)
        except Exception:
            if upgrade.websocket is None:
                raise
            # Closed with 1011 already; no HTTP error page after a 101.
            logger.exception("WebSocket application for %s failed",
                             environ.get("PATH_INFO"))
            result = None
        if result is not None:
            return result
        # The socket is shut down: this head never leaves; Werkzeug and
        # gunicorn log the request as 101 and take the EPIPE as the client
        # gone, quietly.
        start_response(_SWITCHING, [])
        return []

    def _upgrade_plain_route(self, environ: Environ, upgrade: Upgrade,
                             raw: socket.socket) -> Optional[WSGIApp]:
        """Upgrade for a plain route with the first ``Sock``'s options;
        the answer to send instead when that fails."""
        sock = self.sock
        try:
            if sock.policy.on_upgrade is not None:
                with self.app.request_context(environ):  # as for a Sock route
                    upgrade.accept([sock.policy], sock.overrides)
            else:
                upgrade.accept([sock.policy], sock.overrides)
        except Refusal as refusal:
            _log_refusal(environ, refusal)
            return _refusal_response(refusal, environ)
        except OSError as exc:
            logger.debug("WebSocket %s: client gone during the handshake: %s",
                         environ.get("PATH_INFO"), exc)
            shut_down(raw)
            return _gone
        return None


def _gone(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response(_SWITCHING, [])
    return []
