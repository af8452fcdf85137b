"""pyws under asyncio: ``serve`` and ``connect``, on the same engine and session.

::

    import asyncio
    import pyws.asyncio

    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    async def main():
        async with pyws.asyncio.serve(echo, "127.0.0.1", 9527) as server:
            await server.serve_forever()

    asyncio.run(main())

Each connection is the one ``pyws.WebSocket`` session (pyws/websocket.py)
over an asyncio transport (pyws/_aio_transport.py); this module's
``WebSocket`` gives its methods as coroutines, run by pyws/_aio.py, so that
receive, send, close, keepalive and the close codes are those of every
other entry point.  Options are ``pyws.options.Options``, as everywhere.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl as _ssl
from types import TracebackType
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Dict,
    Generator,
    Generic,
    List,
    Optional,
    Sequence,
    Set,
    Tuple,
    Type,
    TypeVar,
    Union,
)

from . import _aio, _core
from . import client as _client
from ._aio_transport import transport_for
from ._handshake import (
    HandshakePolicy,
    Refusal,
    negotiate,
    new_protocol,
    response_head,
    switching_protocols,
)
from ._runner import close_code_for, log_connection_end
from .compression import Compression
from .exceptions import ConnectionClosed, HandshakeError
from .options import DEFAULTS, Options
from .transport import Transport
from .websocket import READ_SLOW, READ_WAIT, Message, close_quietly
from .websocket import WebSocket as Session

__all__ = ["WebSocket", "serve", "Server", "connect", "ConnectionClosed", "HandshakeError"]
# next_message is pyws.uvicorn's too (package-internal).

logger = logging.getLogger("pyws.asyncio")

T = TypeVar("T")

#: ``handler(ws)``: the coroutine that serves one connection.
Handler = Callable[["WebSocket"], Awaitable[Any]]


class WebSocket:
    """One open WebSocket connection under asyncio, client or server side.

    The methods of ``pyws.WebSocket`` as coroutines, with the same contract:
    ``await receive()`` returns str (text) or bytes (binary), and None once
    when the connection is over, then raises ConnectionClosed; ``async for``
    ends quietly at the end.  ``await send(message)`` waits only while the
    write buffer is over its high-water mark.  ``await close(code,
    reason)`` waits at most ``close_timeout`` for the peer's answer.  Only
    one task may receive at a time; any number may send.

    ``session`` is the ``pyws.WebSocket`` underneath (its attributes are
    read here; do not call its blocking methods from a coroutine).
    """

    __slots__ = ("session", "request_headers", "remote_address", "_reads_soon",
                 "__weakref__")

    def __init__(self, session: Session, request_headers: Sequence[Tuple[str, str]] = (),
                 remote_address: Any = None) -> None:
        self.session = session
        #: The opening request's headers, (name, value) pairs (server side).
        self.request_headers: List[Tuple[str, str]] = list(request_headers)
        #: The peer's address.
        self.remote_address = remote_address
        # Whether the transport lets a receive await readiness in the loop.
        self._reads_soon = hasattr(session.transport, "read_soon")

    # -- the session's state ---------------------------------------------------

    @property
    def closed(self) -> bool:
        return self.session.closed

    @property
    def close_code(self) -> Optional[int]:
        return self.session.close_code

    @property
    def close_reason(self) -> str:
        return self.session.close_reason

    @property
    def path(self) -> Optional[str]:
        return self.session.path

    @property
    def origin(self) -> Optional[str]:
        return self.session.origin

    @property
    def subprotocol(self) -> Optional[str]:
        return self.session.subprotocol

    @property
    def protocol(self) -> Optional[str]:
        return self.session.protocol

    @property
    def environ(self) -> Optional[Dict[str, Any]]:
        return self.session.environ

    @property
    def compressed(self) -> bool:
        return self.session.compressed

    @property
    def is_server(self) -> bool:
        return self.session.is_server

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<pyws.asyncio.WebSocket {self.path!r} {state}>"

    # -- the session's methods, as coroutines -----------------------------------

    async def receive(self) -> Optional[Message]:
        """The next message; None once at the end, then ConnectionClosed."""
        session = self.session
        return await next_message(session, self._reads_soon, session.receive)

    async def send(self, message: Union[str, bytes, bytearray, memoryview],
                   binary: Optional[bool] = None) -> None:
        """Send one message (str as text, bytes-like as binary, unless
        ``binary`` says otherwise).  ConnectionClosed once closed."""
        session = self.session
        if session.sends_now():
            session.send(message, binary)  # nothing to wait for: no worker needed
        else:
            await _aio.call(session.send, message, binary)

    async def close(self, code: int = 1000, reason: Union[str, bytes] = "") -> None:
        """Close with ``code`` and ``reason`` and wait for the peer's answer
        (at most ``close_timeout``).  Idempotent."""
        await _aio.call(self.session.close, code, reason)

    async def ping(self, data: Union[str, bytes] = b"") -> None:
        """Send a ping (at most 125 bytes of payload)."""
        await _aio.call(self.session.ping, data)

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        message = await next_message(self.session, self._reads_soon)
        if message is None:
            raise StopAsyncIteration
        return message

    async def __aenter__(self) -> WebSocket:
        return self

    async def __aexit__(self, exc_type: Optional[Type[BaseException]],
                        exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        await self.close()


async def next_message(session: Session, reads_soon: bool,
                       slow: Optional[Callable[[], Optional[Message]]] = None
                       ) -> Optional[Message]:
    """The next message from a coroutine (package-internal: pyws.uvicorn's
    too), or None at the end.  When the transport lets a coroutine await
    readiness (``reads_soon``), receive's first step runs in the loop
    (``Session.take_ready``) and the wait is an await here; anything else
    runs the whole of ``slow`` (default: ``session.next_message``) in a
    worker."""
    if reads_soon:
        while True:
            got = session.take_ready()
            if got is READ_WAIT:
                ready = session.read_soon()
                if ready is None:
                    break  # another coroutine awaits it
                try:
                    await ready
                except asyncio.CancelledError:
                    raise
                except Exception:
                    break  # the slow path meets the error again
                finally:
                    session.read_done()
            elif got is READ_SLOW:
                break
            else:
                return got  # type: ignore[return-value]
    return await _aio.call(slow if slow is not None else session.next_message)


# -- the server ------------------------------------------------------------------

class Server:
    """What ``serve`` starts: the listening sockets and the open connections.

    ``close()`` stops listening and closes every open connection with 1001
    (going away); ``await wait_closed()`` waits until the handlers are over
    (those still running after ``close_timeout`` more seconds are cancelled).
    """

    def __init__(self, handler: Handler, options: Options,
                 policy: HandshakePolicy) -> None:
        self._handler = handler
        self.options = options
        self._policy = policy
        self._server: Optional[asyncio.base_events.Server] = None
        #: The open connections.
        self.connections: Set[WebSocket] = set()
        self._tasks: Set[asyncio.Task[None]] = set()
        self._closing: Optional[asyncio.Task[None]] = None

    @property
    def sockets(self) -> Tuple[Any, ...]:
        return tuple(self._server.sockets) if self._server is not None else ()

    @property
    def port(self) -> int:
        """The port of the first listening socket (handy with port 0)."""
        return int(self.sockets[0].getsockname()[1])

    def _protocol(self) -> asyncio.Protocol:
        return _Upgrade(self)

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    def close(self) -> None:
        """Stop accepting; close the open connections with 1001."""
        if self._server is not None:
            self._server.close()
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close_all())

    async def _close_all(self) -> None:
        sockets = list(self.connections)
        await asyncio.gather(*(ws.close(1001, "server shutting down") for ws in sockets),
                             return_exceptions=True)
        tasks = list(self._tasks)
        if tasks:
            grace = self.options.close_timeout
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    async def wait_closed(self) -> None:
        if self._server is not None:
            await self._server.wait_closed()
        if self._closing is not None:
            await self._closing

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()
        await self.wait_closed()

    # -- one connection ------------------------------------------------------------

    def _start(self, transport: Transport, environ: Dict[str, Any],
               headers: List[Tuple[str, str]], subprotocol: Optional[str],
               deflate: Any, pending: bytes) -> None:
        task = asyncio.get_running_loop().create_task(
            self._run(transport, environ, headers, subprotocol, deflate, pending))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, transport: Transport, environ: Dict[str, Any],
                   headers: List[Tuple[str, str]], subprotocol: Optional[str],
                   deflate: Any, pending: bytes) -> None:
        options = self.options
        try:
            session = await _aio.call(
                Session, transport.sock, new_protocol(True, options.max_message_size, deflate),
                environ=environ, path=environ["PATH_INFO"], origin=environ.get("HTTP_ORIGIN"),
                subprotocol=subprotocol, protocol=environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL"),
                close_timeout=options.close_timeout, ping_interval=options.ping_interval,
                ping_timeout=options.ping_timeout, idle_timeout=options.idle_timeout,
                pending=pending, transport=transport)
        except Exception:
            # Out of memory, or the peer gone while the 101 went out.
            logger.debug("WebSocket %s: no session", environ["PATH_INFO"], exc_info=True)
            transport.close()
            return
        ws = WebSocket(session, headers, environ.get("REMOTE_ADDR"))
        self.connections.add(ws)
        raised: Optional[BaseException] = None
        try:
            await self._handler(ws)
        except BaseException as exc:
            raised = exc
            if isinstance(exc, Exception) and not log_connection_end(session, exc):
                logger.exception("WebSocket handler for %s failed", session.path)
        finally:
            self.connections.discard(ws)
            code, reason = close_code_for(raised, None)
            if not session.closed:
                await _aio.call(close_quietly, session, code, reason, logger)
        if raised is not None and not isinstance(raised, Exception):
            raise raised  # cancellation and the like go on


class _Upgrade(asyncio.Protocol):
    """A new connection until its opening handshake is over: reads the
    request head (within ``handshake_timeout`` and ``max_request_size``),
    answers 101 or an HTTP error, then hands the connection to an
    ``Transport`` and the handler."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._transport: Any = None
        self._buf = bytearray()
        self._timer: Optional[asyncio.TimerHandle] = None
        self._done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        timeout = self._server.options.handshake_timeout
        if timeout is not None:
            self._timer = asyncio.get_running_loop().call_later(timeout, self._time_out)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self._stop_timer()
        self._done = True

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _time_out(self) -> None:
        self._timer = None
        if not self._done:
            self._refuse(Refusal(408, "WebSocket handshake timed out: the request head "
                                      "did not arrive in time\n"))

    def data_received(self, data: bytes) -> None:
        if self._done:
            return
        self._buf += data
        limit = self._server.options.max_request_size
        try:
            parsed = _core.parse_request(self._buf, limit if limit is not None else 1 << 30)
        except HandshakeError as exc:
            self._refuse(Refusal.from_handshake_error(exc))
            return
        if parsed is None:
            return
        if self._server._closing is not None:
            self._refuse(Refusal(503, "WebSocket handshake refused: the server is "
                                      "shutting down\n"))
            return
        self._stop_timer()
        self._done = True
        head_length, method, target, version, headers = parsed
        environ = _environ(method, target, version, headers, self._transport)
        try:
            answer, subprotocol, deflate = negotiate(environ, headers, [self._server._policy])
        except Refusal as refusal:
            self._done = False
            self._refuse(refusal)
            return
        except Exception:
            logger.exception("WebSocket handshake for %s failed", environ["PATH_INFO"])
            self._done = False
            self._refuse(Refusal(500, "WebSocket handshake failed: server error\n"))
            return
        aio = self._transport
        aio.write(switching_protocols(answer))
        transport = transport_for(aio)
        self._server._start(transport, environ, headers, subprotocol, deflate,
                            bytes(self._buf[head_length:]))

    def _refuse(self, refusal: Refusal) -> None:
        self._stop_timer()
        self._done = True
        status_line = refusal.status_line
        logger.info("WebSocket handshake refused: %s", status_line)
        head = response_head(refusal.status, refusal.response_headers(),
                             status_line.split(" ", 1)[1])
        self._transport.write(head + refusal.body)
        self._transport.close()


