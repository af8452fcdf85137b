"""Flask extension: WebSocket routes that work under every server pyws knows.

A drop-in for flask-sock: a program written for it runs with only its import
changed (``from pyws.flask import Sock, ConnectionClosed``)::

    from flask import Flask
    from pyws.flask import Sock, ConnectionClosed

    app = Flask(__name__)
    app.config['SOCK_SERVER_OPTIONS'] = {'ping_interval': 25}
    sock = Sock(app)

    @sock.route('/ws')
    def echo(ws):                  # ws: a pyws.WebSocket, flask-sock's API
        while True:
            ws.send(ws.receive())  # ConnectionClosed ends the route quietly

The view's ``ws`` keeps simple-websocket's Server API (``receive(timeout)``,
``send``, ``close(reason, message)``, ``connected``, ``subprotocol``,
``environ``; see ``pyws._sock_websocket``) and is a ``pyws.WebSocket`` too
(iteration, ``ping``, ``pyws.Hub``).  The same view runs unchanged under

- gevent: ``pyws.WebSocketServer`` / ``WSGIServer(..., handler_class=
  pyws.WebSocketHandler)``, and gunicorn with
  ``-k pyws.gunicorn.GeventWebSocketWorker``: the handler performs the
  handshake when the route asks for it, with the route's options and the
  server's;
- Werkzeug's development server (``flask run``, ``app.run()``, threaded),
  gunicorn's ``gthread`` (and ``sync``, ``gevent``) workers, and gevent's
  plain ``pywsgi.WSGIServer(addr, app)`` (monkey-patched or not): the route
  performs the handshake itself on the connection's socket (see
  ``pyws._raw_socket``) and runs the WebSocket in the request's thread or
  greenlet.

``Sock(app)`` also gives plain routes that read
``request.environ['wsgi.websocket']`` (the gevent-websocket style) their
socket under those servers, through a WSGI middleware it puts around
``app.wsgi_app``.
"""
from __future__ import annotations

import functools
import logging
import socket
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Tuple,
    TypeVar,
    Union,
    cast,
)

from ._extras import missing

try:
    from flask import Blueprint, Flask, Response, current_app, request
except ModuleNotFoundError as exc:
    raise missing(exc, "pyws.flask") from None

from ._handshake import (
    Environ,
    HandshakePolicy,
    Refusal,
    asks_for_websocket,
    environ_headers,
    negotiate,
)
from ._raw_socket import accept_raw, raw_socket
from ._runner import UPGRADE_KEY, Route, SessionRunner, Upgrade, shut_down, upgrade_of
from ._sock_websocket import ConnectionClosed, SockWebSocket
from ._werkzeug import is_sock_view, mark_sock_view, prepare_routing_app, routed_view
from .exceptions import ConnectionClosed as _PywsConnectionClosed
from .options import CONNECTION_OPTIONS, HANDSHAKE_OPTIONS, OPTION_NAMES, Options
from .websocket import WebSocket

__all__ = ["ConnectionClosed", "Sock", "SockWebSocket", "server_options"]

logger = logging.getLogger("pyws.flask")

View = TypeVar("View", bound=Callable[..., Any])
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

_SWITCHING = "101 Switching Protocols"
# Options about reading the request head: the server's, not a route's.
_SERVER_ONLY = frozenset({"handshake_timeout", "max_request_size"})
#: The config key flask-sock reads its Server options from.
CONFIG_KEY = "SOCK_SERVER_OPTIONS"
# simple-websocket's Server options that mean nothing here: pyws reads into
# its own buffer (receive_bytes), and picks threads or greenlets from the
# socket it serves (thread_class, event_class, selector_class: what
# simple-websocket needed to run its reader thread under gevent or eventlet).
_SIMPLE_WEBSOCKET_IGNORED = frozenset({"receive_bytes", "thread_class", "event_class",
                                       "selector_class"})
# The blueprint flask-sock keeps routes declared before init_app in; the
# same name, so url_for() of such a route keeps working.
_BLUEPRINT_NAME = "__flask_sock"


