"""Section 0 (pyws's own) -- the opening handshake, RFC 6455 4.2.

0.1.x  valid requests are upgraded: header names in any case, token lists
       and repeated list-valued headers (Connection, Upgrade).
0.2.x  invalid upgrade requests get the C core's rejection: 400 (or 405
       with ``Allow: GET``, or 426 with ``Sec-WebSocket-Version: 13``), a
       body naming the reason, ``Connection: close``, and the end of the TCP
       connection; the server keeps serving afterwards.  A request without
       ``Upgrade: websocket`` is not a WebSocket request at all: it reaches
       the application, whose /ws view answers 400 itself (0.2.4, 0.2.5).
       A request with a body (Content-Length other than 0, Transfer-Encoding)
       gets 400 before any 101 (0.2.20-0.2.22).
0.3.x  a second request on a connection whose first was rejected is not
       answered, the connection ends, and a new connection works.
"""
from __future__ import annotations

import base64
from typing import List, Optional, Sequence, Tuple

from tests.conformance.checks import OP_TEXT, close_normally, expect_text
from tests.conformance.rawclient import Client, ServerClosed, frame
from tests.wire import accept_for

KEY = base64.b64encode(b"pyws conformance").decode("ascii")  # 16 bytes
assert len(base64.b64decode(KEY)) == 16

Header = Tuple[str, str]


def headers_for(server, **replace: Optional[str]) -> List[Header]:
    """The five required headers; ``replace`` maps a header name (with _ for
    -) to a new value, or None to drop it."""
    base = [("Host", f"127.0.0.1:{server.port}"), ("Upgrade", "websocket"),
            ("Connection", "Upgrade"), ("Sec-WebSocket-Key", KEY),
            ("Sec-WebSocket-Version", "13")]
    out = []
    for name, value in base:
        key = name.replace("-", "_")
        if key in replace:
            if replace[key] is None:
                continue
            value = replace[key]
        out.append((name, value))
    return out


