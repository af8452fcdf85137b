"""pyws.asyncio: serve and connect, against third-party clients and servers.

Every server test runs over both asyncio transports: the fd transport
(plain TCP: the engine reads and writes the socket) and the transport
through asyncio's own (TLS here), so that what a handler sees does not
depend on how the bytes move.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from typing import Any, AsyncIterator, Awaitable, Callable, List, Optional, Tuple

import pytest
import websocket as websocket_client  # websocket-client
import websockets
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import serve as ws_serve

import pyws.asyncio
from pyws import ConnectionClosed, HandshakeError
from pyws._aio_transport import AsyncioFdTransport, AsyncioTransport
from tests.deploy_support import make_certificate

Handler = Callable[[pyws.asyncio.WebSocket], Awaitable[Any]]

TIMEOUT = 10.0


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> Tuple[ssl.SSLContext, ssl.SSLContext]:
    cert, key = make_certificate(tmp_path_factory.mktemp("aio-tls"))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client


@pytest.fixture(params=["fd", "through-asyncio"])
def mode(request, tls) -> dict:
    """How the server's connections move bytes: plain TCP (the fd
    transport) or TLS (through asyncio's transport)."""
    if request.param == "fd":
        return {"ssl": None, "client_ssl": None, "scheme": "ws", "kind": AsyncioFdTransport}
    return {"ssl": tls[0], "client_ssl": tls[1], "scheme": "wss", "kind": AsyncioTransport}


class Served:
    """A running pyws.asyncio server and how to reach it."""

    def __init__(self, server: pyws.asyncio.Server, mode: dict) -> None:
        self.server = server
        self.mode = mode

    def url(self, path: str = "/ws") -> str:
        return f"{self.mode['scheme']}://127.0.0.1:{self.server.port}{path}"

    def connect(self, path: str = "/ws", **keywords: Any) -> Any:
        return pyws.asyncio.connect(self.url(path), ssl_context=self.mode["client_ssl"],
                                    **keywords)

    async def open_raw(self) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A plain stream to the server (TLS in TLS mode), for raw HTTP."""
        return await asyncio.open_connection(
            "127.0.0.1", self.server.port, ssl=self.mode["client_ssl"],
            server_hostname="127.0.0.1" if self.mode["client_ssl"] else None)

    def websockets_connect(self, path: str = "/ws", **keywords: Any) -> Any:
        return ws_connect(self.url(path), ssl=self.mode["client_ssl"], **keywords)


async def serving(handler: Handler, mode: dict, **options: Any) -> AsyncIterator[Served]:
    async with pyws.asyncio.serve(handler, "127.0.0.1", 0, ssl=mode["ssl"],
                                  **options) as server:
        yield Served(server, mode)


def serve_and(handler: Handler, mode: dict, body: Callable[[Served], Awaitable[Any]],
              **options: Any) -> Any:
    async def main() -> Any:
        async with pyws.asyncio.serve(handler, "127.0.0.1", 0, ssl=mode["ssl"],
                                      **options) as server:
            return await body(Served(server, mode))
    return run(main())


async def echo(ws: pyws.asyncio.WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


# -- echo with third-party clients -------------------------------------------

def test_echo_text_and_binary_with_the_websockets_client(mode):
    async def body(served: Served) -> List[Any]:
        async with served.websockets_connect() as client:
            await client.send("héllo")
            text = await client.recv()
            await client.send(b"\x00\xff" * 5000)
            data = await client.recv()
        return [text, data]

    assert serve_and(echo, mode, body) == ["héllo", b"\x00\xff" * 5000]


def test_echo_with_websocket_client_in_a_thread(mode):
    def talk(url: str) -> List[Any]:
        sslopt = {"ca_certs": None, "cert_reqs": ssl.CERT_NONE} if mode["ssl"] else None
        client = websocket_client.create_connection(url, timeout=5, sslopt=sslopt)
        try:
            client.send("one")
            first = client.recv()
            client.send_binary(b"two")
            second = client.recv()
        finally:
            client.close()
        return [first, second]

    async def body(served: Served) -> List[Any]:
        return await asyncio.to_thread(talk, served.url())

    assert serve_and(echo, mode, body) == ["one", b"two"]


def test_pyws_client_against_a_websockets_server():
    async def main() -> Tuple[Any, ...]:
        async def handler(conn: Any) -> None:
            async for message in conn:
                await conn.send(message)
        async with ws_serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with pyws.asyncio.connect(f"ws://127.0.0.1:{port}/") as ws:
                await ws.send("ping?")
                text = await ws.receive()
                await ws.send(b"\x01" * 70000)
                data = await ws.receive()
                compressed = ws.compressed
            return text, len(data), compressed, ws.close_code
    assert run(main()) == ("ping?", 70000, True, 1000)


def test_the_transport_follows_the_socket(mode):
    kinds: List[type] = []

    async def handler(ws: pyws.asyncio.WebSocket) -> None:
        kinds.append(type(ws.session.transport))
        await echo(ws)

    async def body(served: Served) -> Any:
        async with served.connect() as ws:
            await ws.send("x")
            return await ws.receive()

    assert serve_and(handler, mode, body) == "x"
    assert kinds == [mode["kind"]]


# -- the receive contract and close codes -----------------------------------

def test_receive_returns_none_once_then_raises_connection_closed(mode):
    seen: List[Any] = []

    async def handler(ws: pyws.asyncio.WebSocket) -> None:
        seen.append(await ws.receive())
        seen.append(await ws.receive())
        try:
            await ws.receive()
        except ConnectionClosed as exc:
            seen.append(("closed", exc.code, exc.reason))

    async def body(served: Served) -> None:
        async with served.websockets_connect() as client:
            await client.send("last")
            await client.close(4001, "done here")
        await asyncio.sleep(0)  # the handler ends on its own; close() waited for it

    serve_and(handler, mode, body)
    # The server closes after the handler: wait_closed() saw it through.
    assert seen == ["last", None, ("closed", 4001, "done here")]


@pytest.mark.parametrize("ending, code", [("return", 1000), ("raise", 1011)])
def test_the_handler_s_end_gives_the_close_code(mode, ending, code, caplog):
    async def handler(ws: pyws.asyncio.WebSocket) -> None:
        await ws.receive()
        if ending == "raise":
            raise RuntimeError("handler bug")

    async def body(served: Served) -> Any:
        async with served.websockets_connect() as client:
            await client.send("go")
            with pytest.raises(websockets.ConnectionClosed) as info:
                await client.recv()
            return info.value.rcvd.code

    with caplog.at_level(logging.ERROR, logger="pyws.asyncio"):
        assert serve_and(handler, mode, body) == code
    logged = [r for r in caplog.records if r.exc_info]
    assert bool(logged) == (ending == "raise")


def test_closing_the_server_closes_open_connections_with_1001(mode):
    async def main() -> Tuple[Any, ...]:
        started = asyncio.Event()

        async def handler(ws: pyws.asyncio.WebSocket) -> None:
            started.set()
            async for _ in ws:
                pass

        server = await pyws.asyncio.serve(handler, "127.0.0.1", 0, ssl=mode["ssl"])
        served = Served(server, mode)
        async with served.websockets_connect() as client:
            await started.wait()
            server.close()
            with pytest.raises(websockets.ConnectionClosed) as info:
                await client.recv()
        await server.wait_closed()
        return info.value.rcvd.code, len(server.connections)

    assert run(main()) == (1001, 0)


def test_a_handshake_that_ends_while_the_server_closes_is_refused_with_503(mode):
    async def main() -> bytes:
        server = await pyws.asyncio.serve(echo, "127.0.0.1", 0, ssl=mode["ssl"])
        served = Served(server, mode)
        reader, writer = await served.open_raw()
        writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\n")  # half a request head
        await writer.drain()
        await asyncio.sleep(0.05)
        server.close()
        writer.write(b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     b"Sec-WebSocket-Version: 13\r\n\r\n")
        answer = await reader.read()
        writer.close()
        await server.wait_closed()
        return answer.split(b"\r\n")[0]

    assert run(main()) == b"HTTP/1.1 503 Service Unavailable"


def test_the_client_s_close_code_and_reason_reach_the_handler(mode):
    ends: List[Tuple[Optional[int], str]] = []

    async def handler(ws: pyws.asyncio.WebSocket) -> None:
        async for _ in ws:
            pass
        ends.append((ws.close_code, ws.close_reason))

    async def body(served: Served) -> Any:
        ws = await served.connect()
        await ws.send("bye soon")
        await ws.close(4321, "see you")
        return ws.close_code

    assert serve_and(handler, mode, body) == 4321
    assert ends == [(4321, "see you")]


# -- options ------------------------------------------------------------------

def test_a_message_over_max_message_size_fails_with_1009(mode):
    async def body(served: Served) -> Any:
        async with served.websockets_connect(max_size=None) as client:
            await client.send(b"x" * 1000)
            with pytest.raises(websockets.ConnectionClosed) as info:
                await client.recv()
            return info.value.rcvd.code

    assert serve_and(echo, mode, body, max_message_size=999) == 1009


def test_subprotocol_origin_and_extra_headers(mode):
    async def handler(ws: pyws.asyncio.WebSocket) -> None:
        await ws.send(f"{ws.subprotocol}|{ws.protocol}|{ws.origin}|{ws.path}")

    async def body(served: Served) -> Tuple[Any, ...]:
        async with served.websockets_connect(
                "/room?x=1", subprotocols=["v1", "v2"],
                origin="http://app.example") as client:
            info = await client.recv()
            header = client.response.headers.get("X-Served-By")
        with pytest.raises(HandshakeError) as refused:
            await served.connect(origin="http://evil.example")
        return info, header, refused.value.status

    info, header, status = serve_and(
        handler, mode, body, subprotocols=["v2", "v3"], origins=["http://app.example"],
        extra_headers=[("X-Served-By", "pyws")])
    assert info == "v2|v1, v2|http://app.example|/room"
    assert header == "pyws"
    assert status == 403


def test_on_upgrade_can_refuse_with_its_own_answer(mode):
    def on_upgrade(environ: dict) -> Any:
        if environ.get("QUERY_STRING") != "token=ok":
            return 401, [("WWW-Authenticate", "Bearer")], "no token\n"
        return None

    async def body(served: Served) -> Tuple[Any, ...]:
        with pytest.raises(HandshakeError) as refused:
            await served.connect("/ws?token=bad")
        async with served.connect("/ws?token=ok") as ws:
            await ws.send("in")
            answer = await ws.receive()
        return refused.value.status, b"no token" in refused.value.body, answer

    assert serve_and(echo, mode, body, on_upgrade=on_upgrade) == (401, True, "in")


def test_compression_is_negotiated_and_can_be_turned_off(mode):
    async def body(served: Served) -> Tuple[bool, bool]:
        async with served.connect() as ws:
            on = ws.compressed
            await ws.send("a" * 10000)
            assert await ws.receive() == "a" * 10000
        async with served.connect(compression=False) as ws:
            off = ws.compressed
        return on, off

    assert serve_and(echo, mode, body) == (True, False)


# -- keepalive ----------------------------------------------------------------

def test_a_peer_that_never_answers_pings_is_dropped_with_1011(mode):
    """A pyws client that never calls receive() reads nothing, so the
    server's pings go unanswered: the server drops it, and the close frame
    it sent says 1011 when the client reads at last."""
    ended = asyncio.Event()

    async def handler(ws: pyws.asyncio.WebSocket) -> None:
        async for _ in ws:
            pass
        ended.set()

    async def body(served: Served) -> Tuple[Any, ...]:
        ws = await served.connect(ping_interval=None)
        await asyncio.wait_for(ended.wait(), 5)
        end = await ws.receive()
        return end, ws.close_code, ws.close_reason

    assert serve_and(handler, mode, body, ping_interval=0.2, ping_timeout=0.3) == (
        None, 1011, "keepalive ping timeout")


def test_a_peer_that_answers_pings_stays_connected(mode):
    async def body(served: Served) -> Any:
        async with served.websockets_connect(ping_interval=None) as client:
            await asyncio.sleep(1.0)  # several pings at 0.2 s, each answered
            await client.send("still here")
            return await client.recv()

    assert serve_and(echo, mode, body, ping_interval=0.2, ping_timeout=0.3) == "still here"


# -- flow control -------------------------------------------------------------

def _small_buffer_listener() -> socket.socket:
    """A listening socket whose connections have a 64 KiB receive buffer
    (set before listen(), so accepted sockets inherit it and the kernel does
    not grow it to tens of MiB on loopback)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    return listener


def test_a_slow_reader_pauses_reading_and_loses_nothing(mode):
    """The handler does not read for a while: the client's writes stop
    being taken (TCP's window closes) instead of the server buffering them;
    then every message arrives, in order."""
    got: List[int] = []

    async def main() -> Tuple[bool, str]:
        go = asyncio.Event()

        async def handler(ws: pyws.asyncio.WebSocket) -> None:
            await go.wait()
            async for message in ws:
                got.append(int(message[:8]))
                if len(got) == 400:
                    await ws.send("all")

        async with pyws.asyncio.serve(handler, sock=_small_buffer_listener(),
                                      ssl=mode["ssl"], max_message_size=0,
                                      compression=False) as server:  # 26 MB on the wire
            served = Served(server, mode)
            async with served.connect(max_message_size=0) as ws:
                sending = asyncio.ensure_future(_send_numbered(ws, 400, "x" * 65536))
                done, _ = await asyncio.wait([sending], timeout=1.0)
                blocked = not done  # 26 MB do not fit in the buffers
                go.set()
                await sending
                return blocked, await ws.receive()

    assert run(main()) == (True, "all")
    assert got == list(range(400))


async def _send_numbered(ws: pyws.asyncio.WebSocket, count: int, payload: str) -> None:
    for number in range(count):
        await ws.send(f"{number:08d}{payload}")


def test_a_full_send_buffer_makes_send_wait(mode):
    """The client (websocket-client, in a thread, with a 64 KiB receive
    buffer) reads nothing for half a second: the handler's sends wait
    meanwhile, and then every message arrives, in order.  6.5 MB: more than
    the client's buffer and the server's (at most 4 MiB here) hold, and
    little enough for websocket-client to read well within the timeout."""
    COUNT = 100  # noqa: N806
    progress: List[int] = []

    async def handler(ws: pyws.asyncio.WebSocket) -> None:
        await ws.receive()
        payload = "y" * 65536
        for number in range(COUNT):
            await ws.send(f"{number:08d}{payload}")
            progress.append(number)

    def client(url: str) -> Tuple[int, List[int]]:
        sslopt = {"cert_reqs": ssl.CERT_NONE} if mode["ssl"] else None
        conn = websocket_client.create_connection(
            url, timeout=10, sslopt=sslopt,
            sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 65536),))
        try:
            conn.send("start")
            threading.Event().wait(0.5)  # reads nothing meanwhile
            stalled_at = len(progress)
            numbers = [int(conn.recv()[:8]) for _ in range(COUNT)]
        finally:
            conn.close()
        return stalled_at, numbers

    async def body(served: Served) -> Tuple[int, List[int]]:
        return await asyncio.to_thread(client, served.url())

    stalled_at, numbers = serve_and(handler, mode, body, compression=False)
    assert stalled_at < COUNT, "send() never waited for the reader"
    assert numbers == list(range(COUNT))


