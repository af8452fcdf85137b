"""Opening handshake (RFC 6455 section 4) through pyws._core."""
from __future__ import annotations

import base64

import pytest

from pyws import _core
from pyws.exceptions import HandshakeError, WebSocketError
from tests.vectors import RFC_ACCEPT, RFC_KEY, RFC_REQUEST_HEADERS
from tests.wire import accept_for


def replace(headers, name, value=None):
    """headers with ``name`` replaced by value (None: removed)."""
    out = [(k, v) for k, v in headers if k.lower() != name.lower()]
    if value is not None:
        out.append((name, value))
    return out


def header_value(headers, name):
    values = [v for k, v in headers if k.lower() == name.lower()]
    assert len(values) <= 1, f"{name} appears {len(values)} times: {headers}"
    return values[0] if values else None


def assert_rejected(exc_info, status, reason_words):
    exc = exc_info.value
    assert isinstance(exc, HandshakeError)
    assert isinstance(exc, WebSocketError) and isinstance(exc, OSError)
    assert exc.status == status, f"status {exc.status} for {exc}"
    text = str(exc).lower()
    assert any(w.lower() in text for w in reason_words), \
        f"message {str(exc)!r} names none of {reason_words}"


# ---------------------------------------------------------------------------
# accept_key / response_headers

def test_accept_key_of_rfc_sample_key():
    assert _core.accept_key(RFC_KEY) == RFC_ACCEPT


def test_accept_key_accepts_bytes():
    assert _core.accept_key(RFC_KEY.encode()) == RFC_ACCEPT


def test_accept_key_matches_reference_for_other_keys():
    for raw in (b"\x00" * 16, b"\xff" * 16, bytes(range(16))):
        key = base64.b64encode(raw).decode()
        assert _core.accept_key(key) == accept_for(key)


def test_response_headers_without_subprotocol():
    headers = _core.response_headers(RFC_ACCEPT)
    assert [k.lower() for k, _ in headers] == ["upgrade", "connection", "sec-websocket-accept"]
    assert header_value(headers, "Upgrade").lower() == "websocket"
    assert header_value(headers, "Connection").lower() == "upgrade"
    assert header_value(headers, "Sec-WebSocket-Accept") == RFC_ACCEPT


def test_response_headers_with_subprotocol():
    headers = _core.response_headers(RFC_ACCEPT, "chat")
    assert len(headers) == 4
    assert header_value(headers, "Sec-WebSocket-Accept") == RFC_ACCEPT
    assert header_value(headers, "Sec-WebSocket-Protocol") == "chat"


# ---------------------------------------------------------------------------
# check_request: accepted requests

def test_check_request_accepts_rfc_sample_and_returns_its_accept_value():
    assert _core.check_request("GET", "HTTP/1.1", RFC_REQUEST_HEADERS) == (RFC_ACCEPT, None)


def test_check_request_header_names_in_any_case():
    headers = [(k.upper(), v) for k, v in RFC_REQUEST_HEADERS]
    assert _core.check_request("GET", "HTTP/1.1", headers) == (RFC_ACCEPT, None)
    headers = [(k.lower(), v) for k, v in RFC_REQUEST_HEADERS]
    assert _core.check_request("GET", "HTTP/1.1", headers) == (RFC_ACCEPT, None)


def test_check_request_upgrade_and_connection_values_in_any_case():
    headers = replace(replace(RFC_REQUEST_HEADERS, "Upgrade", "WebSocket"),
                      "Connection", "UPGRADE")
    assert _core.check_request("GET", "HTTP/1.1", headers) == (RFC_ACCEPT, None)


@pytest.mark.parametrize("connection", ["keep-alive, Upgrade", "Upgrade, keep-alive",
                                        "keep-alive,upgrade", "foo,  Upgrade  , bar"])
def test_check_request_connection_token_list(connection):
    headers = replace(RFC_REQUEST_HEADERS, "Connection", connection)
    assert _core.check_request("GET", "HTTP/1.1", headers) == (RFC_ACCEPT, None)


@pytest.mark.parametrize("upgrade", ["websocket, foo", "foo, websocket"])
def test_check_request_upgrade_token_list(upgrade):
    headers = replace(RFC_REQUEST_HEADERS, "Upgrade", upgrade)
    assert _core.check_request("GET", "HTTP/1.1", headers) == (RFC_ACCEPT, None)


