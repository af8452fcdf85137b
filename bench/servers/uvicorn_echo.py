"""uvicorn echo: a raw ASGI app (no framework: ``receive()`` events sent back
as ``send()`` events) under uvicorn, with the WebSocket implementation named
by ``--ws``: uvicorn's own (``websockets``, ``websockets-sansio``,
``wsproto``) or an import string (``pyws.uvicorn:WebSocketProtocol``).

One process, no workers; httptools for HTTP; ``--loop`` asyncio (default) or
uvloop; lifespan and access log off; ``ws_max_size`` is the size limit.
Keepalive stays at uvicorn's default (a ping every 20 s, 20 s to answer),
as every other server here keeps its own."""
from __future__ import annotations

import _common


def options(parser) -> None:
    parser.add_argument("--ws", required=True,
                        help="uvicorn's --ws: websockets, websockets-sansio, wsproto, "
                             "or module:Class")
    _common.add_loop_option(parser)


args = _common.parse_args(__doc__, options)

import uvicorn  # noqa: E402


async def app(scope, receive, send):
    if scope["type"] != "websocket":  # a plain HTTP request (lifespan is off)
        await send({"type": "http.response.start", "status": 400,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"WebSocket only\n"})
        return
    event = await receive()  # websocket.connect
    if event["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        event = await receive()
        if event["type"] == "websocket.receive":
            text = event.get("text")
            if text is not None:  # text stays text, bytes stay binary
                await send({"type": "websocket.send", "text": text})
            else:
                await send({"type": "websocket.send", "bytes": event.get("bytes") or b""})
        elif event["type"] == "websocket.disconnect":
            break


uvicorn.run(app, host=args.host, port=args.port, ws=args.ws, http="httptools",
            loop=args.loop, lifespan="off", access_log=False, log_level="warning",
            ws_max_size=args.max_size, timeout_graceful_shutdown=1)
