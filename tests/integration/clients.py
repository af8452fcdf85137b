"""Three WebSocket clients behind one small interface, for parametrized tests:
the ``websockets`` sync client, ``websocket-client`` and ``pyws.connect``."""
from __future__ import annotations

import struct
import threading
import time
from typing import Optional, Tuple, Union

TIMEOUT = 10.0

Message = Union[str, bytes]


def call_with_timeout(fn, *args, timeout: float = TIMEOUT):
    """Run a blocking call in a daemon thread and wait at most ``timeout``
    (pyws.connect's socket is blocking after the handshake, so its waits are
    bounded here)."""
    result: list = []

    def run():
        try:
            result.append((True, fn(*args)))
        except BaseException as exc:  # re-raised in the caller
            result.append((False, exc))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TimeoutError(f"{getattr(fn, '__qualname__', fn)} blocked for over {timeout}s")
    ok, value = result[0]
    if not ok:
        raise value
    return value


class Client:
    name = ""

    def send(self, msg: Message) -> None:
        raise NotImplementedError

    def recv(self) -> Message:
        raise NotImplementedError

    def close(self) -> Tuple[Optional[int], str]:
        """Close with 1000; return (code, reason) of the server's close frame."""
        raise NotImplementedError

    def recv_close(self) -> Tuple[Optional[int], str]:
        """Wait for the server to close; return its (code, reason)."""
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError


class WebsocketsClient(Client):
    name = "websockets"

    def __init__(self, url: str, subprotocols=None):
        from websockets.sync.client import connect
        kw = {}
        if subprotocols:
            kw["subprotocols"] = subprotocols
        try:
            self.ws = connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT,
                              max_size=None, legacy=True, **kw)
        except TypeError:  # a websockets version without the legacy flag
            self.ws = connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT,
                              max_size=None, **kw)

    @property
    def subprotocol(self):
        return self.ws.subprotocol

    def send(self, msg):
        self.ws.send(msg)

    def recv(self):
        return self.ws.recv(timeout=TIMEOUT)

    def close(self):
        self.ws.close()
        return self.ws.close_code, self.ws.close_reason

    def recv_close(self):
        from websockets.exceptions import ConnectionClosed
        try:
            msg = self.ws.recv(timeout=TIMEOUT)
        except ConnectionClosed as exc:
            assert exc.rcvd is not None, "closed without a close frame from the server"
            return exc.rcvd.code, exc.rcvd.reason
        raise AssertionError(f"expected the server to close, got message {msg!r}")

    def abort(self):
        self.ws.close_socket()


class WebsocketClientClient(Client):
    name = "websocket-client"

    def __init__(self, url: str, subprotocols=None):
        import websocket
        kw = {}
        if subprotocols:
            kw["subprotocols"] = subprotocols
        self.ws = websocket.create_connection(url, timeout=TIMEOUT, **kw)

    @property
    def subprotocol(self):
        return self.ws.getsubprotocol()

    def send(self, msg):
        if isinstance(msg, str):
            self.ws.send(msg)
        else:
            self.ws.send_binary(msg)

    def recv(self):
        return self.ws.recv()

    def _wait_close_frame(self):
        import websocket
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            frame = self.ws.recv_frame()
            if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
                data = frame.data
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                return code, data[2:].decode("utf-8")
        raise TimeoutError("no close frame from the server")

    def close(self):
        self.ws.send_close(1000, b"")
        result = self._wait_close_frame()
        self.ws.shutdown()
        return result

    def recv_close(self):
        result = self._wait_close_frame()
        self.ws.send_close(result[0] or 1000, b"")
        self.ws.shutdown()
        return result

    def abort(self):
        self.ws.shutdown()


class PywsClient(Client):
    name = "pyws"

    def __init__(self, url: str, subprotocols=None):
        import pyws
        self.ws = call_with_timeout(pyws.connect, url, subprotocols, None, TIMEOUT)

    @property
    def subprotocol(self):
        return self.ws.subprotocol

    def send(self, msg):
        call_with_timeout(self.ws.send, msg)

    def recv(self):
        msg = call_with_timeout(self.ws.receive)
        assert msg is not None, f"connection closed ({self.ws.close_code} {self.ws.close_reason})"
        return msg

    def close(self):
        call_with_timeout(self.ws.close)
        return self.ws.close_code, self.ws.close_reason

    def recv_close(self):
        msg = call_with_timeout(self.ws.receive)
        assert msg is None, f"expected the server to close, got message {msg!r}"
        assert self.ws.closed
        return self.ws.close_code, self.ws.close_reason

    def abort(self):
        try:
            call_with_timeout(self.ws.close, timeout=2)
        except Exception:
            pass


CLIENTS = [WebsocketsClient, WebsocketClientClient, PywsClient]
CLIENT_IDS = [c.name for c in CLIENTS]
