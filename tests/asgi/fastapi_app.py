"""A FastAPI app with WebSocket endpoints written the way FastAPI's tutorial
writes them (path, query and header parameters, dependencies,
WebSocketException, receive_json / send_json, iter_bytes), for running
unchanged under uvicorn with each ``--ws`` implementation.

Run: ``uvicorn tests.asgi.fastapi_app:app --ws pyws.uvicorn:WebSocketProtocol``.

- ``/items/{item_id}/ws?q=`` (item_id an int; header ``x-client``): sends
  ``{"item_id", "q", "x_client", "subprotocols"}``, then answers each JSON
  message ``m`` with ``{"echo": m, "item_id": item_id}``.
- ``/guarded?token=``: a dependency refuses a wrong token with
  WebSocketException(1008) before accept (uvicorn: 403); once accepted,
  the message ``"forbidden"`` gets WebSocketException(1008, "forbidden
  word") after accept (a close frame), anything else is echoed.
- ``/bytes``: ``iter_bytes`` echo with the running total length, until the
  client closes; records the disconnect (``?id=``).
- ``/deny``: ``send_denial_response`` of a 403 JSON response.
- ``/broadcast?n=``: sends n numbered text messages as fast as it can, then
  closes with 1000 "done".
- ``/disconnects/{token}``: as in the Starlette app.
"""
from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator, Dict, Optional

from fastapi import (
    Depends,
    FastAPI,
    Header,
    Query,
    WebSocket,
    WebSocketDisconnect,
    WebSocketException,
    status,
)
from fastapi.responses import JSONResponse

from tests.asgi.starlette_app import disconnects, record_disconnect

DENIAL_JSON = {"detail": "FastAPI says no"}
TOKEN = "s3cret"


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[Dict[str, Any]]:
    yield {"greeting": "hello from FastAPI's lifespan"}


app = FastAPI(lifespan=lifespan)
app.add_api_route("/disconnects/{token}", disconnects, include_in_schema=False)


@app.websocket("/items/{item_id}/ws")
async def item_socket(websocket: WebSocket, item_id: int, q: Optional[str] = None,
                      x_client: Optional[str] = Header(default=None)) -> None:
    await websocket.accept()
    await websocket.send_json({"item_id": item_id, "q": q, "x_client": x_client,
                               "subprotocols": websocket.scope["subprotocols"]})
    try:
        while True:
            message = await websocket.receive_json()
            await websocket.send_json({"echo": message, "item_id": item_id})
    except WebSocketDisconnect as exc:
        record_disconnect(websocket, {"type": "websocket.disconnect", "code": exc.code,
                                      "reason": exc.reason})


async def require_token(token: Optional[str] = Query(default=None)) -> str:
    if token != TOKEN:
        raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION, reason="bad token")
    return token


@app.websocket("/guarded")
async def guarded(websocket: WebSocket, token: str = Depends(require_token)) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        if text == "forbidden":
            raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION, reason="forbidden word")
        await websocket.send_text(f"ok: {text}")


@app.websocket("/bytes")
async def bytes_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    total = 0
    try:
        while True:
            data = await websocket.receive_bytes()
            total += len(data)
            await websocket.send_bytes(data + total.to_bytes(8, "big"))
    except WebSocketDisconnect as exc:
        record_disconnect(websocket, {"type": "websocket.disconnect", "code": exc.code,
                                      "reason": exc.reason})


@app.websocket("/deny")
async def deny(websocket: WebSocket) -> None:
    await websocket.send_denial_response(
        JSONResponse(DENIAL_JSON, status_code=403, headers={"x-denied-by": "fastapi"}))


@app.websocket("/broadcast")
async def broadcast(websocket: WebSocket, n: int = 100) -> None:
    await websocket.accept()
    for i in range(n):
        await websocket.send_text(f"message {i}")
    await websocket.close(code=1000, reason="done")
