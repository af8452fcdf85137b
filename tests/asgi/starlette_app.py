"""A Starlette app whose WebSocket endpoints exercise the ASGI WebSocket
specification, for running under uvicorn with each ``--ws`` implementation.

Run: ``uvicorn tests.asgi.starlette_app:app --ws pyws.uvicorn:WebSocketProtocol``.

Endpoints (``?id=TOKEN`` on any WebSocket endpoint records the
``websocket.disconnect`` event its app receives, see ``/disconnects/TOKEN``):

- ``/echo``: text back as text, bytes back as bytes, until the disconnect.
- ``/subprotocol``: accepts with the first of the client's offered
  subprotocols that the app supports (:data:`SUBPROTOCOLS`), then echoes.
- ``/accept-headers``: accepts with :data:`ACCEPT_HEADERS` in the 101, then echoes.
- ``/reject``: ``websocket.close`` before the accept (uvicorn answers 403).
- ``/hold-before-accept``: never accepts; prints ``HOLDING TOKEN`` once it
  has the ``websocket.connect``, records the next event.
- ``/close?code=C&reason=R&after=N``: accepts, echoes N messages, closes
  with C and R.
- ``/deny``: the ``websocket.http.response`` extension (Starlette's
  ``send_denial_response``): 401 with :data:`DENIAL_HEADERS` and :data:`DENIAL_BODY`.
- ``/deny-stream``: the same extension, the body in :data:`DENIAL_CHUNKS`
  (``more_body``), status 429.
- ``/scope``: sends the scope as the server made it (before Starlette's
  router added to it), as JSON, then waits for the disconnect.
- ``/record``: accepts and receives until the disconnect.
- ``/big?size=N``: sends one binary message of N bytes, then echoes.
- ``/send-after-disconnect``: once disconnected, sends; records what that raised.
- ``/flood?size=&count=``: sends to a client that is not reading; prints
  when a send first waits.
- ``/raise-before-accept``, ``/raise-after-accept``,
  ``/return-before-accept``, ``/return-after-accept``: app failures.
- ``/disconnects/TOKEN`` (HTTP): the disconnect recorded under TOKEN, as
  JSON; waits for it up to ``?timeout=`` seconds (404 if none came).
- ``/page`` (HTTP): a page whose inline script echoes over a WebSocket to
  this server and reports in the DOM (for the Chromium test).

Each recorded disconnect is also printed on stdout, one line:
``DISCONNECT {"id": ..., "path": ..., "code": ..., "reason": ...}``.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import Any, AsyncIterator, Dict, Optional

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

SUBPROTOCOLS = ["pyws.v2", "pyws.v1"]
ACCEPT_HEADERS = [(b"x-pyws-test", b"accepted"), (b"set-cookie", b"session=abc123; Path=/")]
DENIAL_STATUS = 401
DENIAL_HEADERS = {"www-authenticate": 'Bearer realm="pyws"', "x-denied-by": "starlette-app"}
DENIAL_BODY = "no entry without a token\n"
DENIAL_STREAM_STATUS = 429
DENIAL_CHUNKS = [b"slow ", b"down, ", b"please\n"]
LIFESPAN_STATE = {"greeting": "hello from lifespan"}
SERVER_SCOPE_KEY = "tests.server_scope"


# -- the disconnect record ----------------------------------------------------

_disconnects: Dict[str, Dict[str, Any]] = {}
_arrived: Dict[str, asyncio.Event] = {}


def _event(token: str) -> asyncio.Event:
    return _arrived.setdefault(token, asyncio.Event())


def record_disconnect(websocket: WebSocket, message: Dict[str, Any], **extra: Any) -> None:
    """Keep the ``websocket.disconnect`` event the app received, if the
    client gave an ``id``; print it either way."""
    token = websocket.query_params.get("id")
    entry = {"id": token, "path": websocket.url.path, "type": message.get("type"),
             "code": message.get("code"),
             "has_reason": "reason" in message, "reason": message.get("reason"), **extra}
    print("DISCONNECT " + json.dumps(entry), flush=True)
    if token:
        _disconnects[token] = entry
        _event(token).set()


async def receive_until_disconnect(websocket: WebSocket, echo: bool = False) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            record_disconnect(websocket, message)
            return
        if echo:
            await send_back(websocket, message)


async def send_back(websocket: WebSocket, message: Dict[str, Any]) -> None:
    """Echo one websocket.receive event: text as text, bytes as bytes."""
    if message.get("bytes") is not None:
        await websocket.send({"type": "websocket.send", "bytes": message["bytes"]})
    else:
        await websocket.send({"type": "websocket.send", "text": message["text"]})


async def disconnects(request: Request) -> JSONResponse:
    token = request.path_params["token"]
    timeout = float(request.query_params.get("timeout", "10"))
    try:
        await asyncio.wait_for(_event(token).wait(), timeout)
    except asyncio.TimeoutError:
        return JSONResponse({"error": f"no disconnect recorded for {token!r}"}, status_code=404)
    return JSONResponse(_disconnects[token])


# -- scope as JSON --------------------------------------------------------------

def jsonable(value: Any) -> Any:
    """The scope in JSON, types kept: bytes become {"bytes": latin-1 text},
    tuples {"tuple": [...]}, so a str where bytes belong shows."""
    if isinstance(value, bytes):
        return {"bytes": value.decode("latin-1")}
    if isinstance(value, tuple):
        return {"tuple": [jsonable(v) for v in value]}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return {"repr": type(value).__name__}


class KeepServerScope:
    """Outermost middleware: keeps the scope as the server made it (in JSON),
    before Starlette's app and router add their keys."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope[SERVER_SCOPE_KEY] = jsonable(scope)
        await self.app(scope, receive, send)