def test_check_request_combines_repeated_connection_headers():
    headers = replace(RFC_REQUEST_HEADERS, "Connection") + [
        ("Connection", "keep-alive"), ("Connection", "Upgrade")]
    assert _core.check_request("GET", "HTTP/1.1", headers) == (RFC_ACCEPT, None)


def test_check_request_selects_subprotocol_in_server_preference_order():
    # The client offers "chat, superchat"; the server prefers superchat.
    assert _core.check_request("GET", "HTTP/1.1", RFC_REQUEST_HEADERS,
                               ["superchat", "chat"]) == (RFC_ACCEPT, "superchat")
    assert _core.check_request("GET", "HTTP/1.1", RFC_REQUEST_HEADERS,
                               ["chat", "superchat"]) == (RFC_ACCEPT, "chat")


def test_check_request_selects_first_shared_subprotocol_skipping_unoffered():
    assert _core.check_request("GET", "HTTP/1.1", RFC_REQUEST_HEADERS,
                               ["mqtt", "superchat"]) == (RFC_ACCEPT, "superchat")


def test_check_request_subprotocol_from_repeated_headers():
    headers = replace(RFC_REQUEST_HEADERS, "Sec-WebSocket-Protocol") + [
        ("Sec-WebSocket-Protocol", "chat"), ("Sec-WebSocket-Protocol", "superchat")]
    assert _core.check_request("GET", "HTTP/1.1", headers,
                               ["superchat"]) == (RFC_ACCEPT, "superchat")


def test_check_request_no_subprotocol_when_client_offers_none():
    headers = replace(RFC_REQUEST_HEADERS, "Sec-WebSocket-Protocol")
    assert _core.check_request("GET", "HTTP/1.1", headers, ["chat"]) == (RFC_ACCEPT, None)


def test_check_request_no_subprotocol_when_none_shared():
    assert _core.check_request("GET", "HTTP/1.1", RFC_REQUEST_HEADERS,
                               ["mqtt", "wamp"]) == (RFC_ACCEPT, None)


def test_check_request_no_subprotocol_when_server_supports_none():
    assert _core.check_request("GET", "HTTP/1.1", RFC_REQUEST_HEADERS, []) == (RFC_ACCEPT, None)
    assert _core.check_request("GET", "HTTP/1.1", RFC_REQUEST_HEADERS, None) == (RFC_ACCEPT, None)


def test_check_request_subprotocol_is_not_a_substring_match():
    # "chat" is offered, "cha" and "superchat2" are not.
    assert _core.check_request("GET", "HTTP/1.1", RFC_REQUEST_HEADERS,
                               ["cha", "superchat2"]) == (RFC_ACCEPT, None)


# ---------------------------------------------------------------------------
# check_request: rejections

def test_check_request_rejects_post_with_405_and_allow_get():
    with pytest.raises(HandshakeError) as ei:
        _core.check_request("POST", "HTTP/1.1", RFC_REQUEST_HEADERS)
    assert_rejected(ei, 405, ["method", "GET", "POST"])
    assert [(k.lower(), v) for k, v in ei.value.headers] == [("allow", "GET")]


def test_check_request_rejects_http_1_0_with_400():
    with pytest.raises(HandshakeError) as ei:
        _core.check_request("GET", "HTTP/1.0", RFC_REQUEST_HEADERS)
    assert_rejected(ei, 400, ["HTTP/1.1", "HTTP/1.0", "version"])


def test_check_request_rejects_missing_host_with_400():
    with pytest.raises(HandshakeError) as ei:
        _core.check_request("GET", "HTTP/1.1", replace(RFC_REQUEST_HEADERS, "Host"))
    assert_rejected(ei, 400, ["host"])


def test_check_request_rejects_host_headers_folded_into_one_with_400():
    """A WSGI server folds a repeated Host into one comma-joined value
    (Werkzeug does): it is refused as two Host headers are."""
    with pytest.raises(HandshakeError) as ei:
        _core.check_request("GET", "HTTP/1.1",
                            replace(RFC_REQUEST_HEADERS, "Host", "a.example,b.example"))
    assert_rejected(ei, 400, ["host"])


