"""gevent-websocket's application layer: ``Resource``, ``WebSocketApplication``
and ``BaseProtocol``.

::

    from pyws import WebSocketServer
    from pyws.resource import Resource, WebSocketApplication

    class EchoApplication(WebSocketApplication):
        def on_open(self):
            print("connected", self.ws.path)

        def on_message(self, message):
            if message is not None:        # None: the connection is over
                self.ws.send(message)

        def on_close(self, reason):
            print("closed", self.ws.close_code, self.ws.close_reason)

    WebSocketServer(("127.0.0.1", 8000), Resource([
        ("^/echo", EchoApplication),   # WebSocket requests under /echo
        ("^/", flask_app),             # anything else: a plain WSGI app
    ])).serve_forever()

Serve it with a gevent server and pyws's handler (``WebSocketServer``,
``WSGIServer(..., handler_class=WebSocketHandler)``, or gunicorn with
``-k pyws.gunicorn.GeventWebSocketWorker``).

This module is also where ``geventwebsocket.protocols.base`` maps to:
``from pyws.resource import BaseProtocol``.
"""
from __future__ import annotations

import logging
import re
from typing import (
    Any,
    Callable,
    ClassVar,
    Iterable,
    List,
    Mapping,
    Optional,
    Pattern,
    Sequence,
    Tuple,
    Type,
    Union,
    cast,
)

from ._runner import end_session
from .exceptions import WebSocketError
from .websocket import Message, WebSocket

__all__ = ["BaseProtocol", "Resource", "WebSocketApplication"]

logger = logging.getLogger("pyws.resource")

Environ = Mapping[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Any, StartResponse], Iterable[bytes]]
App = Union[Type["WebSocketApplication"], WSGIApp]
Routes = Union[Mapping[Union[str, Pattern[str]], App],
               Sequence[Tuple[Union[str, Pattern[str]], App]]]


class BaseProtocol:
    """The layer between a connection and its ``WebSocketApplication``, as
    gevent-websocket's: each callback is passed on to the application.  A
    subclass names its subprotocol in ``PROTOCOL_NAME`` (selected when the
    client offers it) and may translate messages on the way (a WAMP layer).
    """

    #: The subprotocol this layer speaks ("" for none).
    PROTOCOL_NAME: ClassVar[str] = ""

    def __init__(self, app: Optional[WebSocketApplication]) -> None:
        self._app = app

    @property
    def app(self) -> WebSocketApplication:
        """The application this protocol serves."""
        if self._app is None:
            raise RuntimeError(f"{type(self).__name__} has no application")
        return self._app

    @property
    def handler(self) -> Any:
        """The connection's ``WebSocketHandler``, None without a WebSocket."""
        ws = getattr(self.app, "ws", None)
        return getattr(ws, "handler", None) if ws is not None else None

    @property
    def server(self) -> Any:
        """The server (its ``clients``), None without a WebSocket."""
        handler = self.handler
        return getattr(handler, "server", None) if handler is not None else None

    def on_open(self) -> None:
        self.app.on_open()

    def on_message(self, message: Optional[Message]) -> None:
        self.app.on_message(message)

    def on_close(self, reason: Optional[str] = None) -> None:
        self.app.on_close(reason)


class WebSocketApplication:
    """One WebSocket connection, handled by callbacks, through an instance of
    ``protocol_class`` (``self.protocol``).

    ``on_open()`` once the connection is open; ``on_message(m)`` for each
    message (``str`` or ``bytes``), then ``on_message(None)`` once when the
    connection is over (as gevent-websocket: ``receive()`` returned None);
    then ``on_close(None)`` (gevent-websocket passes no reason:
    ``self.ws.close_code`` and ``self.ws.close_reason`` tell how it ended).
    pyws also calls ``on_close`` when a callback raised (the exception
    then propagates; the socket is closed with 1011).  The default
    ``on_message`` echoes, and ignores the final None.
    """

    #: The layer the callbacks go through; its ``PROTOCOL_NAME`` is
    #: the subprotocol selected when the client offers it.
    protocol_class: ClassVar[Type[BaseProtocol]] = BaseProtocol
    #: pyws's older spelling of the subprotocol, on the application; when
    #: set, it wins over ``protocol_class.PROTOCOL_NAME``.
    PROTOCOL_NAME: ClassVar[str] = ""

    def __init__(self, ws: WebSocket) -> None:
        self.protocol = self.protocol_class(self)
        self.ws = ws

    @classmethod
    def protocol_name(cls) -> str:
        """The subprotocol to select when the client offers it."""
        return cls.PROTOCOL_NAME or cls.protocol_class.PROTOCOL_NAME

    def handle(self) -> None:
        """Run the connection: on_open; on_message for each message and
        for the None that tells of the end; on_close once, at the end,
        whatever the cause (after the socket was closed)."""
        ws = self.ws
        protocol = self.protocol
        raised: Optional[BaseException] = None
        try:
            protocol.on_open()
            while True:
                try:
                    message = ws.receive()
                except WebSocketError:
                    # receive() after its None: the connection is over.
                    break
                protocol.on_message(message)
        except BaseException as exc:
            raised = exc
            raise
        finally:
            end_session(ws, raised)
            protocol.on_close()

    def on_open(self) -> None:
        """The connection is open."""

    def on_message(self, message: Optional[Message]) -> None:
        """A message arrived (None: the connection is over); by default,
        send it back."""
        if message is not None:
            self.ws.send(message)

    def on_close(self, reason: Optional[str] = None) -> None:
        """The connection has ended (``reason`` is None, as gevent-websocket
        passes; ``self.ws.close_code`` and ``close_reason`` tell more)."""


