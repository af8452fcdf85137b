"""picows echo: picows's frame-level listener on asyncio.  picows hands over
frames, not messages; the load generator never fragments, so a frame is a
message here.  ``max_frame_size`` is its size limit.  ``--loop uvloop``:
the same on uvloop's event loop."""
from __future__ import annotations

import _common

args = _common.parse_args(__doc__, _common.add_loop_option)

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server  # noqa: E402


class Echo(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            transport.send(frame.msg_type, frame.get_payload_as_memoryview())


async def main():
    server = await ws_create_server(lambda request: Echo(), args.host, args.port,
                                    max_frame_size=args.max_size)
    await server.serve_forever()


_common.run_async(main, args.loop)
