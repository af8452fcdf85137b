"""Many connections at once, and flow control: an app sending to a client
that does not read must wait (a full write buffer), not queue without bound."""
from __future__ import annotations

import concurrent.futures
import struct

from tests.asgi.support import ws_connect
from tests.wire import OP_BINARY, RawClient

FLOOD_SIZE = 256 * 1024
FLOOD_COUNT = 256  # 64 MiB in all
# Loopback socket buffers hold a few MiB; uvicorn's implementations stop
# well before this.
MAX_BUFFERED = 32 * 1024 * 1024


def test_fifty_concurrent_connections_each_echo_their_own_messages(server):
    def session(n: int) -> list:
        with ws_connect(server.url("/echo")) as ws:
            out = []
            for i in range(20):
                message = f"client {n} message {i}" if i % 2 else f"{n}:{i}".encode()
                ws.send(message)
                out.append(ws.recv(timeout=20) == message)
            return out

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        results = list(pool.map(session, range(50), timeout=60))
    assert all(all(r) for r in results)


def test_send_waits_while_the_client_does_not_read(server, token):
    with RawClient(server.port, timeout=30) as client:
        client.handshake(f"/flood?id={token}&size={FLOOD_SIZE}&count={FLOOD_COUNT}")
        blocked = server.wait_for_line(rf"^FLOOD {token} (blocked after|done) (\d+)$", 20)
        assert blocked is not None, "the app printed nothing"
        assert blocked.group(1) == "blocked after", \
            f"the app sent all {FLOOD_COUNT * FLOOD_SIZE >> 20} MiB to a client that reads nothing"
        assert int(blocked.group(2)) * FLOOD_SIZE < MAX_BUFFERED
        # Now read: every message arrives, in order.
        for i in range(FLOOD_COUNT):
            frame = client.read_frame()
            assert frame.opcode == OP_BINARY and len(frame.payload) == FLOOD_SIZE
            assert struct.unpack("!I", frame.payload[:4])[0] == i
        assert server.wait_for_line(rf"^FLOOD {token} done {FLOOD_COUNT}$", 10)