class Resource:
    """A WSGI application routing requests by path, as gevent-websocket's.

    ``apps``: (pattern, app) pairs, or a mapping (in its order), tried in
    order; a pattern is a regular expression matched at the start of
    ``PATH_INFO`` (``re.match``: "^/chat" and "/chat" are prefixes,
    "/chat$" is exact).  An app is a :class:`WebSocketApplication` subclass,
    which takes the WebSocket requests, or a plain WSGI application, which
    takes the others.  The first pattern that matches with an app of the
    right kind wins.  No match: 404 (a WebSocket is closed with 1008 and
    "404 Not Found"); an HTTP request for a path only WebSocket apps serve:
    400.  (gevent-websocket raises "No apps defined" in both cases.)

    A WebSocket connection's ``ws.current_app`` is not its application
    instance (the Resource has no ``current_app``), as in gevent-websocket.
    """

    def __init__(self, apps: Optional[Routes] = None) -> None:
        items: Iterable[Tuple[Union[str, Pattern[str]], App]]
        if apps is None:
            items = []
        elif isinstance(apps, Mapping):
            items = apps.items()
        else:
            items = apps
        self.apps: List[Tuple[Pattern[str], App]] = []
        for item in items:
            try:
                pattern, app = item
            except (TypeError, ValueError):
                raise TypeError(f"Resource takes (pattern, app) pairs, not {item!r}") from None
            if not (self._is_websocket_app(app) or callable(app)):
                raise TypeError(f"{app!r} is neither a WebSocketApplication subclass "
                                "nor a WSGI application")
            self.apps.append((re.compile(pattern), app))

    def _is_websocket_app(self, app: object) -> bool:
        """Whether ``app`` takes WebSocket requests (override it for
        WebSocket apps of another kind, as in gevent-websocket)."""
        return isinstance(app, type) and issubclass(app, WebSocketApplication)

    def _app_by_path(self, environ_path: str, is_websocket_request: bool) -> Optional[App]:
        """The first app of the request's kind whose pattern matches."""
        for pattern, app in self.apps:
            if pattern.match(environ_path) and (
                    self._is_websocket_app(app) == is_websocket_request):
                return app
        return None

    def _path_served(self, environ_path: str) -> bool:
        return any(pattern.match(environ_path) for pattern, _ in self.apps)

    def app_protocol(self, path: str) -> str:
        """The subprotocol of the WebSocket application serving ``path``
        ("" if none): the handler selects it when the client offers it."""
        app = self._app_by_path(path, True)
        protocol_name = getattr(app, "protocol_name", None)
        return str(protocol_name() or "") if callable(protocol_name) else ""

    def __call__(self, environ: Any, start_response: StartResponse) -> Iterable[bytes]:
        ws = environ.get("wsgi.websocket")
        path = environ.get("PATH_INFO", "")
        app = self._app_by_path(path, ws is not None)
        if app is None:
            if ws is None and self._path_served(path):
                return _answer(start_response, "400 Bad Request", b"WebSocket expected\n")
            return _answer(start_response, "404 Not Found", b"Not Found\n")
        if ws is not None:
            application = cast(Type[WebSocketApplication], app)(ws)
            application.ws = ws  # a constructor that did not keep it
            application.handle()
            return []
        return cast(WSGIApp, app)(environ, start_response)


def _answer(start_response: StartResponse, status: str, body: bytes) -> List[bytes]:
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body)))])
    return [body]