@pytest.mark.parametrize("upgrade", [None, "", "h2c", "websocketx", "web socket"])
def test_check_request_rejects_missing_or_wrong_upgrade_with_400(upgrade):
    with pytest.raises(HandshakeError) as ei:
        _core.check_request("GET", "HTTP/1.1", replace(RFC_REQUEST_HEADERS, "Upgrade", upgrade))
    assert_rejected(ei, 400, ["upgrade"])


@pytest.mark.parametrize("connection", [None, "", "keep-alive", "close", "notupgrade",
                                        "upgraded"])
def test_check_request_rejects_missing_or_wrong_connection_with_400(connection):
    with pytest.raises(HandshakeError) as ei:
        _core.check_request("GET", "HTTP/1.1",
                            replace(RFC_REQUEST_HEADERS, "Connection", connection))
    assert_rejected(ei, 400, ["connection"])


def test_check_request_rejects_missing_key_with_400():
    with pytest.raises(HandshakeError) as ei:
        _core.check_request("GET", "HTTP/1.1",
                            replace(RFC_REQUEST_HEADERS, "Sec-WebSocket-Key"))
    assert_rejected(ei, 400, ["key"])


@pytest.mark.parametrize("key", [
    "",
    "not base64 at all!!!!!!!",
    "dGhlIHNhbXBsZSBub25jZQ=!",
    "dGhlIHNhbXBsZSBub25jZQ",  # 16 bytes but unpadded
    base64.b64encode(b"x" * 15).decode(),  # 15 bytes
    base64.b64encode(b"x" * 17).decode(),  # 17 bytes
    base64.b64encode(b"x" * 32).decode(),
], ids=["empty", "not-base64", "bad-char", "unpadded", "15-bytes", "17-bytes", "32-bytes"])
def test_check_request_rejects_bad_key_with_400(key):
    with pytest.raises(HandshakeError) as ei:
        _core.check_request("GET", "HTTP/1.1",
                            replace(RFC_REQUEST_HEADERS, "Sec-WebSocket-Key", key))
    assert_rejected(ei, 400, ["key"])


@pytest.mark.parametrize("version", [None, "12", "14", "8", "", "13x"])
def test_check_request_rejects_version_other_than_13_with_426(version):
    with pytest.raises(HandshakeError) as ei:
        _core.check_request("GET", "HTTP/1.1",
                            replace(RFC_REQUEST_HEADERS, "Sec-WebSocket-Version", version))
    assert_rejected(ei, 426, ["version"])
    assert [(k.lower(), v) for k, v in ei.value.headers] == [("sec-websocket-version", "13")]


# ---------------------------------------------------------------------------
# client_request

def test_client_request_is_a_valid_upgrade_request():
    request, key = _core.client_request("example.com:8080", "/ws?x=1")
    assert type(request) is bytes and type(key) is str
    assert request.startswith(b"GET /ws?x=1 HTTP/1.1\r\n")
    assert request.endswith(b"\r\n\r\n")
    assert len(base64.b64decode(key, validate=True)) == 16
    parsed = _core.parse_request(request)
    assert parsed is not None
    head_length, method, target, version, headers = parsed
    assert (head_length, method, target, version) == (len(request), "GET", "/ws?x=1", "HTTP/1.1")
    assert header_value(headers, "Host") == "example.com:8080"
    assert header_value(headers, "Sec-WebSocket-Key") == key
    assert header_value(headers, "Sec-WebSocket-Version") == "13"
    assert header_value(headers, "Sec-WebSocket-Protocol") is None
    assert _core.check_request(method, version, headers) == (accept_for(key), None)


def test_client_request_key_is_random_each_call():
    keys = {_core.client_request("h", "/")[1] for _ in range(20)}
    assert len(keys) == 20


def test_client_request_offers_subprotocols_and_extra_headers():
    request, key = _core.client_request("h:1", "/", ["chat", "superchat"],
                                        [("Origin", "http://example.com"), ("X-Test", "1")])
    _, method, _, version, headers = _core.parse_request(request)
    offered = [p.strip() for p in header_value(headers, "Sec-WebSocket-Protocol").split(",")]
    assert offered == ["chat", "superchat"]
    assert header_value(headers, "Origin") == "http://example.com"
    assert header_value(headers, "X-Test") == "1"
    assert _core.check_request(method, version, headers, ["superchat"]) == (
        accept_for(key), "superchat")


