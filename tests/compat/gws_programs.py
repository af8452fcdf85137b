"""One server program written for gevent-websocket 0.10.1, run on either
peer with only its imports switched, for test_gevent_websocket.py.

    python gws_programs.py PEER KIND      PEER: pyws | gevent-websocket
                                          KIND: server | server-debug | wsgiserver
                                                | handshake-only
    gunicorn ... gws_programs:app         (GWS_PEER=PEER in the environment)

It prints its port (tests/server_port.py), then serves:

- ``/echo``: gevent-websocket's README echo loop (a plain WSGI view);
- ``/view``: a view that never checks for None (``while True: ws.receive()``),
  which first sends what the WebSocket tells of the request;
- ``/chat``: gevent-websocket's chat example (a ``WebSocketApplication`` in a
  ``Resource``), broadcasting through ``ws.handler.server.clients``;
- ``/flask/chat``: the same chat as a Flask route reading
  ``request.environ['wsgi.websocket']``;
- ``/seq``: a ``WebSocketApplication`` recording its callbacks;
- ``/proto``: an application whose ``protocol_class`` has a PROTOCOL_NAME;
- ``/hooked``: served as plain WSGI by the ``pre_start_hook`` (KIND server);
- ``/page``: a plain page (through the Resource);
- ``/events?kind=K&id=I&count=N``: the records of kind K and id I, once
  there are N of them (up to 8 s), as JSON;
- ``/clients?count=N``: the nicknames in ``server.clients`` once it holds N.

Every WebSocket request carries ``?id=...``, chosen by the test, so that the
records of one test are told apart.
"""
from __future__ import annotations

import os
import sys

PEER = sys.argv[1] if __name__ == "__main__" else os.environ.get("GWS_PEER", "pyws")

# ruff: noqa: E402  (gevent patches first, then the imports)
if __name__ == "__main__":
    from gevent import monkey

    monkey.patch_all()

import json
import logging
import threading  # gevent's once patched (under gunicorn too)
from collections.abc import Iterable
from typing import Any, Callable
from urllib.parse import parse_qs

from flask import Flask, request
from gevent.pywsgi import WSGIServer

# The only difference between the two programs: where the names come from.
if PEER == "gevent-websocket":
    from geventwebsocket import (
        Resource,
        WebSocketApplication,
        WebSocketError,
        WebSocketServer,
    )
    from geventwebsocket.handler import WebSocketHandler
    from geventwebsocket.protocols.base import BaseProtocol
elif PEER == "pyws":
    from pyws import Resource, WebSocketApplication, WebSocketError, WebSocketServer  # type: ignore[assignment]
    from pyws.handler import WebSocketHandler  # type: ignore[assignment]
    from pyws.resource import BaseProtocol  # type: ignore[assignment]
else:
    raise SystemExit(f"unknown peer {PEER!r}: pyws or gevent-websocket")

StartResponse = Callable[..., Any]
Environ = dict[str, Any]

WAIT = 8.0  # seconds an /events or /clients request waits at most

RECORDS: list[dict[str, Any]] = []
CHANGED = threading.Condition()


def record(**fields: Any) -> None:
    with CHANGED:
        RECORDS.append(fields)
        CHANGED.notify_all()


def request_id(environ: Environ | None) -> str:
    query = parse_qs((environ or {}).get("QUERY_STRING", ""))
    return query.get("id", [""])[0]


class NotifyingClients(dict):  # type: ignore[type-arg]
    """``server.clients`` that wakes the /clients requests on each change."""

    def __setitem__(self, key: Any, value: Any) -> None:
        with CHANGED:
            super().__setitem__(key, value)
            CHANGED.notify_all()

    def __delitem__(self, key: Any) -> None:
        with CHANGED:
            super().__delitem__(key)
            CHANGED.notify_all()


#: The server whose clients /clients shows (set at startup, or by the
#: first WebSocket under gunicorn).
SERVER: Any = None


def json_answer(start_response: StartResponse, value: Any) -> list[bytes]:
    body = json.dumps(value).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def text_answer(start_response: StartResponse, text: str) -> list[bytes]:
    body = text.encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


