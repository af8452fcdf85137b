"""aiohttp echo: ``web.WebSocketResponse`` in an aiohttp application."""
from __future__ import annotations

import _common

args = _common.parse_args(__doc__)

from aiohttp import WSMsgType, web  # noqa: E402


async def echo(request):
    ws = web.WebSocketResponse(max_msg_size=args.max_size)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


app = web.Application()
app.router.add_get("/{tail:.*}", echo)
web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)
