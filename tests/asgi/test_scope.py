"""The WebSocket scope as uvicorn fills it, field by field, and compared
whole with the scope uvicorn's websockets implementation makes."""
from __future__ import annotations

import json
from typing import List, Tuple

import pytest

from tests.asgi import starlette_app as app
from tests.asgi.conftest import ROOT_PATH
from tests.wire import RawClient, upgrade_request

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
PATH = "/scope/caf%C3%A9%20x"
QUERY = "q=1&r=%20&empty="
EXTRA_HEADERS = [
    ("X-Custom", "Value With Case"),
    ("User-Agent", "pyws-asgi-tests/1"),
    ("Origin", "http://example.test"),
    ("Cookie", "a=1; b=2"),
    ("Sec-WebSocket-Protocol", "a, b"),
    ("X-Repeated", "one"),
    ("Sec-WebSocket-Protocol", "c"),
    ("X-Repeated", "two"),
]
# uvicorn's wsproto implementation leaves these request headers out of
# scope["headers"] (wsproto consumes them); websockets and websockets-sansio
# keep every header.
WSPROTO_DROPS = {"sec-websocket-protocol", "sec-websocket-extensions"}


def fetch_scope(server, path: str = f"{PATH}?{QUERY}", headers=EXTRA_HEADERS,
                ) -> Tuple[dict, int, List[Tuple[str, str]]]:
    """The scope the server made for a handshake sent by hand: (scope as
    JSON, the client's local port, the request's headers in order)."""
    with RawClient(server.port) as client:
        request, _ = upgrade_request(f"127.0.0.1:{server.port}", path, key=KEY,
                                     extra=tuple(headers))
        client.send(request)
        resp = client.read_http_response()
        assert resp.status == 101, resp
        frame = client.read_frame()
        client_port = client.sock.getsockname()[1]
    sent = [(line.split(":", 1)[0], line.split(":", 1)[1].strip())
            for line in request.decode("latin-1").split("\r\n")[1:] if line]
    return json.loads(frame.payload), client_port, sent


def pairs(scope_headers) -> List[Tuple[str, str]]:
    """scope["headers"] as (name, value) str pairs; asserts each is a pair
    of bytes (a list or a tuple: both are iterables)."""
    out = []
    for item in scope_headers:
        pair = item["tuple"] if isinstance(item, dict) else item
        assert len(pair) == 2, item
        name, value = pair
        assert set(name) == {"bytes"} and set(value) == {"bytes"}, f"not bytes: {item}"
        out.append((name["bytes"], value["bytes"]))
    return out


def test_scope_type_asgi_and_http_version(server):
    scope, _, _ = fetch_scope(server)
    assert scope["type"] == "websocket"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "ws"


def test_scope_server_and_client_addresses(server):
    scope, client_port, _ = fetch_scope(server)
    assert scope["server"] == {"tuple": ["127.0.0.1", server.port]}
    assert scope["client"] == {"tuple": ["127.0.0.1", client_port]}


def test_scope_path_raw_path_and_query_string(server):
    scope, _, _ = fetch_scope(server)
    assert scope["root_path"] == ""
    assert scope["path"] == "/scope/caf\u00e9 x"
    assert scope["raw_path"] == {"bytes": PATH}
    assert scope["query_string"] == {"bytes": QUERY}


def test_scope_query_string_is_empty_bytes_without_query(server):
    scope, _, _ = fetch_scope(server, path="/scope")
    assert scope["path"] == "/scope"
    assert scope["query_string"] == {"bytes": ""}


def test_scope_headers_are_the_request_headers_lowercased_in_order(server, impl):
    scope, _, sent = fetch_scope(server)
    got = pairs(scope["headers"])
    expected = [(name.lower(), value) for name, value in sent]
    if impl == "wsproto":
        expected = [(n, v) for n, v in expected if n not in WSPROTO_DROPS]
    assert got == expected


def test_scope_subprotocols_from_every_protocol_header(server):
    scope, _, _ = fetch_scope(server)
    assert scope["subprotocols"] == ["a", "b", "c"]


def test_scope_subprotocols_empty_when_none_offered(server):
    scope, _, _ = fetch_scope(server, headers=[])
    assert scope["subprotocols"] == []


