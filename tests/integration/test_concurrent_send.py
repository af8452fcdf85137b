"""Several greenlets send on one WebSocket at once: every frame on the wire
parses and every message is intact (frames never interleave)."""
from __future__ import annotations

from tests.concurrent_messages import message
from tests.wire import OP_BINARY, OP_CLOSE, OP_TEXT, RawClient

GREENLETS = 6
COUNT = 60


def test_concurrent_sends_never_interleave_frames(echo_server):
    with RawClient(echo_server.port, timeout=20) as raw:
        raw.handshake(f"/concurrent?greenlets={GREENLETS}&count={COUNT}")
        next_j = [0] * GREENLETS
        received = 0
        while True:
            f = raw.read_frame()
            assert f.rsv == 0 and not f.masked, f.header
            if f.opcode == OP_CLOSE:
                assert f.close_code == 1000
                break
            assert f.fin, "the server sent a fragment; whole frames were expected"
            assert f.opcode in (OP_TEXT, OP_BINARY), f.opcode
            prefix = f.payload.split(b":", 2)
            assert len(prefix) == 3, f.payload[:40]
            i, j = int(prefix[0]), int(prefix[1])
            expected = message(i, j)
            if isinstance(expected, str):
                assert f.opcode == OP_TEXT
                expected = expected.encode()
            else:
                assert f.opcode == OP_BINARY
            assert f.payload == expected, f"message {i}:{j} damaged"
            assert j == next_j[i], f"greenlet {i}: message {j} came when {next_j[i]} was due"
            next_j[i] += 1
            received += 1
        assert received == GREENLETS * COUNT
        assert next_j == [COUNT] * GREENLETS