def server_options(value: Any) -> Tuple[Optional[HandshakePolicy], Dict[str, Any]]:
    """``app.config['SOCK_SERVER_OPTIONS']`` as (handshake policy or None,
    connection options given).  It takes simple-websocket's Server options,
    as flask-sock passes them on: ``subprotocols`` (a list, or one str),
    ``ping_interval`` (None or 0: no pings; a ping's pong may then take an
    interval, as there), ``max_message_size`` (None: no limit, as there; a
    number: the limit, 1009 beyond it), ``receive_bytes``, ``thread_class``,
    ``event_class`` and ``selector_class`` (accepted and ignored: see
    ``_SIMPLE_WEBSOCKET_IGNORED``); and pyws's options of a route (see
    ``pyws.options.Options``).  TypeError for an unknown key or a server-only
    option, TypeError / ValueError for a bad value."""
    if value is None:
        return None, {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{CONFIG_KEY} must be a dict of options, not {value!r}")
    keywords: Dict[str, Any] = {}
    for name, item in value.items():
        if name in _SIMPLE_WEBSOCKET_IGNORED:
            _check_ignored(name, item)
        elif name in _SERVER_ONLY:
            raise TypeError(f"{CONFIG_KEY}: {name} is an option of the server, not of "
                            "a route")
        elif name not in OPTION_NAMES:
            known = sorted((set(OPTION_NAMES) - _SERVER_ONLY) | _SIMPLE_WEBSOCKET_IGNORED)
            raise TypeError(f"{CONFIG_KEY}: unknown option {name!r}; the options are: "
                            + ", ".join(known))
        else:
            keywords[name] = item
    if isinstance(keywords.get("subprotocols"), str):
        keywords["subprotocols"] = [keywords["subprotocols"]]  # simple-websocket takes one
    if "ping_interval" in keywords:
        interval = keywords["ping_interval"]
        if interval == 0 and not isinstance(interval, bool):
            keywords["ping_interval"] = interval = None  # falsy: no pings there
        if interval is not None and "ping_timeout" not in keywords:
            # simple-websocket gives up on a pong at the next ping.
            keywords["ping_timeout"] = interval
    try:
        options = Options.build(**keywords)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{CONFIG_KEY}: {exc}") from None
    policy = None
    if any(name in HANDSHAKE_OPTIONS for name in keywords):
        policy = HandshakePolicy.from_options(options,
                                              compression="compression" in keywords)
    overrides = {name: getattr(options, name) for name in CONNECTION_OPTIONS
                 if name in keywords}
    return policy, overrides


def _check_ignored(name: str, value: Any) -> None:
    if name == "receive_bytes":
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{CONFIG_KEY}: receive_bytes must be a positive int, "
                             f"not {value!r}")
    elif value is not None and not callable(value):
        raise TypeError(f"{CONFIG_KEY}: {name} must be a class or None, not {value!r}")


class Sock:
    """WebSocket routes for a Flask app: ``@sock.route(rule)``, as flask-sock.

    ``Sock(app)`` adds routes to ``app``; ``Sock()`` keeps the routes
    declared before ``init_app(app)`` in a blueprint (``sock.bp``) that
    ``init_app`` registers; ``route(rule, bp=bp)`` adds the route to ``bp``.
    ``sock.app`` is the app given last.  Per request, the options in
    ``app.config['SOCK_SERVER_OPTIONS']`` apply on top of this object's (see
    ``server_options``).

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
        #: The app given last (to the constructor or ``init_app``), else None.
        self.app: Optional[Flask] = None
        #: The blueprint of routes declared before ``init_app``, else None.
        self.bp: Optional[Blueprint] = None
        self._apps: List[Flask] = []
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Attach to ``app``: register ``self.bp`` (the routes declared so
        far) on it, and make it ``self.app``, which routes declared later
        go to.  ``SOCK_SERVER_OPTIONS`` is checked now if set already."""
        if app in self._apps:
            return
        self._apps.append(app)
        _install(app, self)
        if self.bp is not None:
            name = self.bp.name
            if name in app.blueprints and app.blueprints[name] is not self.bp:
                name = f"{name}_{len(app.blueprints)}"  # another Sock() on this app
            app.register_blueprint(self.bp, name=name)
        self.app = app

    def route(self, rule: str, bp: Optional[Blueprint] = None,
              **options: Any) -> Callable[[View], View]:
        """Declare a WebSocket route: the decorated function is called as
        ``f(ws, **url_variables)`` once the handshake succeeded.  When it
        returns, or raises ``ConnectionClosed`` (which ends the route
        quietly), the WebSocket is closed: 1000; 1011 if it raised anything
        else, the error being logged as Flask logs view errors; 1008 for
        ``abort(4xx)``.  ``bp``: register on that blueprint instead.  Other
        keywords are those of ``app.route`` (``endpoint``, ``defaults``,
        ...); the method is GET.  The route is one URL rule, declared
        ``websocket=True``; a request that is not an upgrade gets 400
        "WebSocket expected"."""
        methods = options.pop("methods", None)
        if methods is not None and [m.upper() for m in methods] != ["GET"]:
            raise ValueError("a WebSocket route only takes GET requests")
        options.pop("websocket", None)

        def decorator(f: View) -> View:
            view = self._make_view(f)
            rule_options = dict(options)
            rule_options.setdefault("endpoint", f.__name__)
            target: Union[Flask, Blueprint]
            if bp is not None:
                target = bp
                _install_on_registration(bp, self)
            elif self.app is not None:
                target = self.app
            else:
                if self.bp is None:
                    self.bp = Blueprint(_BLUEPRINT_NAME, __name__)
                target = self.bp
            target.add_url_rule(rule, view_func=view, methods=["GET"], websocket=True,
                                **rule_options)
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

    def _settings(self, environ: Environ) -> Tuple[List[HandshakePolicy], Dict[str, Any]]:
        """This request's handshake policies and connection options: this
        object's, then the app's ``SOCK_SERVER_OPTIONS``."""
        policy, overrides = server_options(current_app.config.get(CONFIG_KEY))
        if policy is None and not overrides:
            return [self.policy], self.overrides
        policies = [self.policy]
        if policy is not None:
            policies.append(policy)
            ordered = _in_client_order(policy, environ)
            if ordered is not None:
                policies.append(ordered)
        return policies, {**self.overrides, **overrides}

    def _serve(self, f: Callable[..., Any], kwargs: Dict[str, Any]) -> Response:
        environ: Environ = request.environ
        ws = environ.get("wsgi.websocket")
        if isinstance(ws, WebSocket):  # upgraded already (a handler that did not defer)
            if not isinstance(ws, SockWebSocket):
                # Same layout (SockWebSocket adds no slots): flask-sock's API.
                ws.__class__ = SockWebSocket
            _run_view(f, ws, kwargs)
            return _finished()
        if not asks_for_websocket(environ):
            return _websocket_expected()
        policies, overrides = self._settings(environ)
        upgrade = upgrade_of(environ)
        try:
            if upgrade is None:
                # No route can switch protocols here: accept_raw checks the
                # request (its 4xx) and then refuses with 500.
                accept_raw(environ, policies, overrides)
                raise AssertionError("accept_raw upgraded without a socket")
            ws = upgrade.accept(policies, overrides, SockWebSocket)
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
        _run_view(f, ws, kwargs)
        return _finished()