# -- WebSocket endpoints --------------------------------------------------------

async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await receive_until_disconnect(websocket, echo=True)


async def subprotocol(websocket: WebSocket) -> None:
    offered = websocket.scope["subprotocols"]
    chosen: Optional[str] = next((p for p in offered if p in SUBPROTOCOLS), None)
    await websocket.accept(subprotocol=chosen)
    await receive_until_disconnect(websocket, echo=True)


async def accept_headers(websocket: WebSocket) -> None:
    await websocket.accept(headers=ACCEPT_HEADERS)
    await receive_until_disconnect(websocket, echo=True)


async def reject(websocket: WebSocket) -> None:
    # Starlette's close() does not wait for websocket.connect: receive it first.
    message = await websocket.receive()
    assert message["type"] == "websocket.connect", message
    await websocket.close(code=4403, reason="not you")
    # The server must still tell the app the connection is over.
    record_disconnect(websocket, await websocket.receive())


async def hold_before_accept(websocket: WebSocket) -> None:
    """Receives websocket.connect, says so on stdout, and waits for the next
    event without accepting (what a server shutting down does to it)."""
    message = await websocket.receive()
    assert message["type"] == "websocket.connect", message
    print(f"HOLDING {websocket.query_params.get('id')}", flush=True)
    record_disconnect(websocket, await websocket.receive())


async def close(websocket: WebSocket) -> None:
    code = int(websocket.query_params.get("code", "1000"))
    reason = websocket.query_params.get("reason", "")
    after = int(websocket.query_params.get("after", "0"))
    await websocket.accept()
    for _ in range(after):
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            record_disconnect(websocket, message)
            return
        await send_back(websocket, message)
    await websocket.close(code=code, reason=reason)


async def deny(websocket: WebSocket) -> None:
    response = PlainTextResponse(DENIAL_BODY, status_code=DENIAL_STATUS, headers=DENIAL_HEADERS)
    await websocket.send_denial_response(response)
    # Starlette's denial did not wait for websocket.connect: skip it.
    message = await websocket.receive()
    if message["type"] == "websocket.connect":
        message = await websocket.receive()
    record_disconnect(websocket, message)


async def deny_stream(websocket: WebSocket) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for chunk in DENIAL_CHUNKS:
            yield chunk

    response = StreamingResponse(chunks(), status_code=DENIAL_STREAM_STATUS,
                                 media_type="text/plain", headers={"x-denied-by": "stream"})
    await websocket.send_denial_response(response)


