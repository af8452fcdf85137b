"""A Flask app under gevent's WSGIServer + pyws.WebSocketHandler: the plain
``@app.route('/ws')`` view using ``request.environ['wsgi.websocket']`` and a
route declared ``websocket=True`` both echo; '/' still serves HTML."""
from __future__ import annotations

import urllib.request

import pytest
import websocket


@pytest.mark.parametrize("path", ["/ws", "/ws-flag"],
                         ids=["plain-route", "websocket-true-route"])
def test_flask_route_echoes_text_and_binary(flask_server, path):
    ws = websocket.create_connection(flask_server.url(path), timeout=10)
    try:
        ws.send("hello flask")
        assert ws.recv() == "hello flask"
        ws.send_binary(b"\x00\xff")
        assert ws.recv() == b"\x00\xff"
        ws.send("\u00e9t\u00e9")
        assert ws.recv() == "\u00e9t\u00e9"
    finally:
        ws.close(timeout=2)


@pytest.mark.parametrize("path", ["/ws", "/ws-flag"],
                         ids=["plain-route", "websocket-true-route"])
def test_flask_route_serves_several_connections_in_turn(flask_server, path):
    for i in range(3):
        ws = websocket.create_connection(flask_server.url(path), timeout=10)
        try:
            ws.send(f"connection {i}")
            assert ws.recv() == f"connection {i}"
        finally:
            ws.close(timeout=2)


def test_flask_index_still_serves_html(flask_server):
    with urllib.request.urlopen(flask_server.http_url("/"), timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/html")
        assert b"<html>" in resp.read()

