"""The direct socket path against the plain one.

On a plain socket the C engine reads and writes the descriptor itself
(``Protocol.receive_from`` / ``send_to``); TLS and other sockets go through
the socket's Python methods.  ``pyws.transport.DIRECT_IO = False`` forces
the plain path everywhere.  Here the same byte streams (many frames,
fragmented, masked, text and binary, pings, closes, invalid input) go
through a server-side or client-side ``WebSocket`` both ways, over a
``socket.socketpair()``, and must give the same messages, the same errors,
the same close code and reason, and the same bytes written back.

Every scenario runs with plain threads in this process, and with gevent
sockets and greenlets in a subprocess (this file run as a script), so that
the test process itself never imports gevent.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import threading
import zlib
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

from pyws import _core
from pyws import transport as transport_module
from pyws.websocket import WebSocket
from tests.script_json import script_json
from tests.wire import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RSV1,
    build_frame,
    close_payload,
    parse_frames,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEY = b"\x37\xfa\x21\x3d"

Send = Tuple[Any, Optional[bool]]


def client_frame(opcode: int, payload: Any = b"", **kw: Any) -> bytes:
    """A frame as a client sends it: masked."""
    return build_frame(opcode, payload, mask=KEY, **kw)


def server_frame(opcode: int, payload: Any = b"", **kw: Any) -> bytes:
    return build_frame(opcode, payload, **kw)


def _mixed(frame: Callable[..., bytes]) -> bytes:
    """Every kind of frame a peer may send, ending with a close."""
    return b"".join([
        frame(OP_TEXT, "hello"),
        frame(OP_BINARY, bytes(range(256)) * 10),
        frame(OP_TEXT, "frag", fin=False),
        frame(OP_PING, b"in the middle"),
        frame(OP_CONT, "mented ", fin=False),
        frame(OP_CONT, "\u2713 message"),
        frame(OP_TEXT, ""),
        frame(OP_BINARY, b""),
        frame(OP_BINARY, os.urandom(70000)),
        frame(OP_TEXT, "x" * 200000),
        frame(OP_TEXT, "h\u00e9llo w\u00f6rld \u2713 \U0001f389" * 50),
        frame(OP_PONG, b"unsolicited"),
        frame(OP_PING, b""),
        frame(OP_BINARY, b"a", fin=False),
        frame(OP_CONT, b"b" * 300, fin=False),
        frame(OP_CONT, b"c"),
        frame(OP_CLOSE, close_payload(1000, "bye")),
        frame(OP_TEXT, "after the close: ignored"),
    ])


# name -> (server role, stream from the peer, max_message_size, expected close code)
SCENARIOS: Dict[str, Tuple[bool, bytes, int, int]] = {
    "mixed": (True, _mixed(client_frame), 1 << 20, 1000),
    "client_role": (False, _mixed(server_frame), 1 << 20, 1000),
    "many_small": (True, b"".join(client_frame(OP_TEXT if i % 3 else OP_BINARY, f"m{i}")
                                  for i in range(3000))
                   + client_frame(OP_CLOSE, close_payload(1001)), 1 << 20, 1001),
    "large_unlimited": (True, client_frame(OP_BINARY, os.urandom(3 << 20))
                        + client_frame(OP_TEXT, "z" * (2 << 20)), 0, 1006),
    "close_without_code": (True, client_frame(OP_TEXT, "a") + client_frame(OP_CLOSE), 1 << 20,
                           1005),
    "eof_without_close": (True, client_frame(OP_TEXT, "a") + client_frame(OP_BINARY, b"b"),
                          1 << 20, 1006),
    "eof_inside_frame": (True, client_frame(OP_TEXT, "a") + client_frame(OP_TEXT, "abcdef")[:5],
                         1 << 20, 1006),
    "unmasked": (True, client_frame(OP_TEXT, "ok") + server_frame(OP_TEXT, "bad"), 1 << 20,
                 1002),
    "masked_to_client": (False, server_frame(OP_TEXT, "ok") + client_frame(OP_TEXT, "bad"),
                         1 << 20, 1002),
    "invalid_utf8": (True, client_frame(OP_TEXT, "ok") + client_frame(OP_TEXT, b"ab\xffcd")
                     + client_frame(OP_TEXT, "never"), 1 << 20, 1007),
    "utf8_cut_at_end": (True, client_frame(OP_TEXT, b"ab\xe2\x9c", fin=False)
                        + client_frame(OP_CONT, b""), 1 << 20, 1007),
    "too_large": (True, client_frame(OP_TEXT, "fits") + client_frame(OP_BINARY, b"x" * 2000),
                  1000, 1009),
    "too_large_fragmented": (True, client_frame(OP_BINARY, b"x" * 600, fin=False)
                             + client_frame(OP_CONT, b"y" * 600), 1000, 1009),
    "bad_close_code": (True, client_frame(OP_CLOSE, close_payload(999)), 1 << 20, 1002),
    "bad_close_reason": (True, client_frame(OP_CLOSE, b"\x03\xe8\xff"), 1 << 20, 1007),
    "reserved_opcode": (True, client_frame(OP_TEXT, "a") + client_frame(0x3, b"?"), 1 << 20,
                        1002),
    "reserved_bits": (True, client_frame(OP_TEXT, "a", rsv=RSV1), 1 << 20, 1002),
    "lone_continuation": (True, client_frame(OP_CONT, b"?"), 1 << 20, 1002),
    "new_message_inside_fragmented": (True, client_frame(OP_TEXT, "a", fin=False)
                                      + client_frame(OP_TEXT, "b"), 1 << 20, 1002),
    "fragmented_ping": (True, client_frame(OP_PING, b"p", fin=False), 1 << 20, 1002),
    "long_ping": (True, client_frame(OP_PING, b"p" * 126), 1 << 20, 1002),
    "non_minimal_length": (True, client_frame(OP_TEXT, "a", length_form=64), 1 << 20, 1002),
}



def _compressed(frame: Callable[..., bytes], bomb: bool = False) -> bytes:
    """Messages compressed with permessage-deflate (shared context), one
    fragmented, one sent uncompressed, then a close; or a message that
    inflates past the limit."""
    comp = zlib.compressobj(wbits=-15)

    def deflate(data: bytes) -> bytes:
        return (comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH))[:-4]

    if bomb:
        return frame(OP_BINARY, deflate(bytes(3 << 20)), rsv=RSV1)
    big = deflate(b"compressible text " * 20000)
    return b"".join([
        frame(OP_TEXT, deflate(b"hello"), rsv=RSV1),
        frame(OP_TEXT, deflate(b"hello"), rsv=RSV1),  # refers to the first
        frame(OP_TEXT, big[:1000], fin=False, rsv=RSV1),
        frame(OP_PING, b"between fragments"),
        frame(OP_CONT, big[1000:]),
        frame(OP_BINARY, b"not compressed"),
        frame(OP_BINARY, deflate(os.urandom(5000)), rsv=RSV1),
        frame(OP_CLOSE, close_payload(1000, "bye")),
    ])


def _burst(frame: Callable[..., bytes], compressed: bool = False) -> bytes:
    """Many small messages in one stream, ending without a close (EOF): the
    replies of an echo to a burst are written together on the gevent direct
    path.  With ``compressed``, permessage-deflate with a shared context."""
    comp = zlib.compressobj(wbits=-15)
    frames = []
    for i in range(500):
        opcode = OP_TEXT if i % 2 else OP_BINARY
        data = (f"p{i} " * (i % 9)).encode()
        if compressed:
            data = (comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH))[:-4]
            frames.append(frame(opcode, data, rsv=RSV1))
        else:
            frames.append(frame(opcode, data))
    return b"".join(frames)


SCENARIOS["burst_eof"] = (True, _burst(client_frame), 1 << 20, 1006)
SCENARIOS["burst_eof_client_role"] = (False, _burst(server_frame), 1 << 20, 1006)

#: Scenarios run with permessage-deflate agreed (no context takeover either way
#: is not set, so contexts carry over), and the parameters.
DEFLATE: Dict[str, Tuple[bool, bool, int, int]] = {}
for _name, _entry in {
        "deflate_server": (True, _compressed(client_frame), 1 << 20, 1000),
        "deflate_client_role": (False, _compressed(server_frame), 1 << 20, 1000),
        "deflate_bomb": (True, _compressed(client_frame, bomb=True), 1 << 20, 1009),
        "deflate_bad_data": (True, client_frame(OP_TEXT, b"\xff\xff", rsv=RSV1), 1 << 20,
                             1007),
        "deflate_burst_eof": (True, _burst(client_frame, compressed=True), 1 << 20, 1006)}.items():
    SCENARIOS[_name] = _entry
    DEFLATE[_name] = (False, False, 15, 15)

# What the WebSocket sends before it reads, in every scenario.
SENDS: List[Send] = [
    ("text", None),
    (b"binary", None),
    ("h\u00e9llo \u2713", None),
    (b"valid utf-8 as text", False),
    ("str as binary \u2713", True),
    (bytearray(b"bytearray"), None),
    (memoryview(b"memoryview"), None),
    ("", None),
    (b"", None),
    ("y" * 5000, None),
    (os.urandom(100000), None),
    # More than a socket buffer holds: the rest waits until writable.
    (bytes(range(256)) * 12288, None),
    (b"\xff not utf-8", False),  # ValueError
    (12345, None),  # TypeError
]


def describe(value: Any) -> List[Any]:
    if isinstance(value, str):
        return ["str", value]
    if isinstance(value, bytes):
        return ["bytes", value.hex()]
    return [type(value).__name__, repr(value)]


def error_record(exc: BaseException) -> List[Any]:
    return ["error", type(exc).__name__, getattr(exc, "code", None), str(exc)]


def frames_record(data: bytes, masked_output: bool) -> List[Any]:
    """What the WebSocket wrote: the exact bytes, or for a client (random
    masking keys) its frames unmasked."""
    if not masked_output:
        return ["bytes", data.hex()]
    frames, rest = parse_frames(data)
    return ["frames", [[f.fin, f.rsv, f.opcode, f.masked, f.payload.hex()] for f in frames],
            rest.hex()]


def run_scenario(env: Any, name: str, direct: bool, pending_split: int = 0,
                 echo: bool = False) -> Dict[str, Any]:
    """One scenario through one path: the WebSocket's results and output.
    With ``echo``, every message received is sent back at once, as an echo
    server does: on the gevent transport the replies to messages that
    arrived together are written together (see WebSocket._defer in
    pyws/websocket.py), which must not change a byte of the output."""
    server, stream, max_size, _ = SCENARIOS[name]
    ours, peer = env.socketpair()
    written: List[bytes] = []

    def write_stream() -> None:
        try:
            peer.sendall(stream[pending_split:])
            peer.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the WebSocket failed the connection and closed first

    def read_all() -> None:
        while True:
            try:
                data = peer.recv(65536)
            except OSError:
                return
            if not data:
                return
            written.append(data)

    transport_module.DIRECT_IO = direct
    try:
        ws = WebSocket(ours, _core.Protocol(server=server, max_message_size=max_size,
                                            deflate=DEFLATE.get(name)),
                       close_timeout=2.0, pending=stream[:pending_split])
    finally:
        transport_module.DIRECT_IO = True
    assert ws.transport.direct == direct
    reader = env.spawn(read_all)
    record: List[Any] = []
    for message, binary in SENDS:
        try:
            ws.send(message, binary=binary)
            record.append(["sent"])
        except (ValueError, TypeError) as exc:
            record.append(error_record(exc))
    writer = env.spawn(write_stream)
    while True:
        message = ws.receive()  # a failure ends it like a close: close_code tells
        if message is None:
            break
        record.append(describe(message))
        if echo:
            try:
                ws.send(message)
            except OSError as exc:  # ConnectionClosed: the peer closed first
                record.append(error_record(exc))
    record.append(["closed", ws.closed, ws.close_code, ws.close_reason])
    try:
        ws.receive()  # None was returned once: now it raises
    except OSError as exc:
        record.append(error_record(exc))
    try:
        ws.send("after the end")
    except OSError as exc:
        record.append(error_record(exc))
    assert env.join(writer, 10.0) and env.join(reader, 10.0), "peer still running"
    peer.close()
    return {"record": record, "output": frames_record(b"".join(written), not server)}


# -- environments ----------------------------------------------------------------

class ThreadEnv:
    def socketpair(self) -> Tuple[Any, Any]:
        return socket.socketpair()

    def spawn(self, fn: Callable[[], None]) -> Any:
        thread = threading.Thread(target=fn, daemon=True)
        thread.start()
        return thread

    def join(self, task: Any, timeout: float) -> bool:
        task.join(timeout)
        return not task.is_alive()


class GeventEnv:
    def __init__(self) -> None:
        import gevent
        import gevent.socket
        self._gevent = gevent
        self.socketpair = gevent.socket.socketpair

    def spawn(self, fn: Callable[[], None]) -> Any:
        return self._gevent.spawn(fn)

    def join(self, task: Any, timeout: float) -> bool:
        task.join(timeout)
        return bool(task.dead)


CASES = [(name, 0) for name in SCENARIOS] + [("mixed", 7), ("many_small", 100)]


def run_all(env: Any) -> Dict[str, Any]:
    return {f"{name}/{split}/{echo}": {"plain": run_scenario(env, name, False, split, echo),
                                       "direct": run_scenario(env, name, True, split, echo)}
            for name, split in CASES for echo in (False, True)}


@pytest.fixture(scope="module")
def gevent_results() -> Dict[str, Any]:
    pytest.importorskip("gevent")
    results: Dict[str, Any] = script_json(__file__, timeout=300)
    return results


def check(name: str, plain: Dict[str, Any], direct: Dict[str, Any]) -> None:
    assert direct == plain
    closed = next(entry for entry in plain["record"] if entry[0] == "closed")
    assert closed[0] == "closed" and closed[2] == SCENARIOS[name][3], closed


@pytest.mark.parametrize("echo", [False, True], ids=["send_first", "echo"])
@pytest.mark.parametrize("name,split", CASES)
def test_direct_path_matches_plain_path_with_threads(name: str, split: int, echo: bool) -> None:
    env = ThreadEnv()
    check(name, run_scenario(env, name, False, split, echo),
          run_scenario(env, name, True, split, echo))


@pytest.mark.parametrize("echo", [False, True], ids=["send_first", "echo"])
@pytest.mark.parametrize("name,split", CASES)
def test_direct_path_matches_plain_path_with_gevent(gevent_results: Dict[str, Any],
                                                    name: str, split: int, echo: bool) -> None:
    both = gevent_results[f"{name}/{split}/{echo}"]
    check(name, both["plain"], both["direct"])


def _replies(result: Dict[str, Any]) -> List[str]:
    """The payloads (hex) of the frames a server-side burst echo wrote after
    the SENDS that went out."""
    kind, data = result["output"]
    assert kind == "bytes"
    frames, rest = parse_frames(bytes.fromhex(data))
    assert rest == b""
    sent = sum(1 for entry in result["record"] if entry == ["sent"])
    return [f.payload.hex() for f in frames[sent:]]


def test_every_reply_to_a_burst_goes_out_on_both_paths(gevent_results: Dict[str, Any]) -> None:
    """No reply is held back or lost when the replies are written together
    (gevent, direct) rather than one by one."""
    expected = [(f"p{i} " * (i % 9)).encode().hex() for i in range(500)]
    both = gevent_results["burst_eof/0/True"]
    assert _replies(both["direct"]) == expected
    assert _replies(both["plain"]) == expected


def test_tls_and_wrapped_sockets_keep_the_plain_path() -> None:
    import ssl

    a, b = socket.socketpair()
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        wrapped = context.wrap_socket(a, server_hostname="localhost",
                                      do_handshake_on_connect=False)
        ws = WebSocket(wrapped, _core.Protocol(server=True))
        assert not ws.transport.direct
        plain = WebSocket(b, _core.Protocol(server=True))
        assert plain.transport.direct
    finally:
        a.close()
        b.close()


if __name__ == "__main__":
    json.dump(run_all(GeventEnv()), sys.stdout)