async def scope_report(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(json.dumps(websocket.scope[SERVER_SCOPE_KEY]))
    # scope["state"] is a copy per connection: a change here must not reach
    # the next connection's scope.
    websocket.scope["state"]["changed_by_an_earlier_connection"] = True
    await receive_until_disconnect(websocket)


async def record(websocket: WebSocket) -> None:
    await websocket.accept()
    await receive_until_disconnect(websocket)


async def big(websocket: WebSocket) -> None:
    size = int(websocket.query_params["size"])
    await websocket.accept()
    await websocket.send_bytes(bytes(range(256)) * (size // 256) + bytes(size % 256))
    await receive_until_disconnect(websocket, echo=True)


class SendAfterDisconnect:
    """A plain ASGI app (Starlette's WebSocket would turn the error into its
    own): receives until the disconnect, then sends. ASGI says the server
    raises an OSError subclass there (uvicorn: ClientDisconnected)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _send_after_disconnect(scope, receive, send)


async def _send_after_disconnect(scope: Scope, receive: Receive, send: Send) -> None:
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            break
    try:
        await send({"type": "websocket.send", "text": "too late"})
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        error = {"send_error": type(exc).__name__,
                 "send_error_is_oserror": isinstance(exc, OSError)}
    else:
        error = {"send_error": None, "send_error_is_oserror": False}
    record_disconnect(WebSocket(scope, receive, send), message, **error)


async def flood(websocket: WebSocket) -> None:
    """Sends ``?count=`` messages of ``?size=`` bytes to a client that does not
    read yet; prints ``FLOOD TOKEN blocked after N`` the first time a send
    waits (the server's write buffer is full), ``FLOOD TOKEN done N`` at the end."""
    token = websocket.query_params.get("id")
    size = int(websocket.query_params["size"])
    count = int(websocket.query_params["count"])
    loop = asyncio.get_running_loop()
    await websocket.accept()
    blocked = []

    def report_blocked(i: int) -> None:  # runs while send() is still waiting
        blocked.append(i)
        print(f"FLOOD {token} blocked after {i}", flush=True)

    for i in range(count):
        watchdog = None if blocked else loop.call_later(0.25, report_blocked, i)
        await websocket.send_bytes(i.to_bytes(4, "big") * (size // 4))
        if watchdog is not None:
            watchdog.cancel()
    print(f"FLOOD {token} done {count}", flush=True)
    await receive_until_disconnect(websocket)


class AppFailure(Exception):
    """Raised on purpose by the app-failure endpoints."""


async def raise_before_accept(websocket: WebSocket) -> None:
    raise AppFailure("raised before accept, on purpose")


async def raise_after_accept(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("about to fail")
    raise AppFailure("raised after accept, on purpose")


async def return_before_accept(websocket: WebSocket) -> None:
    return None


async def return_after_accept(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("about to return")


# -- HTTP endpoints -------------------------------------------------------------

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>pyws ASGI echo</title></head>
<body>
<p>open: <span id="open"></span></p>
<p>protocol: <span id="protocol"></span></p>
<p>extensions: <span id="extensions"></span></p>
<p>text: <span id="text"></span></p>
<p>binary: <span id="binary"></span></p>
<p>big: <span id="big"></span></p>
<p>closed: <span id="closed"></span></p>
<p>server close: <span id="server-close"></span></p>
<p>error: <span id="error"></span></p>
<script>
"use strict";
const params = new URLSearchParams(location.search);
const id = params.get("id") || "";
const base = "ws://" + location.host;
const show = (name, value) => { document.getElementById(name).textContent = value; };
const bigText = "0123456789abcdef".repeat(16384);  // 256 KiB

const ws = new WebSocket(base + "/subprotocol?id=" + encodeURIComponent(id), ["nope", "pyws.v1"]);
ws.binaryType = "arraybuffer";
let step = 0;
ws.onerror = () => show("error", "websocket error");
ws.onopen = () => {
  show("open", "yes");
  show("protocol", ws.protocol);
  show("extensions", ws.extensions);
  ws.send("hello from chromium \\u00e9\\u4e16");
};
ws.onmessage = (event) => {
  step += 1;
  if (step === 1) {
    show("text", event.data);
    ws.send(new Uint8Array([0, 1, 2, 253, 254, 255]).buffer);
  } else if (step === 2) {
    show("binary", Array.from(new Uint8Array(event.data)).join(","));
    ws.send(bigText);
  } else if (step === 3) {
    const same = event.data === bigText ? "same " : "differs ";
    show("big", same + event.data.length);
    ws.close(4001, "browser done");
  }
};
const describe = (event) => event.code + " " + event.reason + " " + event.wasClean;
ws.onclose = (event) => show("closed", describe(event));

const bye = encodeURIComponent("server says bye");
const closer = new WebSocket(base + "/close?code=4002&reason=" + bye);
closer.onclose = (event) => show("server-close", describe(event));
</script>
</body></html>
"""


async def page(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[Dict[str, Any]]:
    print("LIFESPAN startup", flush=True)
    yield dict(LIFESPAN_STATE)
    print("LIFESPAN shutdown", flush=True)


routes = [
    WebSocketRoute("/echo", echo),
    WebSocketRoute("/subprotocol", subprotocol),
    WebSocketRoute("/accept-headers", accept_headers),
    WebSocketRoute("/reject", reject),
    WebSocketRoute("/hold-before-accept", hold_before_accept),
    WebSocketRoute("/close", close),
    WebSocketRoute("/deny", deny),
    WebSocketRoute("/deny-stream", deny_stream),
    WebSocketRoute("/scope", scope_report),
    WebSocketRoute("/scope/{rest:path}", scope_report),
    WebSocketRoute("/record", record),
    WebSocketRoute("/big", big),
    WebSocketRoute("/send-after-disconnect", SendAfterDisconnect()),
    WebSocketRoute("/flood", flood),
    WebSocketRoute("/raise-before-accept", raise_before_accept),
    WebSocketRoute("/raise-after-accept", raise_after_accept),
    WebSocketRoute("/return-before-accept", return_before_accept),
    WebSocketRoute("/return-after-accept", return_after_accept),
    Route("/disconnects/{token}", disconnects),
    Route("/page", page),
]

app = KeepServerScope(Starlette(routes=routes, lifespan=lifespan))

if __name__ == "__main__":  # pragma: no cover - manual runs
    sys.exit("run me with uvicorn: uvicorn tests.asgi.starlette_app:app --ws ...")
