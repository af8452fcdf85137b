"""Memory bounds of the server (tests/integration/hostile_server.py, a
pyws.WebSocketServer echo server in a subprocess), read from its
/proc/<pid>/status:

- one connection carrying one million small messages, pipelined: every echo
  comes back intact and in order, and the server's RSS at the end is within
  a few MiB of its RSS after the first 10,000 messages;
- 1000 connections opened and closed one after the other: RSS after the
  1000th within a few MiB of RSS after the 100th;
- a closed connection's memory is given back when it closes, not at some
  later garbage collection.
"""
from __future__ import annotations

import os
import queue
import socket
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional

import pytest

from tests.conftest import ServerProcess
from tests.wire import OP_BINARY, OP_CLOSE, OP_TEXT, RawClient, build_frame, close_payload

# Every test here judges the server by its resident memory.
pytestmark = pytest.mark.rss

SCRIPT = Path(__file__).resolve().parent / "hostile_server.py"
MIB = 1024 * 1024


@pytest.fixture
def mem_server(tmp_path):
    server = ServerProcess(
        "memory-server",
        [sys.executable, str(SCRIPT), "--handshake-timeout", "5", "--close-timeout", "1"],
        tmp_path / "memory-server.log")
    server.start_and_read_port()
    yield server
    server.stop()


def status_bytes(server: ServerProcess, field: str) -> int:
    """A size from the server process's /proc/<pid>/status, in bytes."""
    assert server.proc is not None and server.proc.poll() is None, "the server died"
    with open(f"/proc/{server.proc.pid}/status") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/<pid>/status")


def rss(server: ServerProcess) -> int:
    """The server process's resident set size (VmRSS), in bytes."""
    return status_bytes(server, "VmRSS")


def mib(n: int) -> str:
    return f"{n / MIB:.1f} MiB"


def masked(opcode: int, payload: bytes | str = b"", **kw) -> bytes:
    return build_frame(opcode, payload, mask=os.urandom(4), **kw)


def expect_close(raw: RawClient, code: int) -> None:
    f = raw.read_frame()
    assert f.opcode == OP_CLOSE, f"expected close {code}, got {f}"
    assert f.close_code == code, (f.close_code, f.close_reason)
    rest = raw.expect_eof()
    assert rest == b"", f"bytes after the close frame: {rest[:80]!r}"


# ---------------------------------------------------------------------------
# One million messages on one connection.

MESSAGES = 1_000_000
BATCH = 10_000  # frames per sendall; MESSAGES % BATCH == 0
WARMUP_BATCHES = 1  # RSS reference taken after this many batches came back
#: RSS at the end within this of RSS after the warm-up.  The connection's
#: steady state is one 64 KiB read, the ~2,200 messages it holds (str objects
#: and events) and their echoes: well under a MiB, reached in the warm-up.
#: Keeping anything per message -- one 24-byte str or a 32-byte event out of
#: a million -- would add tens of MiB; 8 MiB is allocator noise plus margin.
MILLION_RSS_SLACK = 8 * MIB
MILLION_TIMEOUT = 180.0  # whole exchange; the time taken is printed

KEY = b"\x5a\xc3\x3c\xa5"
# Message j of a batch has 16 + j % 16 bytes: "%010d:" (its sequence number)
# then filler.  As BATCH is a multiple of 16, every batch has the same layout.
FILL = b"abcdefghijklmnopqrstu"
_SIZES = [16 + (j & 15) for j in range(16)]
_SEND_HEADERS = [bytes([0x81, 0x80 | s]) + KEY for s in _SIZES]  # FIN+text, masked
_ECHO_HEADERS = [bytes([0x81, s]) for s in _SIZES]  # FIN+text, unmasked
_SEND_CYCLE = [_SEND_HEADERS[j & 15] for j in range(BATCH)]
_ECHO_CYCLE = [_ECHO_HEADERS[j & 15] for j in range(BATCH)]
# Masking a whole batch at once: XOR with zeros over each 6-byte header and
# the key, restarted at each payload, over the payload.
_MASK_STREAM = int.from_bytes(
    b"".join(b"\0" * 6 + (KEY * 8)[:_SIZES[j & 15]] for j in range(BATCH)), "big")
