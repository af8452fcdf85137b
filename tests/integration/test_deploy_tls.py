"""wss://: the deploy app over TLS, with a self-signed certificate made at
test time, under WebSocketServer(ssl_context=...), Werkzeug's server
(app.run(ssl_context=...)) and gunicorn's gthread worker (--certfile).
A client that trusts the certificate connects; one that verifies against
the system's authorities is refused."""
from __future__ import annotations

import ssl

import pytest
import websocket  # websocket-client

import pyws
from tests.deploy_support import make_certificate, start_deploy

TIMEOUT = 10


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module", params=["gevent", "werkzeug", "gunicorn-gthread"])
def server(request, certificate, tmp_path_factory):
    proc = start_deploy(request.param, tmp_path_factory.mktemp("deploy-tls"),
                        tls=certificate)
    yield proc
    proc.stop()


def trusting(certificate) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


def test_wss_with_a_trusting_client(server, certificate):
    assert server.url("/ws").startswith("wss://")
    with pyws.connect(server.url("/ws"), timeout=TIMEOUT,
                      ssl_context=trusting(certificate)) as ws:
        ws.send("over tls")
        assert ws.receive() == "over tls"
        ws.send(b"\x00" * 70000)  # several TLS records
        assert ws.receive() == b"\x00" * 70000
    assert ws.close_code == 1000
    conn = websocket.create_connection(server.url("/article"), timeout=TIMEOUT,
                                       sslopt={"ca_certs": str(certificate[0])})
    try:
        conn.send("article over tls")
        assert conn.recv() == "article over tls"
    finally:
        conn.close()


def test_default_verification_refuses_the_self_signed_certificate(server, certificate):
    with pytest.raises(ssl.SSLCertVerificationError):
        pyws.connect(server.url("/ws"), timeout=TIMEOUT)  # ssl.create_default_context()
    with pytest.raises(ssl.SSLCertVerificationError):
        websocket.create_connection(server.url("/ws"), timeout=TIMEOUT)
    # The server is unharmed by the failed handshakes.
    with pyws.connect(server.url("/room/after"), timeout=TIMEOUT,
                      ssl_context=trusting(certificate)) as ws:
        assert ws.receive() == "after"


def test_plain_ws_to_a_tls_port_fails(server):
    with pytest.raises((pyws.HandshakeError, OSError)):
        pyws.connect(server.url("/ws").replace("wss://", "ws://"), timeout=TIMEOUT)
