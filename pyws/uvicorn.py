"""pyws under uvicorn: every ASGI app's WebSockets on pyws's engine.

::

    uvicorn app:app --ws pyws.uvicorn:WebSocketProtocol

uvicorn parses the HTTP request; when it asks for a WebSocket, uvicorn
hands the connection to ``WebSocketProtocol``, which checks the upgrade
request (pyws's C handshake checks), runs the ASGI application with a
``websocket`` scope, and, once the application accepts, serves the
connection with the one ``pyws.WebSocket`` session over an asyncio
transport (pyws/_aio_transport.py), as ``pyws.asyncio`` does.

Under gunicorn: ``gunicorn -k pyws.uvicorn.UvicornWorker app:app`` (uvicorn's
gunicorn worker, from the ``uvicorn-worker`` package, with this protocol).

The whole ASGI WebSocket specification (version 2.4): ``websocket.connect``,
``accept`` (subprotocol, headers), ``receive`` and ``send`` (text and bytes),
``close`` (code and reason), ``disconnect`` (code and reason), and the
``websocket.http.response`` denial extension.  uvicorn's options:
``ws_max_size`` (a larger message closes with 1009), ``ws_ping_interval`` and
``ws_ping_timeout`` (keepalive), ``ws_per_message_deflate``; incoming data
waiting for the application is bounded in bytes (64 KiB, then reading
pauses), which bounds what ``ws_max_queue`` bounds in messages.  On a
graceful shutdown open connections are closed with 1012, as uvicorn's own
implementations do, and the application's ``receive()`` gets a disconnect
with 1012.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar, Dict, List, Optional, Tuple, cast
from urllib.parse import unquote

from . import _aio, _core
from ._aio_transport import AsyncioTransport, transport_for
from ._handshake import Deflate, new_protocol, response_head, switching_protocols
from .asyncio import WebSocket as AsyncWebSocket
from .asyncio import next_message
from .compression import resolve
from .exceptions import ConnectionClosed, HandshakeError
from .options import Options
from .websocket import WebSocket as Session

try:
    from uvicorn.protocols.utils import (
        ClientDisconnected,
        get_local_addr,
        get_remote_addr,
        is_ssl,
    )
except ModuleNotFoundError as exc:  # pragma: no cover - the extra is missing
    from ._extras import missing

    raise missing(exc, "pyws.uvicorn") from None

# And UvicornWorker, made on first access (module __getattr__ below).
__all__ = ["WebSocketProtocol"]

logger = logging.getLogger("uvicorn.error")

Headers = List[Tuple[bytes, bytes]]

# The stages of a connection.
_HANDSHAKE = 0  # reading the request, then waiting for the app's answer
_ACCEPTING = 4  # the 101 is written, the session is being made
_OPEN = 1  # accepted: the session runs
_RESPONDING = 2  # sending a denial response (websocket.http.response)
_DONE = 3  # refused, or the connection is gone

#: The answer to a handshake the application failed (as uvicorn's own).
_INTERNAL_ERROR = (500, [(b"content-type", b"text/plain; charset=utf-8")],
                   b"Internal Server Error")


class WebSocketProtocol(asyncio.Protocol):
    """uvicorn's WebSocket protocol class (``--ws pyws.uvicorn:WebSocketProtocol``)."""

    def __init__(self, config: Any, server_state: Any, app_state: Dict[str, Any],
                 _loop: Optional[asyncio.AbstractEventLoop] = None) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.root_path: str = config.root_path
        self.app_state = app_state
        self.connections = server_state.connections
        self.tasks = server_state.tasks
        self.default_headers: Headers = list(server_state.default_headers)
        self.options = Options(max_message_size=config.ws_max_size,
                               ping_interval=config.ws_ping_interval,
                               ping_timeout=config.ws_ping_timeout,
                               compression=bool(config.ws_per_message_deflate))
        self.transport: Any = None
        self.scope: Dict[str, Any] = {}
        self._stage = _HANDSHAKE
        self._buf = bytearray()
        self._head_length = 0
        self._request_headers: List[Tuple[str, str]] = []
        self._accept_key = ""
        # The permessage-deflate answer and agreement, if the client offered it.
        self._deflate: Optional[Tuple[str, Deflate]] = None
        self._connect_sent = False
        self._lost = False
        self._shutting_down = False
        self._answered = asyncio.Event()  # the app accepted or refused, or the peer left
        self._session: Optional[Session] = None
        self._response: Optional[Tuple[int, Headers]] = None
        self._body: List[bytes] = []
        self._reads_soon = False  # the session's transport lets receive await readiness
        self._ws: Optional[AsyncWebSocket] = None  # the session's coroutine methods

    # -- asyncio's side, until the application accepts ---------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.connections.add(self)
        self.transport = transport

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self._gone()

    def _gone(self) -> None:
        if self._lost:
            return
        self._lost = True
        self.connections.discard(self)
        if self._stage != _OPEN:
            self._stage = _DONE
        self._answered.set()

    def data_received(self, data: bytes) -> None:
        if self._stage != _HANDSHAKE:
            return
        self._buf += data
        if self._head_length:
            if len(self._buf) > self._head_length + (1 << 20):
                self.transport.pause_reading()  # a client that does not wait for the 101
            return
        try:
            parsed = _core.parse_request(self._buf, 1 << 20)
            if parsed is None:
                return
            self._head_length, method, target, version, headers = parsed
            self._accept_key, _ = _core.check_request(method, version, headers)
            settings = resolve(self.options.compression)
            if settings is not None:
                agreed = _core.negotiate_deflate(headers, settings.params())
                if agreed is not None:
                    self._deflate = (agreed[0], (agreed[1], settings))
        except HandshakeError as error:
            self._respond_now(error.status, [(n.encode(), v.encode()) for n, v in error.headers],
                              f"WebSocket handshake failed: {error}\n".encode())
            return
        self._request_headers = headers
        self.scope = self._new_scope(target, headers)
        task = self.loop.create_task(self._run_asgi())
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def _new_scope(self, target: str, headers: List[Tuple[str, str]]) -> Dict[str, Any]:
        raw_path, _, query = target.partition("?")
        offered: List[str] = []
        for name, value in headers:
            if name.lower() == "sec-websocket-protocol":
                offered += [item.strip() for item in value.split(",") if item.strip()]
        transport = self.transport
        return {
            "type": "websocket",
            "asgi": {"version": self.config.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "wss" if is_ssl(transport) else "ws",
            "server": get_local_addr(transport),
            "client": get_remote_addr(transport),
            "root_path": self.root_path,
            "path": self.root_path + unquote(raw_path),
            "raw_path": self.root_path.encode("ascii") + raw_path.encode("ascii"),
            "query_string": query.encode("ascii"),
            "headers": [(name.lower().encode("latin-1"), value.encode("latin-1"))
                        for name, value in headers],
            "subprotocols": offered,
            "state": self.app_state.copy(),
            "extensions": {"websocket.http.response": {}},
        }

    def shutdown(self) -> None:
        """uvicorn is stopping: as its own implementations do, send an open
        connection a 1012 close frame and close it without waiting for the
        answer (the application's ``receive()`` gets 1012), and refuse a
        handshake still waiting for the application with 500."""
        self._shutting_down = True
        session = self._session
        if self._stage == _OPEN and session is not None:
            if not session.closed:
                _aio.spawn(session._drop, 1012, "")
            return
        if self._stage == _HANDSHAKE:
            self._respond_now(*_INTERNAL_ERROR)

    def _client_label(self) -> str:
        client = self.scope.get("client")
        path = self.scope.get("path", "")
        query = self.scope.get("query_string", b"")
        if query:
            path += "?" + query.decode("ascii")
        where = f"{client[0]}:{client[1]}" if client else "-"
        return f'{where} - "WebSocket {path}"'

    # -- the application ---------------------------------------------------------

    async def _run_asgi(self) -> None:
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException as exc:
            if isinstance(exc, Exception):
                logger.exception("Exception in ASGI application\n")
            if self._stage == _HANDSHAKE:
                self._respond_now(*_INTERNAL_ERROR)
            elif self._stage == _OPEN:
                await self._close_session(1011 if isinstance(exc, Exception) else 1001, "")
            elif self._stage == _ACCEPTING:
                self.transport.close()  # no session could be made after the 101
            if not isinstance(exc, Exception):
                raise
            return
        else:
            if result is not None:
                logger.error("ASGI callable should return None, but returned '%s'.", result)
        if self._stage == _HANDSHAKE:
            logger.error("ASGI callable returned without completing handshake.")
            self._respond_now(*_INTERNAL_ERROR)
        elif self._stage == _OPEN:
            await self._close_session(1000, "")
        elif self._stage == _RESPONDING:
            self._finish_response()

    async def _close_session(self, code: int, reason: str) -> None:
        session = self._session
        if session is not None and not session.closed:
            try:
                await _aio.call(session.close, code, reason)
            except (ConnectionClosed, OSError):
                pass

    async def receive(self) -> Dict[str, Any]:
        """The ASGI ``receive`` callable."""
        if not self._connect_sent:
            self._connect_sent = True
            return {"type": "websocket.connect"}
        if self._stage in (_HANDSHAKE, _ACCEPTING):
            await self._answered.wait()
        session = self._session
        if self._stage != _OPEN or session is None:
            return {"type": "websocket.disconnect", "code": 1006}
        message = await next_message(session, self._reads_soon)
        if message is None:
            return self._disconnected(session)
        if message.__class__ is str:
            return {"type": "websocket.receive", "text": message}
        return {"type": "websocket.receive", "bytes": message}

    def _disconnected(self, session: Session) -> Dict[str, Any]:
        if self._shutting_down:
            return {"type": "websocket.disconnect", "code": 1012, "reason": ""}
        return {"type": "websocket.disconnect", "code": session.close_code or 1005,
                "reason": session.close_reason}

    async def send(self, message: Dict[str, Any]) -> None:
        """The ASGI ``send`` callable."""
        kind = message["type"]
        stage = self._stage
        if self._lost and stage != _OPEN:
            raise ClientDisconnected()
        if stage == _HANDSHAKE:
            if kind == "websocket.accept":
                await self._accept(message.get("subprotocol"), list(message.get("headers", [])))
            elif kind == "websocket.close":
                logger.info("%s 403", self._client_label())
                self._respond_now(403, [], b"")
            elif kind == "websocket.http.response.start":
                status = message["status"]
                if not 100 <= status < 600:
                    raise RuntimeError(f"Invalid HTTP status code '{status}' in response.")
                logger.info("%s %d", self._client_label(), status)
                self._stage = _RESPONDING
                self._response = (status, list(message.get("headers", [])))
                self._answered.set()
            else:
                raise RuntimeError("Expected ASGI message 'websocket.accept', 'websocket.close' "
                                   f"or 'websocket.http.response.start' but got '{kind}'.")
        elif stage == _ACCEPTING:
            raise RuntimeError(f"Unexpected ASGI message '{kind}' while "
                               "'websocket.accept' is under way.")
        elif stage == _OPEN:
            session = cast(Session, self._session)
            if kind == "websocket.send":
                data = message.get("bytes")
                if data is None:
                    data = message.get("text")
                if data is None:
                    raise RuntimeError("websocket.send needs 'text' or 'bytes'")
                try:
                    await self._ws.send(data)  # type: ignore[union-attr]
                except ConnectionClosed:
                    raise ClientDisconnected() from None
            elif kind == "websocket.close":
                if session.closed:
                    raise ClientDisconnected()
                await self._close_session(message.get("code", 1000),
                                          message.get("reason") or "")
            else:
                raise RuntimeError("Expected ASGI message 'websocket.send' or "
                                   f"'websocket.close', but got '{kind}'.")
        elif stage == _RESPONDING:
            if kind != "websocket.http.response.body":
                raise RuntimeError("Expected ASGI message 'websocket.http.response.body' "
                                   f"but got '{kind}'.")
            self._body.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                self._finish_response()
        else:
            raise RuntimeError(f"Unexpected ASGI message '{kind}', after sending "
                               "'websocket.close' or a response.")

    # -- answers -----------------------------------------------------------------

    async def _accept(self, subprotocol: Optional[str], extra: Headers) -> None:
        headers = _core.response_headers(self._accept_key, subprotocol)
        deflate = None
        if self._deflate is not None:
            headers.append(("Sec-WebSocket-Extensions", self._deflate[0]))
            deflate = self._deflate[1]
        for name, value in self.default_headers + extra:
            headers.append((_text(name), _text(value)))
        logger.info("%s [accepted]", self._client_label())
        self._stage = _ACCEPTING  # no HTTP answer may follow the 101 now
        self.transport.write(switching_protocols(headers))
        pending = bytes(self._buf[self._head_length:])
        self._buf = bytearray()
        transport = transport_for(self.transport)
        self._reads_soon = hasattr(transport, "read_soon")
        if isinstance(transport, AsyncioTransport):
            transport.on_lost = self._gone  # else this protocol still hears of it
        options = self.options
        self._session = await _aio.call(
            Session, transport.sock, new_protocol(True, options.max_message_size, deflate),
            path=self.scope["path"], subprotocol=subprotocol,
            origin=_header(self._request_headers, "origin"),
            protocol=_header(self._request_headers, "sec-websocket-protocol"),
            close_timeout=options.close_timeout, ping_interval=options.ping_interval,
            ping_timeout=options.ping_timeout, idle_timeout=options.idle_timeout,
            pending=pending, transport=transport)
        self._ws = AsyncWebSocket(self._session)
        self._stage = _OPEN
        if self._lost and isinstance(transport, AsyncioTransport):
            transport.connection_lost(None)  # gone while the 101 was written
        elif self._shutting_down:
            _aio.spawn(self._session._drop, 1012, "")  # uvicorn stopped meanwhile
        self._answered.set()

    def _respond_now(self, status: int, headers: Headers, body: bytes) -> None:
        """Answer the handshake with an HTTP response and close."""
        if self._stage not in (_HANDSHAKE, _RESPONDING):
            return
        self._response = (status, headers)
        self._body = [body]
        self._finish_response()

    def _finish_response(self) -> None:
        response = self._response
        if response is None or self._stage == _DONE:
            return
        status, headers = response
        body = b"".join(self._body)
        self._stage = _DONE
        self._answered.set()
        fields = [(_text(name), _text(value)) for name, value in self.default_headers + headers]
        names = {_text(name).lower() for name, _ in headers}
        if "content-length" not in names and "transfer-encoding" not in names:
            fields.append(("content-length", str(len(body))))
        if "connection" not in names:
            fields.append(("connection", "close"))
        if not self.transport.is_closing():
            self.transport.write(response_head(status, fields) + body)
            self.transport.close()


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)


def _header(headers: List[Tuple[str, str]], name: str) -> Optional[str]:
    values = [value for key, value in headers if key.lower() == name]
    return ", ".join(values) if values else None



def __getattr__(name: str) -> Any:
    # The gunicorn worker is made on first use: it needs gunicorn.
    if name != "UvicornWorker":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from uvicorn_worker import UvicornWorker as base
    except ModuleNotFoundError as exc:
        from ._extras import missing

        raise missing(exc, "pyws.uvicorn.UvicornWorker") from None

    class UvicornWorker(base):  # type: ignore[misc]
        """uvicorn's gunicorn worker, serving WebSockets with pyws."""

        CONFIG_KWARGS: ClassVar[Dict[str, Any]] = {
            **base.CONFIG_KWARGS, "ws": "pyws.uvicorn:WebSocketProtocol"}

    UvicornWorker.__module__ = __name__
    globals()[name] = UvicornWorker
    return UvicornWorker