# -- concurrency and cancellation --------------------------------------------

def test_concurrent_senders_never_interleave_frames(mode):
    async def handler(ws: pyws.asyncio.WebSocket) -> None:
        await ws.receive()

        async def sender(tag: int) -> None:
            for index in range(100):
                await ws.send(f"{tag}:{index}:" + "z" * (index * 97 % 5000))
        await asyncio.gather(*(sender(tag) for tag in range(8)))

    async def body(served: Served) -> List[int]:
        counts = [0] * 8
        async with served.connect() as ws:
            await ws.send("go")
            for _ in range(800):
                tag, index, filler = (await ws.receive()).split(":")
                assert int(index) == counts[int(tag)]
                assert filler == "z" * (int(index) * 97 % 5000)
                counts[int(tag)] += 1
        return counts

    assert serve_and(handler, mode, body) == [100] * 8


def test_a_cancelled_receive_loses_no_message(mode):
    async def handler(ws: pyws.asyncio.WebSocket) -> None:
        await ws.receive()
        await asyncio.sleep(0.2)
        await ws.send("late")
        await ws.receive()

    async def body(served: Served) -> Tuple[bool, Any]:
        async with served.connect() as ws:
            await ws.send("go")
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ws.receive(), 0.05)
            late = await ws.receive()
            await ws.send("done")
            return ws.closed, late

    assert serve_and(handler, mode, body) == (False, "late")