def request(headers: Sequence[Header], method: str = "GET", version: str = "HTTP/1.1",
            path: str = "/ws") -> bytes:
    lines = [f"{method} {path} {version}"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def check_still_serving(server) -> None:
    """A fresh connection upgrades and echoes."""
    with Client.to(server) as c:
        c.handshake()
        c.send(frame(OP_TEXT, b"still serving"))
        expect_text(c, b"still serving")
        close_normally(c)


def expect_upgrade(server, headers: Sequence[Header], key: str = KEY,
                   version: str = "HTTP/1.1") -> None:
    """101 with the right accept value, then a working echo."""
    with Client.to(server) as c:
        c.send(request(headers, version=version))
        resp = c.read_http_response()
        assert resp.status == 101, (resp.status, resp.reason, resp.body)
        assert resp.header("Upgrade").lower() == "websocket", resp.headers
        assert "upgrade" in [t.strip().lower() for t in resp.header("Connection").split(",")]
        assert resp.header("Sec-WebSocket-Accept") == accept_for(key)
        assert resp.header("Sec-WebSocket-Extensions") is None, resp.headers
        assert resp.header("Sec-WebSocket-Protocol") is None, resp.headers
        c.send(frame(OP_TEXT, b"upgraded"))
        expect_text(c, b"upgraded")
        close_normally(c)


def expect_rejection(server, data: bytes, status: int, names: str,
                     extra: Optional[Header] = None) -> None:
    """The C core's rejection: ``status``, a body naming ``names``
    (case-insensitive), ``Connection: close``, then EOF; the server still
    serves others afterwards."""
    with Client.to(server) as c:
        c.send(data)
        resp = c.read_http_response()
        assert resp.status == status, (resp.status, resp.reason, resp.body)
        assert resp.header("Sec-WebSocket-Accept") is None, resp.headers
        assert names.lower() in resp.body.decode("utf-8", "replace").lower(), resp.body
        assert (resp.header("Connection") or "").lower() == "close", resp.headers
        if extra is not None:
            assert resp.header(extra[0]) == extra[1], resp.headers
        assert c.expect_eof() == b"", "bytes after the rejection"
    check_still_serving(server)


# -- 0.1: accepted ------------------------------------------------------------

def test_case_0_1_1_valid_request_is_upgraded(echo):
    expect_upgrade(echo, headers_for(echo))


def test_case_0_1_2_header_names_and_values_in_upper_case_are_accepted(echo):
    """Field names are case-insensitive, and so are the tokens 'websocket'
    and 'upgrade' (the key and version values are not touched)."""
    hs = [(k.upper(), v.upper() if k in ("Upgrade", "Connection") else v)
          for k, v in headers_for(echo)]
    expect_upgrade(echo, hs)


def test_case_0_1_3_header_names_in_lower_case_and_mixed_case_tokens(echo):
    hs = [(k.lower(), {"Upgrade": "WebSocket", "Connection": "uPgRaDe"}.get(k, v))
          for k, v in headers_for(echo)]
    expect_upgrade(echo, hs)


def test_case_0_1_4_connection_token_list_keep_alive_upgrade(echo):
    expect_upgrade(echo, headers_for(echo, Connection="keep-alive, Upgrade"))


def test_case_0_1_5_upgrade_token_list_websocket_foo(echo, transport):
    headers = headers_for(echo, Upgrade="websocket, foo")
    if transport == "uvicorn":
        # uvicorn upgrades only when Upgrade is exactly "websocket"; a token
        # list goes to the application's HTTP side before pyws sees it.
        _plain_http_answer(echo, headers)
        return
    expect_upgrade(echo, headers)


def test_case_0_1_6_repeated_connection_header_keep_alive_then_upgrade(echo):
    expect_upgrade(echo, headers_for(echo, Connection="keep-alive") + [("Connection", "Upgrade")])


def test_case_0_1_7_repeated_upgrade_header_foo_then_websocket(echo):
    expect_upgrade(echo, headers_for(echo, Upgrade="foo") + [("Upgrade", "websocket")])


def test_case_0_1_8_frames_in_the_same_write_as_the_request_are_processed(echo, transport):
    if transport == "uvicorn":
        # uvicorn's HTTP protocols (httptools and h11) drop what follows the
        # request head in the same read when they hand the connection to any
        # --ws implementation, before pyws sees a byte (browsers wait for the
        # 101).  The connection must work from the next frame on; if uvicorn
        # ever passes those bytes, "early bird" comes first and this fails.
        with Client.to(echo) as c:
            c.handshake(then=frame(OP_TEXT, b"early bird"))
            c.send(frame(OP_TEXT, b"after the 101"))
            expect_text(c, b"after the 101")
            close_normally(c)
        return
    with Client.to(echo) as c:
        c.handshake(then=frame(OP_TEXT, b"early bird"))
        expect_text(c, b"early bird")
        close_normally(c)


# -- 0.2: rejected ------------------------------------------------------------

def test_case_0_2_1_missing_host_gets_400(echo):
    expect_rejection(echo, request(headers_for(echo, Host=None)), 400, "Host")


def test_case_0_2_2_empty_host_gets_400(echo):
    expect_rejection(echo, request(headers_for(echo, Host="")), 400, "Host")


def test_case_0_2_3_two_host_headers_get_400(echo):
    """RFC 7230 5.4: more than one Host field is a 400; pyws's C core checks
    that Host occurs exactly once."""
    expect_rejection(echo, request(headers_for(echo) + [("Host", "example.com")]), 400, "Host")


def _plain_http_answer(server, headers) -> None:
    """Not a WebSocket request: no 101; the application answers (its /ws
    view says 400 'expected a WebSocket request').  Plain HTTP, so the
    connection may stay open for another request: not checked."""
    with Client.to(server) as c:
        c.send(request(headers))
        resp = c.read_http_response()
        assert resp.status == 400, (resp.status, resp.body)
        assert resp.header("Sec-WebSocket-Accept") is None, resp.headers
        assert b"websocket" in resp.body.lower(), resp.body
    check_still_serving(server)


def test_case_0_2_4_upgrade_without_websocket_is_not_upgraded(echo):
    _plain_http_answer(echo, headers_for(echo, Upgrade="h2c"))


def test_case_0_2_5_missing_upgrade_is_not_upgraded(echo):
    _plain_http_answer(echo, headers_for(echo, Upgrade=None))


def _refused_or_routed_by_uvicorn(server, transport: str, headers, status: int,
                                  names: str) -> None:
    """pyws refuses the request; under uvicorn, whose HTTP parser decides
    what is an upgrade before pyws sees anything, the request goes to the
    application's HTTP side instead, which answers as a plain request."""
    if transport == "uvicorn":
        _plain_http_answer(server, headers)
    else:
        expect_rejection(server, request(headers), status, names)


def test_case_0_2_6_connection_without_upgrade_gets_400(echo, transport):
    _refused_or_routed_by_uvicorn(echo, transport, headers_for(echo, Connection="keep-alive"),
                                  400, "Connection")


def test_case_0_2_7_missing_connection_gets_400(echo, transport):
    _refused_or_routed_by_uvicorn(echo, transport, headers_for(echo, Connection=None),
                                  400, "Connection")


def test_case_0_2_8_missing_key_gets_400(echo):
    expect_rejection(echo, request(headers_for(echo, Sec_WebSocket_Key=None)), 400,
                     "Sec-WebSocket-Key")


def test_case_0_2_9_key_not_base64_gets_400(echo):
    expect_rejection(echo, request(headers_for(echo, Sec_WebSocket_Key="not-a-base64-key!")),
                     400, "Sec-WebSocket-Key")


def test_case_0_2_10_key_of_15_bytes_gets_400(echo):
    key = base64.b64encode(b"k" * 15).decode()
    expect_rejection(echo, request(headers_for(echo, Sec_WebSocket_Key=key)), 400,
                     "Sec-WebSocket-Key")


def test_case_0_2_11_key_of_17_bytes_gets_400(echo):
    key = base64.b64encode(b"k" * 17).decode()
    expect_rejection(echo, request(headers_for(echo, Sec_WebSocket_Key=key)), 400,
                     "Sec-WebSocket-Key")


def test_case_0_2_12_two_key_headers_get_400(echo):
    expect_rejection(echo, request(headers_for(echo) + [("Sec-WebSocket-Key", KEY)]), 400,
                     "Sec-WebSocket-Key")


def _version(name, number, value):
    def test(echo):
        expect_rejection(echo, request(headers_for(echo, Sec_WebSocket_Version=value)), 426,
                         "Sec-WebSocket-Version", extra=("Sec-WebSocket-Version", "13"))

    test.__name__ = name
    what = f"version {value}" if value is not None else "no version header"
    test.__doc__ = f"{number}: {what} gets 426 with Sec-WebSocket-Version: 13."
    return test


for _i, _v in enumerate(["0", "8", "12", "14", None], 13):
    _t = _version(f"test_case_0_2_{_i}_"
                  + (f"version_{_v}" if _v is not None else "missing_version")
                  + "_gets_426", f"0.2.{_i}", _v)
    globals()[_t.__name__] = _t
del _t


def test_case_0_2_18_http_1_0_gets_400(echo, transport):
    if transport == "uvicorn":
        # uvicorn writes the request line it hands to any --ws implementation
        # as "HTTP/1.1" whatever the client sent, so no implementation can
        # refuse HTTP/1.0 there; the request is upgraded.  If uvicorn ever
        # passes the version on, this fails and the rejection applies.
        expect_upgrade(echo, headers_for(echo), version="HTTP/1.0")
        return
    expect_rejection(echo, request(headers_for(echo), version="HTTP/1.0"), 400, "HTTP/1.1")


def test_case_0_2_19_post_gets_405_allowing_get(echo):
    expect_rejection(echo, request(headers_for(echo) + [("Content-Length", "0")],
                                   method="POST"), 405, "GET", extra=("Allow", "GET"))


def test_case_0_2_20_a_body_with_content_length_gets_400(echo):
    """An upgrade has no body: one announced by Content-Length (here a
    valid frame, which must not be taken as the first message) is refused
    before any 101."""
    body = frame(OP_TEXT, b"smuggled")
    data = request(headers_for(echo) + [("Content-Length", str(len(body)))]) + body
    expect_rejection(echo, data, 400, "body")


def test_case_0_2_21_a_chunked_body_gets_400(echo):
    body = frame(OP_TEXT, b"smuggled")
    data = (request(headers_for(echo) + [("Transfer-Encoding", "chunked")])
            + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
    expect_rejection(echo, data, 400, "body")


def test_case_0_2_22_content_length_0_is_no_body_and_is_upgraded(echo):
    expect_upgrade(echo, headers_for(echo) + [("Content-Length", "0")])


# -- 0.3: the connection after a rejection -------------------------------------

def test_case_0_3_1_request_pipelined_after_a_rejected_one_is_not_answered(echo):
    """A bad request and a good one in the same write: the bad one is
    answered (400), the good one is not, and the server ends the connection
    instead of waiting."""
    bad = request(headers_for(echo, Sec_WebSocket_Key=None))
    good = request(headers_for(echo))
    with Client.to(echo) as c:
        c.send(bad + good)
        resp = c.read_http_response()
        assert resp.status == 400, (resp.status, resp.body)
        rest = c.expect_eof()
        assert b"HTTP/1.1 101" not in rest, rest[:200]
        assert rest == b"", f"a second response after the rejection: {rest[:200]!r}"
    check_still_serving(echo)


def test_case_0_3_2_request_written_after_a_rejection_gets_nothing(echo):
    """After reading the 400, a good request on the same connection: either
    the write fails or it is never answered, and the connection ends within
    the timeout."""
    with Client.to(echo) as c:
        c.send(request(headers_for(echo, Sec_WebSocket_Version="8")))
        resp = c.read_http_response()
        assert resp.status == 426, (resp.status, resp.body)
        c.try_send(request(headers_for(echo)))
        try:
            rest = c.expect_eof()
        except ServerClosed:
            rest = b""
        assert rest == b"", f"the server answered on a rejected connection: {rest[:200]!r}"
    check_still_serving(echo)
