"""A FastAPI app, unchanged, under uvicorn with each --ws implementation."""
from __future__ import annotations

import json

import pytest
import websocket as websocket_client
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.asgi import fastapi_app
from tests.asgi.support import raw_request, ws_connect, wsc_connect


def test_path_query_and_header_parameters_reach_the_endpoint(fastapi_server):
    url = fastapi_server.url("/items/42/ws?q=caf%C3%A9")
    with ws_connect(url, additional_headers={"X-Client": "pytest"},
                    subprotocols=["ignored.v1"]) as ws:
        first = json.loads(ws.recv(timeout=10))
    assert first == {"item_id": 42, "q": "caf\u00e9", "x_client": "pytest",
                     "subprotocols": ["ignored.v1"]}


def test_json_messages_round_trip(fastapi_server, token):
    with ws_connect(fastapi_server.url(f"/items/7/ws?id={token}")) as ws:
        json.loads(ws.recv(timeout=10))
        for message in ({"a": 1}, [1, 2, "three"], "text", None, {"nested": {"\u00e9": [True]}}):
            ws.send(json.dumps(message))
            assert json.loads(ws.recv(timeout=10)) == {"echo": message, "item_id": 7}
        ws.close(4100, "json done")
    record = fastapi_server.recorded_disconnect(token)
    assert (record["code"], record["reason"]) == (4100, "json done")


def test_path_parameter_validation_error_refuses_the_handshake_with_403(fastapi_server):
    """FastAPI closes before accept on a validation error (item_id not an
    int): uvicorn answers 403."""
    with pytest.raises(InvalidStatus) as info, \
            ws_connect(fastapi_server.url("/items/not-a-number/ws")):
        pass
    assert info.value.response.status_code == 403


def test_dependency_raising_websocket_exception_refuses_with_403(fastapi_server):
    client, resp = raw_request(fastapi_server.port, "/guarded?token=wrong")
    with client:
        assert resp.status == 403


def test_websocket_exception_after_accept_closes_with_its_code_and_reason(fastapi_server):
    with ws_connect(fastapi_server.url(f"/guarded?token={fastapi_app.TOKEN}")) as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "ok: hello"
        ws.send("forbidden")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (1008, "forbidden word")


def test_binary_messages_with_websocket_client(fastapi_server, token):
    ws = wsc_connect(fastapi_server.url(f"/bytes?id={token}"))
    try:
        total = 0
        for size in (0, 1, 125, 126, 65535, 65536, 300_000):
            data = bytes([size % 251]) * size
            ws.send_binary(data)
            total += size
            opcode, reply = ws.recv_data()
            assert opcode == websocket_client.ABNF.OPCODE_BINARY
            assert reply == data + total.to_bytes(8, "big")
    finally:
        ws.close(status=1000)
    assert fastapi_server.recorded_disconnect(token)["code"] == 1000


def test_denial_response_with_json_body(fastapi_server):
    client, resp = raw_request(fastapi_server.port, "/deny")
    with client:
        assert resp.status == 403
        assert resp.header("x-denied-by") == "fastapi"
        assert resp.header("content-type") == "application/json"
        assert json.loads(resp.body) == fastapi_app.DENIAL_JSON


def test_burst_of_messages_then_close_arrives_whole_and_in_order(fastapi_server):
    with ws_connect(fastapi_server.url("/broadcast?n=500")) as ws:
        got = []
        with pytest.raises(ConnectionClosed) as info:
            while True:
                got.append(ws.recv(timeout=10))
    assert got == [f"message {i}" for i in range(500)]
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (1000, "done")