def test_a_receive_cancelled_after_its_message_was_read_loses_nothing(monkeypatch):
    """The fd transport's reader callback reads the message for the waiting
    receive; if that receive is cancelled before it runs again (a timeout
    firing in the same turn of the loop), the next receive gets it."""
    waiting: List[asyncio.Task[Any]] = []
    original = AsyncioFdTransport._on_readable

    def read_then_cancel(self: AsyncioFdTransport) -> None:
        reader = self._reader
        original(self)
        if waiting and reader is not None and reader.done() and not reader.cancelled():
            waiting.pop().cancel()  # after the read, before the task resumes

    async def main() -> List[Any]:
        async with pyws.asyncio.serve(echo, "127.0.0.1", 0) as server, \
                pyws.asyncio.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            monkeypatch.setattr(AsyncioFdTransport, "_on_readable", read_then_cancel)
            task = asyncio.ensure_future(ws.receive())
            await asyncio.sleep(0)
            waiting.append(task)
            await ws.send("kept")
            with pytest.raises(asyncio.CancelledError):
                await task
            monkeypatch.setattr(AsyncioFdTransport, "_on_readable", original)
            return [await ws.receive(), waiting]

    assert run(main()) == ["kept", []]


def test_only_the_loop_thread_is_used():
    """Nothing pyws does under asyncio starts a thread."""
    async def main() -> int:
        before = threading.active_count()
        async with pyws.asyncio.serve(echo, "127.0.0.1", 0) as server, \
                pyws.asyncio.connect(f"ws://127.0.0.1:{server.port}/",
                                     ping_interval=0.05) as ws:
            for _ in range(5):
                await ws.send("t")
                await ws.receive()
            await asyncio.sleep(0.2)  # keepalive ticks
        return threading.active_count() - before

    assert run(main()) == 0