assert MESSAGES % BATCH == 0 and BATCH % 16 == 0


def batch(b: int):
    """(bytes to send, echo expected) for batch ``b``."""
    base = b * BATCH
    payloads = [(b"%010d:" % (base + j) + FILL)[:16 + (j & 15)] for j in range(BATCH)]
    plain = b"".join(map(bytes.__add__, _SEND_CYCLE, payloads))
    frames = (int.from_bytes(plain, "big") ^ _MASK_STREAM).to_bytes(len(plain), "big")
    expected = b"".join(map(bytes.__add__, _ECHO_CYCLE, payloads))
    return frames, expected


def describe_mismatch(expected: bytes, got: bytes, at: int, batch_no: int) -> str:
    """Which message of the batch the first differing byte belongs to."""
    pos = 0
    for j in range(BATCH):
        size = 2 + _SIZES[j & 15]
        if pos + size > at:
            seq = batch_no * BATCH + j
            return (f"echo of message #{seq} differs at its byte {at - pos}: expected "
                    f"{expected[pos:pos + size]!r}, got {got[pos:pos + size + 20]!r}")
        pos += size
    return f"differs at byte {at} of batch {batch_no}"


def test_one_million_messages_on_one_connection(mem_server):
    raw = RawClient(mem_server.port, timeout=30.0)
    raw.handshake()
    sock = raw.sock
    sock.settimeout(30.0)
    expected_q: queue.Queue[bytes] = queue.Queue()
    sender_error: List[BaseException] = []

    def send_all() -> None:
        try:
            for b in range(MESSAGES // BATCH):
                frames, expected = batch(b)
                expected_q.put(expected)
                sock.sendall(frames)
        except BaseException as exc:  # reported by the receiver
            sender_error.append(exc)

    # Build the first batch once outside the timing, for the throughput figure.
    batch(0)
    t0 = time.monotonic()
    deadline = t0 + MILLION_TIMEOUT
    sender = threading.Thread(target=send_all, name="million-sender", daemon=True)
    sender.start()

    def next_expected() -> bytes:
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(f"not done within {MILLION_TIMEOUT}s")
            try:
                return expected_q.get(timeout=1.0)
            except queue.Empty:
                if sender_error:
                    raise AssertionError(f"sender failed: {sender_error[0]!r}") from None

    warm_rss: Optional[int] = None
    warm_time = 0.0
    batches_done = 0
    exp = memoryview(next_expected())
    pos = 0
    leftover = b""
    received = 0
    while batches_done < MESSAGES // BATCH:
        if time.monotonic() > deadline:
            raise AssertionError(f"{batches_done * BATCH} echoes within {MILLION_TIMEOUT}s")
        try:
            chunk = sock.recv(1 << 20)
        except socket.timeout:
            raise AssertionError(f"no echo for 30s after {batches_done * BATCH} messages "
                                 f"and {pos} bytes of the next batch") from None
        if not chunk:
            raise AssertionError(f"EOF after {batches_done * BATCH} echoes and {pos} bytes "
                                 f"of the next batch")
        received += len(chunk)
        view = memoryview(chunk)
        off = 0
        while off < len(view):
            n = min(len(view) - off, len(exp) - pos)
            if view[off:off + n] != exp[pos:pos + n]:
                got = bytes(view[off:off + n])
                at = next(k for k in range(n) if got[k] != exp[pos + k])
                raise AssertionError(describe_mismatch(
                    bytes(exp), bytes(exp[:pos]) + got, pos + at, batches_done))
            off += n
            pos += n
            if pos == len(exp):
                batches_done += 1
                pos = 0
                if batches_done == WARMUP_BATCHES:
                    warm_rss = rss(mem_server)
                    warm_time = time.monotonic()
                if batches_done == MESSAGES // BATCH:
                    leftover = bytes(view[off:])
                    break
                exp = memoryview(next_expected())
    elapsed = time.monotonic() - t0
    end_rss = rss(mem_server)
    sender.join(5.0)
    assert not sender.is_alive() and not sender_error, sender_error

    # Nothing more than the million echoes: the next frame is the close echo.
    raw.buf = leftover
    raw.send(masked(OP_CLOSE, close_payload(1000)))
    expect_close(raw, 1000)
    raw.close()

    assert warm_rss is not None
    rate = (MESSAGES - WARMUP_BATCHES * BATCH) / (time.monotonic() - warm_time)
    print(f"\n{MESSAGES} messages echoed in {elapsed:.1f}s ({MESSAGES / elapsed:,.0f}/s; "
          f"{rate:,.0f}/s after warm-up); server RSS {mib(warm_rss)} after "
          f"{WARMUP_BATCHES * BATCH}, {mib(end_rss)} at the end")
    assert end_rss - warm_rss < MILLION_RSS_SLACK, \
        f"server RSS grew from {mib(warm_rss)} to {mib(end_rss)} over {MESSAGES} messages"


# ---------------------------------------------------------------------------
# Many connections, one after the other.

CONNECTIONS = 1000
#: RSS after the 1000th connection within this of RSS after the 100th.  A
#: connection's objects (greenlet, handler, environ, WebSocket, engine) are
#: some tens of KiB; 900 of them kept would be tens of MiB.  The slack covers
#: allocator noise and objects awaiting the cyclic GC at the moment of reading.
CONNECTIONS_RSS_SLACK = 4 * MIB


def one_connection(port: int, i: int) -> None:
    with RawClient(port, timeout=10.0) as raw:
        raw.handshake()
        if i % 2:
            payload = f"connection {i} ".encode() * (1 + i % 13)
            raw.send(masked(OP_TEXT, payload))
            f = raw.read_frame()
            assert (f.opcode, f.payload) == (OP_TEXT, payload), (i, f)
        else:
            payload = bytes([i & 0xFF]) * (i % 3000)
            raw.send(masked(OP_BINARY, payload))
            f = raw.read_frame()
            assert (f.opcode, f.payload) == (OP_BINARY, payload), (i, f)
        raw.send(masked(OP_CLOSE, close_payload(1000)))
        expect_close(raw, 1000)


def test_thousand_connections_do_not_leak(mem_server):
    t0 = time.monotonic()
    trajectory = []
    after_100 = 0
    for i in range(CONNECTIONS):
        one_connection(mem_server.port, i)
        if i % 100 == 99:
            trajectory.append(rss(mem_server))
            if i == 99:
                after_100 = trajectory[-1]
    elapsed = time.monotonic() - t0
    after_all = rss(mem_server)
    print(f"\n{CONNECTIONS} connections in {elapsed:.1f}s; server RSS every 100: "
          f"{', '.join(f'{r / MIB:.1f}' for r in trajectory)} MiB")
    assert after_all - after_100 < CONNECTIONS_RSS_SLACK, \
        f"server RSS {mib(after_100)} after 100 connections, {mib(after_all)} after {CONNECTIONS}"


# ---------------------------------------------------------------------------
# A closed connection gives its memory back at once.

BIG = 1024 * 1024  # the server's default max_message_size: accepted
BIG_CONNECTIONS = 60
#: RSS after the last connection within this of RSS after the 5th.  One live
#: connection holds a few times BIG (the message read, the engine's buffers,
#: the echo frame): a handful of MiB; 8 MiB allows for allocator noise.  If
#: closed connections' buffers waited for the cyclic garbage collector, RSS
#: would climb by ~1 MiB per connection until a full collection happens.
BIG_RSS_SLACK = 8 * MIB


def test_closed_connections_free_their_buffers_at_once(mem_server):
    payload = os.urandom(BIG)
    frame = masked(OP_BINARY, payload)
    trajectory = []
    for i in range(BIG_CONNECTIONS):
        with RawClient(mem_server.port, timeout=10.0) as raw:
            raw.handshake()
            raw.send(frame)
            f = raw.read_frame()
            assert (f.opcode, len(f.payload)) == (OP_BINARY, BIG) and f.payload == payload, i
            raw.send(masked(OP_CLOSE, close_payload(1000)))
            expect_close(raw, 1000)
        trajectory.append(rss(mem_server))
    print(f"\nserver RSS after each of {BIG_CONNECTIONS} connections echoing 1 MiB: "
          f"{', '.join(f'{r / MIB:.0f}' for r in trajectory)} MiB")
    assert trajectory[-1] - trajectory[4] < BIG_RSS_SLACK, \
        (f"server RSS {mib(trajectory[4])} after 5 connections, {mib(trajectory[-1])} after "
         f"{BIG_CONNECTIONS} (each closed before the next opened); max {mib(max(trajectory))}")


# ---------------------------------------------------------------------------
# A frame header reserves nothing: memory follows the bytes that arrived.

ANNOUNCERS = 2000
ANNOUNCED = 1024 * 1024  # each header announces this much (the default limit)
#: Address space the server may take on top of its start for ANNOUNCERS
#: idle connections and a few normal ones.  An announcing connection costs
#: its greenlet, socket and engine (tens of KiB); had the header reserved
#: its announced length, they would need ANNOUNCERS MiB.
ANNOUNCERS_AS_BUDGET = 512 * MIB


def vm_size(server: ServerProcess) -> int:
    """The server process's address space (VmSize), in bytes."""
    return status_bytes(server, "VmSize")


def test_announced_lengths_reserve_no_memory_before_their_bytes_arrive(mem_server):
    """2,000 connections each send a 14-byte header announcing a 1 MiB
    message and then nothing, with the server's address space capped (as
    ``ulimit -v`` or a container would): new handshakes and echoes keep
    working, and the announcers still get their messages echoed when the
    bytes do come."""
    import resource

    assert mem_server.proc is not None
    start = vm_size(mem_server)
    cap = start + ANNOUNCERS_AS_BUDGET
    soft, hard = resource.prlimit(mem_server.proc.pid, resource.RLIMIT_AS)
    resource.prlimit(mem_server.proc.pid, resource.RLIMIT_AS, (cap, hard))
    payload = os.urandom(ANNOUNCED)
    frame = masked(OP_BINARY, payload)
    header, rest = frame[:14], frame[14:]
    announcers: List[RawClient] = []
    try:
        for _ in range(ANNOUNCERS):
            raw = RawClient(mem_server.port, timeout=10.0)
            announcers.append(raw)
            raw.handshake()
            raw.send(header)
        grown = vm_size(mem_server) - start
        print(f"\n{ANNOUNCERS} connections announcing {mib(ANNOUNCED)} each: server "
              f"address space +{mib(grown)} (capped at +{mib(ANNOUNCERS_AS_BUDGET)})")
        # A newcomer is served as usual.
        with RawClient(mem_server.port, timeout=10.0) as raw:
            raw.handshake()
            raw.send_frame(OP_TEXT, "still here")
            f = raw.read_frame()
            assert (f.opcode, f.payload) == (OP_TEXT, b"still here")
        # And the announced messages arrive whole when their bytes do.
        for raw in announcers[:3]:
            raw.send(rest)
            f = raw.read_frame()
            assert f.opcode == OP_BINARY and f.payload == payload
    finally:
        for raw in announcers:
            raw.close()
        resource.prlimit(mem_server.proc.pid, resource.RLIMIT_AS, (soft, hard))