def _environ(method: str, target: str, version: str, headers: Sequence[Tuple[str, str]],
             transport: asyncio.BaseTransport) -> Dict[str, Any]:
    """A WSGI-style environ of the upgrade request: ``on_upgrade`` hooks and
    ``ws.environ`` read the request the same way on every server."""
    path, _, query = target.partition("?")
    environ: Dict[str, Any] = {
        "REQUEST_METHOD": method, "SERVER_PROTOCOL": version, "PATH_INFO": path,
        "QUERY_STRING": query, "RAW_URI": target, "SCRIPT_NAME": "",
        "wsgi.url_scheme": "https" if transport.get_extra_info("sslcontext") else "http",
    }
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple):
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = str(peer[0]), str(peer[1])
    local = transport.get_extra_info("sockname")
    if isinstance(local, tuple):
        environ["SERVER_NAME"], environ["SERVER_PORT"] = str(local[0]), str(local[1])
    for name, value in headers:
        key = "HTTP_" + name.upper().replace("-", "_")
        if key in environ:
            environ[key] += "," + value
        else:
            environ[key] = value
    for key in ("CONTENT_LENGTH", "CONTENT_TYPE"):
        if "HTTP_" + key in environ:
            environ[key] = environ.pop("HTTP_" + key)
    return environ