# -- the client's errors ------------------------------------------------------

def test_connect_errors_say_what_went_wrong():
    async def main() -> List[Any]:
        errors: List[Any] = []
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        listener.close()
        with pytest.raises(OSError) as refused:
            await pyws.asyncio.connect(f"ws://127.0.0.1:{port}/")
        errors.append(type(refused.value))

        async def silent(reader: Any, writer: Any) -> None:
            await asyncio.sleep(5)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(asyncio.TimeoutError):
            await pyws.asyncio.connect(f"ws://127.0.0.1:{port}/", timeout=0.2)
        server.close()

        async def http(reader: Any, writer: Any) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nno such\r\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(http, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(HandshakeError) as refused_http:
            await pyws.asyncio.connect(f"ws://127.0.0.1:{port}/nope")
        server.close()
        errors.append((refused_http.value.status, refused_http.value.status_line))
        with pytest.raises(ValueError, match="not a WebSocket URL"):
            pyws.asyncio.connect("http://127.0.0.1/")
        with pytest.raises(TypeError, match="unknown WebSocket option"):
            pyws.asyncio.serve(echo, "127.0.0.1", 0, max_mesage_size=3)
        return errors

    assert run(main()) == [ConnectionRefusedError, (404, "HTTP/1.1 404 Not Found")]


def test_a_bad_request_gets_an_http_error_and_the_server_goes_on(mode):
    async def body(served: Served) -> Tuple[bytes, Any]:
        reader, writer = await served.open_raw()
        writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")
        answer = await reader.read()
        writer.close()
        async with served.connect() as ws:
            await ws.send("ok")
            return answer.split(b"\r\n")[0], await ws.receive()

    status, echoed = serve_and(echo, mode, body)
    assert status == b"HTTP/1.1 400 Bad Request"
    assert echoed == "ok"


def test_a_client_that_sends_no_request_gets_408(mode):
    async def body(served: Served) -> bytes:
        reader, writer = await served.open_raw()
        answer = await reader.read()
        writer.close()
        return answer.split(b"\r\n")[0]

    assert serve_and(echo, mode, body, handshake_timeout=0.2) == b"HTTP/1.1 408 Request Timeout"


# -- broadcast ----------------------------------------------------------------

def test_a_hub_broadcasts_to_asyncio_members_in_order(mode):
    """The group chat's Hub works from coroutines: members join, each
    message one of them sends goes to all others, none lost, each sender's
    in its order; members leave when they close."""
    from pyws import Hub

    hub = Hub()

    async def handler(ws: pyws.asyncio.WebSocket) -> None:
        hub.join(ws, "room")
        await ws.send("joined")
        async for message in ws:
            hub.broadcast("room", message, exclude=ws)

    async def body(served: Served) -> List[List[str]]:
        clients = [await served.connect() for _ in range(4)]
        for ws in clients:
            assert await ws.receive() == "joined"
        assert len(hub.members("room")) == 4
        for index in range(50):
            await clients[index % 4].send(f"{index % 4}:{index}")
        received = []
        for position, ws in enumerate(clients):
            mine = [await ws.receive() for _ in range(50 - len(range(position, 50, 4)))]
            received.append(mine)
        for ws in clients:
            await ws.close()
        return received

    received = serve_and(handler, mode, body)
    for position, got in enumerate(received):
        # Connections race one another; each sender's messages keep their order.
        for sender in range(4):
            mine = [m for m in got if m.startswith(f"{sender}:")]
            expected = [] if sender == position else [
                f"{sender}:{i}" for i in range(sender, 50, 4)]
            assert mine == expected
    assert hub.members("room") == []