# ---------------------------------------------------------------------------
# check_response

def response(accept, *, status=b"101 Switching Protocols", upgrade=b"websocket",
             connection=b"Upgrade", protocol=None, extra=b""):
    lines = [b"HTTP/1.1 " + status]
    if upgrade is not None:
        lines.append(b"Upgrade: " + upgrade)
    if connection is not None:
        lines.append(b"Connection: " + connection)
    if accept is not None:
        lines.append(b"Sec-WebSocket-Accept: " + accept.encode())
    if protocol is not None:
        lines.append(b"Sec-WebSocket-Protocol: " + protocol)
    return b"\r\n".join(lines) + b"\r\n" + extra + b"\r\n"


def test_check_response_accepts_valid_101():
    head = response(RFC_ACCEPT)
    result = _core.check_response(head, RFC_KEY)
    assert result is not None
    head_length, protocol, headers, deflate = result
    assert deflate is None
    assert head_length == len(head)
    assert protocol is None
    assert header_value(headers, "Sec-WebSocket-Accept") == RFC_ACCEPT
    assert header_value(headers, "Upgrade") == "websocket"


def test_check_response_reports_head_length_before_leftover_frame_bytes():
    head = response(RFC_ACCEPT)
    data = head + b"\x81\x05Hello"
    head_length, _, _, _ = _core.check_response(data, RFC_KEY)
    assert head_length == len(head)
    assert data[head_length:] == b"\x81\x05Hello"


def test_check_response_returns_none_for_every_incomplete_prefix():
    head = response(RFC_ACCEPT)
    for n in range(len(head)):
        assert _core.check_response(head[:n], RFC_KEY) is None, n


def test_check_response_accepts_bytearray_and_memoryview():
    head = response(RFC_ACCEPT)
    assert _core.check_response(bytearray(head), RFC_KEY)[0] == len(head)
    assert _core.check_response(memoryview(head), RFC_KEY)[0] == len(head)


def test_check_response_header_names_and_values_in_any_case():
    head = (b"HTTP/1.1 101 Switching Protocols\r\nUPGRADE: WebSocket\r\n"
            b"connection: upgrade\r\nsec-websocket-accept: " + RFC_ACCEPT.encode() + b"\r\n\r\n")
    assert _core.check_response(head, RFC_KEY)[0] == len(head)


def test_check_response_round_trip_with_client_request_and_check_request():
    request, key = _core.client_request("h", "/", ["chat", "superchat"])
    _, method, _, version, headers = _core.parse_request(request)
    accept, protocol = _core.check_request(method, version, headers, ["superchat"])
    head = b"HTTP/1.1 101 Switching Protocols\r\n" + b"".join(
        f"{k}: {v}\r\n".encode() for k, v in _core.response_headers(accept, protocol)) + b"\r\n"
    assert _core.check_response(head, key, ["chat", "superchat"])[:2] == (len(head), "superchat")


def test_check_response_returns_selected_subprotocol():
    head = response(RFC_ACCEPT, protocol=b"superchat")
    assert _core.check_response(head, RFC_KEY, ["chat", "superchat"])[1] == "superchat"


@pytest.mark.parametrize("status,code", [(b"200 OK", 200), (b"400 Bad Request", 400),
                                         (b"426 Upgrade Required", 426)])
def test_check_response_rejects_non_101_status(status, code):
    with pytest.raises(HandshakeError) as ei:
        _core.check_response(response(RFC_ACCEPT, status=status), RFC_KEY)
    assert ei.value.status == code


def test_check_response_rejects_wrong_accept():
    wrong = accept_for("AAAAAAAAAAAAAAAAAAAAAA==")
    with pytest.raises(HandshakeError) as ei:
        _core.check_response(response(wrong), RFC_KEY)
    assert ei.value.status == 101
    assert "accept" in str(ei.value).lower()


