"""Section 10 -- 10.1.1: a 64 KiB text message sent in 1300-byte fragments
(50 full ones and a last of 536 bytes) comes back whole and exact.  (The
catalog's case is about the tester's own auto-fragmentation; on the server's
side what matters is that the fragments are reassembled.)"""
from __future__ import annotations

from tests.conformance.checks import OP_TEXT, message_then_close
from tests.conformance.rawclient import fragment_frames


def test_case_10_1_1_text_64_KiB_in_1300_byte_fragments_echoed_whole(ws):
    payload = b"*" * 65536
    frames = fragment_frames(OP_TEXT, payload, 1300)
    assert len(frames) == 51 and len(frames[-1]) == 8 + 536  # 2+2 header, 4 key
    ws.send(b"".join(frames))
    message_then_close(ws, OP_TEXT, payload)
