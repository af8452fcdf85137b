"""websockets echo: the asyncio server of ``websockets`` (new asyncio API)."""
from __future__ import annotations

import _common

args = _common.parse_args(__doc__)

import asyncio  # noqa: E402

from websockets.asyncio.server import serve  # noqa: E402


async def echo(ws):
    async for msg in ws:  # str for text, bytes for binary
        await ws.send(msg)


async def main():
    async with serve(echo, args.host, args.port, max_size=args.max_size) as server:
        await server.serve_forever()


asyncio.run(main())