class _Opening(Generic[T]):
    """What ``serve()`` and ``connect()`` return: awaitable (the open
    object) and an async context manager (``finish`` on exit)."""

    def __init__(self, start: Callable[[], Awaitable[T]],
                 finish: Callable[[T], Awaitable[None]]) -> None:
        self._start = start
        self._finish = finish
        self._opened: Optional[T] = None

    def __await__(self) -> Generator[Any, None, T]:
        return self._start().__await__()

    async def __aenter__(self) -> T:
        self._opened = await self._start()
        return self._opened

    async def __aexit__(self, *exc: Any) -> None:
        if self._opened is not None:
            await self._finish(self._opened)


async def _close_server(server: Server) -> None:
    server.close()
    await server.wait_closed()


def serve(handler: Handler, host: Union[str, Sequence[str], None] = None,
          port: Optional[int] = None, *, ssl: Optional[_ssl.SSLContext] = None,
          sock: Optional[socket.socket] = None, backlog: int = 1024,
          options: Optional[Options] = None, **keywords: Any) -> _Opening[Server]:
    """Serve WebSockets on ``host``:``port`` (or on the listening ``sock``),
    over TLS with ``ssl``, running ``await handler(ws)`` for each connection.

    ``keywords`` are the options of ``pyws.options.Options`` (limits,
    keepalive, compression, origins, subprotocols, extra headers,
    ``on_upgrade``, handshake limits), or give ``options`` whole.  The
    handler's end closes the connection as everywhere in pyws: a return
    with 1000, an exception with 1011 (logged), the server stopping with
    1001.  Use as ``async with serve(...) as server`` or ``server = await
    serve(...)``."""
    if options is not None and keywords:
        raise TypeError("serve() takes options= or option keywords, not both")
    # An unknown keyword is a TypeError naming it and listing the options.
    built = options if options is not None else Options.build(None, **keywords)
    if not callable(handler):
        raise TypeError(f"handler must be a coroutine function, not {handler!r}")

    async def start() -> Server:
        server = Server(handler, built, HandshakePolicy.from_options(built))
        loop = asyncio.get_running_loop()
        server._server = await loop.create_server(
            server._protocol, host, port, ssl=ssl, sock=sock,  # type: ignore[arg-type]
            backlog=backlog)
        return server

    return _Opening(start, _close_server)