def _in_client_order(policy: HandshakePolicy,
                     environ: Environ) -> Optional[HandshakePolicy]:
    """simple-websocket selects the first subprotocol the client offers that
    the server supports (pyws's own options select in the server's order):
    for ``SOCK_SERVER_OPTIONS``, a policy that keeps flask-sock's choice
    (it comes last, so its subprotocols are the ones used), or None."""
    supported = policy.subprotocols
    if not supported:
        return None
    offered = [name.strip() for name in
               str(environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL", "")).split(",")]
    shared = [name for name in offered if name in supported]
    # Nothing in common: none is selected either way.
    return HandshakePolicy(subprotocols=shared) if shared else None


def _run_view(f: Callable[..., Any], ws: WebSocket, kwargs: Dict[str, Any]) -> None:
    try:
        f(ws, **kwargs)
    except _PywsConnectionClosed as exc:
        # flask-sock's rule: the connection ending ends the route quietly,
        # and it is closed as after a normal return.
        logger.debug("WebSocket %s closed: %s", ws.path, exc)


def _install(app: Flask, sock: Sock) -> None:
    """What every app serving ``Sock`` routes needs, once per app: the
    upgrade middleware, the answer to a plain GET, and an early check of
    ``SOCK_SERVER_OPTIONS``."""
    socks: List[Sock] = app.extensions.setdefault("pyws", [])
    if sock not in socks:
        socks.append(sock)
    if any(isinstance(m, _UpgradeMiddleware) for m in _middlewares(app)):
        return
    server_options(app.config.get(CONFIG_KEY))  # a bad key fails here, not per request
    app.wsgi_app = _UpgradeMiddleware(app.wsgi_app, app, sock)  # type: ignore[method-assign]
    mismatch = _websocket_mismatch()
    if mismatch is not None:
        app.register_error_handler(mismatch, _on_mismatch)


def _install_on_registration(bp: Blueprint, sock: Sock) -> None:
    """A route on a user's blueprint: install on whatever app registers it
    (flask-sock needs no init_app for those)."""
    marker = "_pyws_sock_install"
    if getattr(bp, marker, False):
        return
    setattr(bp, marker, True)
    bp.record(lambda state: _install(cast(Flask, state.app), sock))


def _websocket_mismatch() -> Optional[type]:
    try:
        from werkzeug.routing import WebsocketMismatch
    except ImportError:  # Werkzeug < 2.2: rules do not tell WebSocket from HTTP
        return None
    return WebsocketMismatch


def _on_mismatch(error: Exception) -> Any:
    """Werkzeug routes a plain request to a ``websocket=True`` rule (every
    Sock route) nowhere and raises WebsocketMismatch (a bare 400): answer
    it with a word on what the URL expects.  An upgrade request Werkzeug
    does not take for one (no ``Connection: upgrade``) is broken: it gets
    the handshake's own refusal, as when a Sock route checks it."""
    environ: Environ = request.environ
    if not asks_for_websocket(environ):
        return _websocket_expected()
    try:
        negotiate(environ, environ_headers(environ), [])
    except Refusal as refusal:
        _log_refusal(environ, refusal)
        return _refusal_response(refusal, environ)
    return error


def _websocket_expected() -> Response:
    return Response("WebSocket expected\n", 400, {"Content-Type": "text/plain; charset=utf-8"})


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