def test_check_response_rejects_missing_accept():
    with pytest.raises(HandshakeError) as ei:
        _core.check_response(response(None), RFC_KEY)
    assert ei.value.status == 101


@pytest.mark.parametrize("upgrade", [None, b"h2c"])
def test_check_response_rejects_missing_or_wrong_upgrade(upgrade):
    with pytest.raises(HandshakeError) as ei:
        _core.check_response(response(RFC_ACCEPT, upgrade=upgrade), RFC_KEY)
    assert ei.value.status == 101
    assert "upgrade" in str(ei.value).lower()


@pytest.mark.parametrize("connection", [None, b"keep-alive"])
def test_check_response_rejects_missing_or_wrong_connection(connection):
    with pytest.raises(HandshakeError) as ei:
        _core.check_response(response(RFC_ACCEPT, connection=connection), RFC_KEY)
    assert ei.value.status == 101
    assert "connection" in str(ei.value).lower()


def test_check_response_rejects_subprotocol_not_offered():
    with pytest.raises(HandshakeError):
        _core.check_response(response(RFC_ACCEPT, protocol=b"mqtt"), RFC_KEY, ["chat"])


def test_check_response_rejects_subprotocol_when_none_offered():
    with pytest.raises(HandshakeError):
        _core.check_response(response(RFC_ACCEPT, protocol=b"chat"), RFC_KEY)


def test_check_response_rejects_unparsable_answer_with_status_0():
    with pytest.raises(HandshakeError) as ei:
        _core.check_response(b"SSH-2.0-OpenSSH_9.2\r\n\r\n", RFC_KEY)
    assert ei.value.status == 0


# ---------------------------------------------------------------------------
# parse_request

SAMPLE_REQUEST = (b"GET /chat?a=1 HTTP/1.1\r\n" + b"".join(
    f"{k}: {v}\r\n".encode() for k, v in RFC_REQUEST_HEADERS) + b"\r\n")


def test_parse_request_parses_rfc_sample():
    head_length, method, target, version, headers = _core.parse_request(SAMPLE_REQUEST)
    assert (head_length, method, target, version) == (
        len(SAMPLE_REQUEST), "GET", "/chat?a=1", "HTTP/1.1")
    assert [(k.lower(), v) for k, v in headers] == [
        (k.lower(), v) for k, v in RFC_REQUEST_HEADERS]
    assert _core.check_request(method, version, headers) == (RFC_ACCEPT, None)


def test_parse_request_reports_head_length_before_leftover_bytes():
    data = SAMPLE_REQUEST + b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"
    assert _core.parse_request(data)[0] == len(SAMPLE_REQUEST)


def test_parse_request_strips_header_value_whitespace():
    data = b"GET / HTTP/1.1\r\nHost:   a.example  \r\nX-Y:z\r\n\r\n"
    _, _, _, _, headers = _core.parse_request(data)
    assert [(k.lower(), v) for k, v in headers] == [("host", "a.example"), ("x-y", "z")]


def test_parse_request_returns_none_when_incomplete():
    assert _core.parse_request(b"") is None
    for n in range(len(SAMPLE_REQUEST)):
        assert _core.parse_request(SAMPLE_REQUEST[:n]) is None, n


def test_parse_request_rejects_oversize_complete_head_with_431():
    data = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n"
    with pytest.raises(HandshakeError) as ei:
        _core.parse_request(data)
    assert ei.value.status == 431


def test_parse_request_rejects_oversize_incomplete_head_with_431():
    data = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000
    with pytest.raises(HandshakeError) as ei:
        _core.parse_request(data)
    assert ei.value.status == 431


def test_parse_request_honours_max_size_argument():
    assert _core.parse_request(SAMPLE_REQUEST, max_size=len(SAMPLE_REQUEST) + 10) is not None
    with pytest.raises(HandshakeError) as ei:
        _core.parse_request(SAMPLE_REQUEST, max_size=64)
    assert ei.value.status == 431


@pytest.mark.parametrize("data", [
    b"\x00\x01\x02garbage\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # TLS hello
], ids=["binary", "no-target", "header-without-colon", "tls"])
def test_parse_request_rejects_garbage_with_400(data):
    with pytest.raises(HandshakeError) as ei:
        _core.parse_request(data)
    assert ei.value.status == 400