def events(environ: Environ, start_response: StartResponse) -> list[bytes]:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    kind, wanted = query["kind"][0], query.get("id", [""])[0]
    count = int(query.get("count", ["1"])[0])

    def mine() -> list[dict[str, Any]]:
        return [r for r in RECORDS if r["kind"] == kind and r.get("id") == wanted]

    with CHANGED:
        CHANGED.wait_for(lambda: len(mine()) >= count, timeout=WAIT)
        found = mine()
    return json_answer(start_response, found)


def clients(environ: Environ, start_response: StartResponse) -> list[bytes]:
    count = int(parse_qs(environ.get("QUERY_STRING", "")).get("count", ["0"])[0])

    def current() -> Any:
        return getattr(SERVER, "clients", None) or {}

    with CHANGED:
        CHANGED.wait_for(lambda: len(current()) == count, timeout=WAIT)
        names = sorted(getattr(c, "nickname", "anonymous") for c in current().values())
    return json_answer(start_response, names)


# -- WebSocket views (plain WSGI) ---------------------------------------------

def echo_view(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """gevent-websocket's README: receive and send back until it fails."""
    ws = environ["wsgi.websocket"]
    wanted = request_id(environ)
    ended_by = None
    try:
        while True:
            message = ws.receive()
            ws.send(message)
    except WebSocketError:
        ended_by = "WebSocketError"
    record(kind="echo-ended", id=wanted, ended_by=ended_by)
    return []


def view_never_checking_none(environ: Environ, start_response: StartResponse) -> list[bytes]:
    global SERVER
    ws = environ["wsgi.websocket"]
    wanted = request_id(environ)
    handler = ws.handler
    SERVER = handler.server
    ws.send(json.dumps({
        "protocol": ws.protocol,
        "origin": ws.origin,
        "path": ws.path,
        "version": ws.version,
        "environ_is_request": ws.environ is environ,
        "current_app_is_programs": ws.current_app is PROGRAM.current_app,
        "logger_is_a_logger": isinstance(ws.logger, logging.Logger),
        "logger_is_handlers": ws.logger is handler.logger,
        "in_clients": handler.server.clients[handler.client_address].ws is ws,
        "active_client_ws": handler.active_client.ws is ws,
        "active_client_address": handler.active_client.address == handler.client_address,
    }))
    receives = 0
    try:
        while True:
            ws.receive()
            receives += 1
    except WebSocketError:
        record(kind="view-ended", id=wanted, ended_by="WebSocketError", receives=receives)
    return []


def hooked(environ: Environ, start_response: StartResponse) -> list[bytes]:
    return text_answer(start_response,
                       f"plain wsgi, websocket={environ.get('wsgi.websocket')!r}")


def pre_start_hook(handler: Any) -> bool:
    return bool(handler.environ.get("PATH_INFO") == "/hooked")


# -- gevent-websocket's chat example --------------------------------------------

def chat_step(ws: Any, raw: str) -> None:
    message = json.loads(raw)
    if message["msg_type"] == "message":
        for client in list(ws.handler.server.clients.values()):
            client.ws.send(json.dumps({"msg_type": "message",
                                       "nickname": message["nickname"],
                                       "message": message["message"]}))
    elif message["msg_type"] == "update_clients":
        ws.handler.active_client.nickname = message["nickname"]
        ws.send(json.dumps({
            "msg_type": "update_clients",
            "clients": sorted(getattr(client, "nickname", "anonymous")
                              for client in ws.handler.server.clients.values())}))


class ChatApplication(WebSocketApplication):
    def on_open(self) -> None:
        global SERVER
        SERVER = self.ws.handler.server

    def on_message(self, message: Any) -> None:
        if message is None:
            return
        chat_step(self.ws, message)

    def on_close(self, reason: Any) -> None:
        record(kind="chat-closed", id=request_id(self.ws.environ), reason=reason)


flask_app = Flask(__name__)


# websocket=True: Werkzeug >= 2.2 answers an upgrade request for any other
# route 400 before the view runs (gevent-websocket does nothing about it).
@flask_app.route("/flask/chat", websocket=True)
def flask_chat() -> str:
    global SERVER
    ws = request.environ["wsgi.websocket"]
    SERVER = ws.handler.server
    while True:
        message = ws.receive()
        if message is None:
            break
        chat_step(ws, message)
    return ""


# -- Resource applications --------------------------------------------------------

class SequenceApplication(WebSocketApplication):
    """Records each callback; echoes text."""

    def on_open(self) -> None:
        self.calls: list[Any] = [["on_open"]]
        self.id = request_id(self.ws.environ)
        current = self.ws.current_app
        self.calls.append(["current_app", current is self, callable(current.on_close)])

    def on_message(self, message: Any, *args: Any, **kwargs: Any) -> None:
        self.calls.append(["on_message", message])
        if message is not None:
            self.ws.send(message)

    def on_close(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(["on_close", list(args), kwargs])
        record(kind="sequence", id=self.id, calls=self.calls, closed=bool(self.ws.closed))


class NamedProtocol(BaseProtocol):
    PROTOCOL_NAME = "gws.test"


class NamedProtocolApplication(WebSocketApplication):
    protocol_class = NamedProtocol

    def on_open(self) -> None:
        protocol = self.protocol
        self.ws.send(json.dumps({
            "protocol_header": self.ws.protocol,
            "name": protocol.PROTOCOL_NAME,
            "protocol_name": type(self).protocol_name(),
            "app": protocol.app is self,
            "handler": protocol.handler is self.ws.handler,
            "server": protocol.server is self.ws.handler.server,
        }))


def page(environ: Environ, start_response: StartResponse) -> list[bytes]:
    return text_answer(start_response, "a plain page\n")


RESOURCE = Resource([
    ("^/chat$", ChatApplication),
    ("^/seq$", SequenceApplication),
    ("^/proto$", NamedProtocolApplication),
    ("^/page$", page),
])


class Program:
    """The server's application: routes by path; the Resource's protocols."""

    #: What ``ws.current_app`` gives (the server application's attribute).
    current_app = type("CurrentApp", (), {"on_close": lambda self, *args: None})()

    def app_protocol(self, path: str) -> str:
        return str(RESOURCE.app_protocol(path))

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/events":
            return events(environ, start_response)
        if path == "/clients":
            return clients(environ, start_response)
        if path == "/hooked":
            return hooked(environ, start_response)
        if path == "/echo":
            return echo_view(environ, start_response)
        if path == "/view":
            return view_never_checking_none(environ, start_response)
        if path.startswith("/flask/"):
            return flask_app(environ, start_response)  # type: ignore[no-any-return]
        return RESOURCE(environ, start_response)  # type: ignore[no-any-return]


PROGRAM = Program()
app = PROGRAM  # for gunicorn


class ClientsCreatingServer(WSGIServer):  # type: ignore[misc]
    """A plain WSGIServer: no ``clients`` until the handler makes one, which
    is kept as NotifyingClients (so /clients can wait on it)."""

    @property
    def clients(self) -> Any:
        try:
            return self.__dict__["_made_clients"]
        except KeyError:
            raise AttributeError("clients") from None

    @clients.setter
    def clients(self, value: Any) -> None:
        made = NotifyingClients(value)
        made.created_by_handler = True  # type: ignore[attr-defined]
        self.__dict__["_made_clients"] = made


class HandshakeOnlyHandler(WebSocketHandler):  # type: ignore[misc, valid-type]
    """``prevent_wsgi_call``: the handler does the handshake and leaves the
    WebSocket (``self.websocket``) to its subclass; the application is not
    called."""

    prevent_wsgi_call = True

    def run_application(self) -> None:
        super().run_application()
        ws = getattr(self, "websocket", None)
        if ws is not None:
            ws.send("handshake only")
            ws.close()


def main() -> None:
    global SERVER
    from tests.server_port import start_and_announce

    kind = sys.argv[2]
    server: Any
    if kind in ("server", "server-debug"):
        server = WebSocketServer(("127.0.0.1", 0), PROGRAM, debug=kind == "server-debug",
                                 pre_start_hook=pre_start_hook)
        server.clients = NotifyingClients()
    elif kind == "wsgiserver":
        server = ClientsCreatingServer(("127.0.0.1", 0), PROGRAM,
                                       handler_class=WebSocketHandler)
    elif kind == "handshake-only":
        server = WSGIServer(("127.0.0.1", 0), PROGRAM, handler_class=HandshakeOnlyHandler)
    else:
        raise SystemExit(f"unknown server kind {kind!r}")
    SERVER = server
    start_and_announce(server)
    server.serve_forever()


if __name__ == "__main__":
    main()