def test_scope_extensions_offer_the_denial_response(server):
    scope, _, _ = fetch_scope(server)
    assert scope["extensions"] == {"websocket.http.response": {}}


def test_scope_state_is_the_lifespan_state(server):
    scope, _, _ = fetch_scope(server)
    assert scope["state"] == app.LIFESPAN_STATE


def test_scope_state_is_a_copy_per_connection(server, token):
    """The /scope endpoint adds a key to its scope["state"] once it has sent
    the scope; the next connection must not see it."""
    with RawClient(server.port) as client:
        client.handshake(f"/scope?id={token}")
        first = json.loads(client.read_frame().payload)
    server.recorded_disconnect(token)  # the first app has run past its change
    second, _, _ = fetch_scope(server)
    assert first["state"] == app.LIFESPAN_STATE
    assert second["state"] == app.LIFESPAN_STATE


def test_scope_has_no_fields_beyond_uvicorns(server):
    scope, _, _ = fetch_scope(server)
    assert set(scope) == {"type", "asgi", "http_version", "scheme", "server", "client",
                          "root_path", "path", "raw_path", "query_string", "headers",
                          "subprotocols", "state", "extensions"}


def _normalised(scope: dict, server_port: int, client_port: int) -> dict:
    """The scope with what differs between two servers and two connections
    (ports, and the Host header that carries the port) made equal."""
    scope = json.loads(json.dumps(scope))
    assert scope["server"]["tuple"][1] == server_port
    scope["server"]["tuple"][1] = "SERVER-PORT"
    assert scope["client"]["tuple"][1] == client_port
    scope["client"]["tuple"][1] = "CLIENT-PORT"
    for item in scope["headers"]:
        pair = item["tuple"] if isinstance(item, dict) else item
        if pair[0]["bytes"] == "host":
            assert pair[1]["bytes"] == f"127.0.0.1:{server_port}"
            pair[1]["bytes"] = "HOST"
    return scope


def test_scope_equals_the_websockets_implementations_scope(uvicorn_pool, server, impl):
    """The same handshake, to this server and to uvicorn's websockets
    implementation: the scopes are equal but for the ports (and for the
    headers wsproto leaves out)."""
    reference_impl = "websockets-sansio" if impl == "websockets" else "websockets"
    reference = uvicorn_pool.get(reference_impl)
    mine, my_client_port, _ = fetch_scope(server)
    theirs, their_client_port, _ = fetch_scope(reference)
    mine = _normalised(mine, server.port, my_client_port)
    theirs = _normalised(theirs, reference.port, their_client_port)
    if impl == "wsproto":
        theirs["headers"] = [h for h in theirs["headers"]
                             if h["tuple"][0]["bytes"] not in WSPROTO_DROPS]
    assert mine == theirs


def test_scope_with_root_path_and_proxy_headers(alt_server):
    """--root-path prefixes path and raw_path; X-Forwarded-For/-Proto from
    127.0.0.1 (trusted by default) set client and scheme: the app runs behind
    uvicorn's middleware."""
    scope, _, _ = fetch_scope(alt_server, path="/scope/x?y=1", headers=[
        ("X-Forwarded-For", "10.1.2.3"), ("X-Forwarded-Proto", "https")])
    assert scope["root_path"] == ROOT_PATH
    assert scope["path"] == ROOT_PATH + "/scope/x"
    assert scope["raw_path"] == {"bytes": ROOT_PATH + "/scope/x"}
    assert scope["query_string"] == {"bytes": "y=1"}
    assert scope["scheme"] == "wss"
    assert scope["client"] == {"tuple": ["10.1.2.3", 0]}


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_scope_is_the_same_under_httptools_and_h11(uvicorn_pool, impl, http):
    server = uvicorn_pool.get(impl, http=http)
    scope, client_port, _ = fetch_scope(server)
    assert scope["path"] == "/scope/caf\u00e9 x"
    assert scope["raw_path"] == {"bytes": PATH}
    assert scope["query_string"] == {"bytes": QUERY}
    assert scope["client"] == {"tuple": ["127.0.0.1", client_port]}
    names = [n for n, _ in pairs(scope["headers"])]
    assert names == [n for n in names if n == n.lower()]
    assert ("x-custom", "Value With Case") in pairs(scope["headers"])
