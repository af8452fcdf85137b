"""pyws asyncio echo: ``pyws.asyncio.serve`` with an ``async for`` echo
handler, on asyncio's default event loop or (``--loop uvloop``) uvloop's.
``max_message_size`` is the size limit; every other option is pyws's
default."""
from __future__ import annotations

import _common

args = _common.parse_args(__doc__, _common.add_loop_option)

from pyws.asyncio import serve  # noqa: E402  (after the rlimit, like every server here)


async def echo(ws):
    async for msg in ws:  # str for text, bytes for binary
        await ws.send(msg)


async def main():
    async with serve(echo, args.host, args.port, max_message_size=args.max_size) as server:
        await server.serve_forever()


_common.run_async(main, args.loop)
