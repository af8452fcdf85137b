"""Clients for the ASGI tests: the websockets sync client and websocket-client
set up for 127.0.0.1 with bounded timeouts, and raw-socket helpers (on
tests/wire.py's RawClient) for what a client library hides."""
from __future__ import annotations

import os
from typing import Iterable, List, Optional, Tuple

import websocket as websocket_client  # websocket-client
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as websockets_connect

from tests.wire import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    Frame,
    HttpResponse,
    RawClient,
    close_payload,
    upgrade_request,
)

TIMEOUT = 10.0


def ws_connect(url: str, **kwargs) -> ClientConnection:
    """The websockets (sync) client: no proxy, no client keepalive, bounded
    timeouts; ``compression=None`` unless asked for."""
    kwargs.setdefault("proxy", None)
    kwargs.setdefault("open_timeout", TIMEOUT)
    kwargs.setdefault("close_timeout", TIMEOUT)
    kwargs.setdefault("ping_interval", None)
    kwargs.setdefault("compression", None)
    kwargs.setdefault("max_size", 64 * 1024 * 1024)
    return websockets_connect(url, **kwargs)


def wsc_connect(url: str, **kwargs) -> websocket_client.WebSocket:
    """websocket-client's create_connection, bounded timeouts."""
    kwargs.setdefault("timeout", TIMEOUT)
    return websocket_client.create_connection(url, **kwargs)


def raw_request(port: int, path: str, headers: Iterable[Tuple[str, str]] = ()
                ) -> Tuple[RawClient, HttpResponse]:
    """Send an upgrade request by hand; the client and the server's response
    (head and, unless 101, body)."""
    client = RawClient(port, timeout=TIMEOUT)
    request, _ = upgrade_request(f"127.0.0.1:{port}", path, extra=tuple(headers))
    client.send(request)
    return client, client.read_http_response()


def read_frames_until_close(client: RawClient, timeout: float = TIMEOUT,
                            answer_pings: bool = True) -> Tuple[List[Frame], Optional[Frame]]:
    """Frames until a close frame (returned apart) or EOF (close None)."""
    frames: List[Frame] = []
    while True:
        try:
            frame = client.read_frame(timeout)
        except EOFError:
            return frames, None
        if frame.opcode == OP_CLOSE:
            return frames, frame
        if frame.opcode == OP_PING and answer_pings:
            client.send_frame(OP_PONG, frame.payload)
            continue
        frames.append(frame)


def answer_close(client: RawClient, close: Frame) -> bytes:
    """Echo the server's close frame (the client's half of the closing
    handshake); return whatever came before the server's EOF."""
    try:
        client.send_frame(OP_CLOSE, close.payload)
    except OSError:
        pass
    return client.expect_eof(TIMEOUT)


def client_close(client: RawClient, code: Optional[int], reason: str = "") -> Frame:
    """Start the closing handshake from the client; the server's close frame."""
    client.send_frame(OP_CLOSE, close_payload(code, reason))
    _, close = read_frames_until_close(client)
    assert close is not None, "the server closed TCP without answering the close frame"
    return close


def unique(prefix: str) -> str:
    return f"{prefix}-{os.urandom(6).hex()}"
