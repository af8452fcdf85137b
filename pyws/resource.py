"""gevent-websocket's application layer: ``Resource`` and ``WebSocketApplication``.

::

    from pyws import WebSocketServer
    from pyws.resource import Resource, WebSocketApplication

    class EchoApplication(WebSocketApplication):
        def on_open(self):
            print("connected", self.ws.path)

        def on_message(self, message):
            self.ws.send(message)

        def on_close(self, reason):
            print("closed", self.ws.close_code, reason)

    WebSocketServer(("127.0.0.1", 8000), Resource([
        ("^/echo", EchoApplication),   # WebSocket requests under /echo
        ("^/", flask_app),             # anything else: a plain WSGI app
    ])).serve_forever()

Serve it with a gevent server and pyws's handler (``WebSocketServer``,
``WSGIServer(..., handler_class=WebSocketHandler)``, or gunicorn with
``-k pyws.gunicorn.GeventWebSocketWorker``).
"""
from __future__ import annotations

import logging
import re
from typing import (Any, Callable, ClassVar, Iterable, List, Mapping, Optional,
                    Pattern, Sequence, Tuple, Type, Union, cast)

from .exceptions import ProtocolError
from ._runner import end_session
from .websocket import Message, WebSocket

__all__ = ["Resource", "WebSocketApplication"]

logger = logging.getLogger("pyws.resource")

Environ = Mapping[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Any, StartResponse], Iterable[bytes]]
App = Union[Type["WebSocketApplication"], WSGIApp]


class WebSocketApplication:
    """One WebSocket connection, handled by callbacks.

    ``on_open()`` is called once the connection is open, ``on_message(m)``
    for each message (``str`` or ``bytes``), ``on_close(reason)`` once when
    it has ended, whatever the cause (a close frame, a lost connection, a
    protocol error, an exception in a callback): ``reason`` is the close
    reason text (``self.ws.close_code`` has the code).  The default
    ``on_message`` echoes.  ``self.ws`` is the :class:`pyws.WebSocket`.
    """

    #: The subprotocol this application speaks ("" for none): when the
    #: client offers it, the handler selects it (see ``protocol_name``).
    PROTOCOL_NAME: ClassVar[str] = ""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws

    @classmethod
    def protocol_name(cls) -> str:
        """The subprotocol to select when the client offers it."""
        return cls.PROTOCOL_NAME

    def handle(self) -> None:
        """Run the connection: on_open, on_message for each message,
        on_close at the end (also when a callback raised)."""
        ws = self.ws
        raised: Optional[BaseException] = None
        try:
            self.on_open()
            while True:
                try:
                    message = ws.receive()
                except ProtocolError as exc:
                    logger.info("WebSocket %s failed by the peer: %s (%d)",
                                ws.path, exc, exc.code)
                    break
                if message is None:
                    break
                self.on_message(message)
        except BaseException as exc:
            raised = exc
            raise
        finally:
            end_session(ws, raised)
            self.on_close(ws.close_reason)

    def on_open(self) -> None:
        """The connection is open."""

    def on_message(self, message: Message) -> None:
        """A message arrived; by default, send it back."""
        self.ws.send(message)

    def on_close(self, reason: str) -> None:
        """The connection has ended; ``reason``: its close reason."""


class Resource:
    """A WSGI application routing requests by path, as gevent-websocket's.

    ``apps``: (pattern, app) pairs, or a mapping, tried in order; a pattern
    is a regular expression matched at the start of ``PATH_INFO``
    (``re.match``: "^/chat" and "/chat" are prefixes, "/chat$" is exact).
    An app is a :class:`WebSocketApplication` subclass, which takes the
    WebSocket requests, or a plain WSGI application, which takes the others.
    The first pattern that matches with an app of the right kind wins.  No
    match: 404; an HTTP request for a path only WebSocket apps serve: 400.
    """

    def __init__(self, apps: Union[Mapping[Union[str, Pattern[str]], App],
                                   Sequence[Tuple[Union[str, Pattern[str]], App]]]) -> None:
        items = apps.items() if isinstance(apps, Mapping) else apps
        self.apps: List[Tuple[Pattern[str], App]] = []
        for pattern, app in items:
            if not (_is_websocket_app(app) or callable(app)):
                raise TypeError(f"{app!r} is neither a WebSocketApplication subclass "
                                "nor a WSGI application")
            self.apps.append((re.compile(pattern), app))

    def _app_by_path(self, path: str, websocket: bool) -> Tuple[Optional[App], bool]:
        """The app for ``path`` and the request kind, and whether any app
        (of either kind) matched the path."""
        matched = False
        for pattern, app in self.apps:
            if pattern.match(path):
                matched = True
                if _is_websocket_app(app) == websocket:
                    return app, True
        return None, matched

    def app_protocol(self, path: str) -> str:
        """The subprotocol of the WebSocket application serving ``path``
        ("" if none): the handler offers it in the handshake."""
        app, _ = self._app_by_path(path, True)
        if isinstance(app, type) and issubclass(app, WebSocketApplication):
            return app.protocol_name()
        return ""

    def __call__(self, environ: Any, start_response: StartResponse) -> Iterable[bytes]:
        ws = environ.get("wsgi.websocket")
        path = environ.get("PATH_INFO", "")
        app, matched = self._app_by_path(path, ws is not None)
        if app is None:
            if matched and ws is None:
                return _answer(start_response, "400 Bad Request", b"WebSocket expected\n")
            return _answer(start_response, "404 Not Found", b"Not Found\n")
        if isinstance(app, type) and issubclass(app, WebSocketApplication):
            app(ws).handle()
            return []
        return cast(WSGIApp, app)(environ, start_response)


def _is_websocket_app(app: object) -> bool:
    return isinstance(app, type) and issubclass(app, WebSocketApplication)


def _answer(start_response: StartResponse, status: str, body: bytes) -> List[bytes]:
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body)))])
    return [body]