# -- the client ------------------------------------------------------------------

class _Handshake(asyncio.Protocol):
    """The client's connection until the server's answer is complete."""

    def __init__(self, request: _client.Request) -> None:
        self._request = request
        self._buf = bytearray()
        self._aio: Any = None
        #: The server's answer and the transport the connection now has.
        self.answer: asyncio.Future[Tuple[_client.Answer, Transport]] = \
            asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._aio = transport
        transport.write(self._request.data)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self.answer.done():
            return
        self._buf += data
        try:
            answer = self._request.check_response(self._buf)
        except HandshakeError as exc:
            self.answer.set_exception(_explained(exc, self._buf))
            return
        if answer is not None:
            # Switched at once: what arrives next is the WebSocket stream.
            transport = transport_for(self._aio)
            self.answer.set_result((answer, transport))

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        if not self.answer.done():
            self.answer.set_exception(HandshakeError(
                "the server closed the connection during the opening handshake", 0))


def _explained(error: HandshakeError, buf: bytearray) -> HandshakeError:
    """``error`` with the server's status line and what came of its body."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return error
    status_line = bytes(buf[:buf.find(b"\r\n")]).decode("latin-1")
    body = bytes(buf[end + 4:])
    text = " ".join(body[:512].decode("utf-8", "replace").split())
    message = f"{error.message}; the server answered {status_line!r}"
    if text:
        message += f": {text}"
    return HandshakeError(message, error.status, error.headers, status_line=status_line,
                          body=body)


def connect(url: str, subprotocols: Optional[Sequence[str]] = None,
            headers: Optional[_client.Headers] = None, timeout: Optional[float] = None,
            max_message_size: int = DEFAULTS.max_message_size,
            origin: Optional[str] = None, *,
            ssl_context: Optional[_ssl.SSLContext] = None,
            close_timeout: Optional[float] = DEFAULTS.close_timeout,
            ping_interval: Optional[float] = DEFAULTS.ping_interval,
            ping_timeout: Optional[float] = DEFAULTS.ping_timeout,
            idle_timeout: Optional[float] = DEFAULTS.idle_timeout,
            compression: Compression = DEFAULTS.compression,
            options: Optional[Options] = None) -> _Opening[WebSocket]:
    """Open a WebSocket connection to ``url`` (``ws://`` or ``wss://``):
    the arguments and errors of ``pyws.connect``.  Use as ``async with
    connect(url) as ws`` (closed on exit) or ``ws = await connect(url)``.
    ``timeout`` bounds the TCP connect plus the opening handshake."""
    request = _client.prepare(url, subprotocols, headers, origin, options, timeout,
                              max_message_size=max_message_size,
                              close_timeout=close_timeout, ping_interval=ping_interval,
                              ping_timeout=ping_timeout, idle_timeout=idle_timeout,
                              compression=compression)

    async def open_() -> WebSocket:
        if request.timeout is None:
            return await _open(request, ssl_context)
        return await asyncio.wait_for(_open(request, ssl_context), request.timeout)

    return _Opening(open_, WebSocket.close)


async def _open(request: _client.Request, ssl_context: Optional[_ssl.SSLContext]) -> WebSocket:
    loop = asyncio.get_running_loop()
    target = request.target
    context = None
    if target.secure:
        context = ssl_context or _ssl.create_default_context()
    handshake = _Handshake(request)
    aio, _ = await loop.create_connection(
        lambda: handshake, target.host, target.port, ssl=context,
        server_hostname=target.host if context is not None else None)
    try:
        answer, transport = await handshake.answer
        session = await _aio.call(request.websocket, transport.sock, answer,
                                  transport=transport)
    except BaseException:
        aio.close()
        raise
    return WebSocket(session, (), aio.get_extra_info("peername"))

