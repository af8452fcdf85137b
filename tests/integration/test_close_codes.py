"""One rule for the close code at the end of a session, on every route.

An application that raises after the upgrade closes with 1011 (also a Flask
view, whose exception Flask renders as a 500); one that refuses with a 4xx
before touching the socket closes with 1008; one that returns closes with
1000.  Checked with websocket-client and websockets, as a
browser would see it, for ``Sock`` routes, plain Flask routes reading
``environ['wsgi.websocket']`` and a bare WSGI app, under every way of
deploying them (tests/integration/close_code_app.py).
"""
from __future__ import annotations

import ssl
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest
import websocket  # websocket-client
from websockets.sync.client import connect as ws_connect

from tests.conftest import free_port
from tests.deploy_support import INTEGRATION, DeployProcess, _gunicorn_argv, make_certificate

TIMEOUT = 10
APP = INTEGRATION / "close_code_app.py"

#: What the client observes for each ending (close_code_app.ENDINGS).
EXPECTED: Dict[str, int] = {
    "raise-after-receive": 1011,
    "raise-after-send": 1011,
    "raise-before": 1011,
    "refuse": 1008,
    "return": 1000,
}

#: Deployment -> whether a bare WSGI app can be served there (gevent's
#: handler upgrades for any WSGI app; elsewhere the upgrade is Flask's).
DEPLOYMENTS: Dict[str, bool] = {
    "gevent": True,
    "gevent-patched": True,
    "gevent-tls": True,
    "werkzeug": False,
    "werkzeug-tls": False,
    "gunicorn-gthread": False,
    "gunicorn-gthread-tls": False,
    "gunicorn-pyws": True,
}


def _start(kind: str, log_dir: Path, cert: Optional[Tuple[Path, Path]]) -> DeployProcess:
    tls = kind.endswith("-tls")
    base = kind[:-4] if tls else kind
    log = log_dir / f"close-codes-{kind}.log"
    tls_args = ["--tls", str(cert[0]), str(cert[1])] if tls and cert else []
    if base in ("gevent", "gevent-patched"):
        argv = [sys.executable, str(APP), "--server", "gevent", *tls_args]
        if base == "gevent-patched":
            argv.append("--patch")
        server = DeployProcess(kind, argv, log)
        server.scheme = "https" if tls else "http"
        server.start_and_read_port()
        return server
    port = free_port()
    if base == "werkzeug":
        argv = [sys.executable, str(APP), "--server", "werkzeug", "--port", str(port),
                *tls_args]
    else:
        if base == "gunicorn-gthread":
            worker = ["-k", "gthread", "--threads", "4"]
            target = "close_code_app:app"
        else:
            worker = ["-k", "pyws.gunicorn.GeventWebSocketWorker"]
            target = "close_code_app:dispatch"
        if tls and cert:
            worker += ["--certfile", str(cert[0]), "--keyfile", str(cert[1])]
        argv = _gunicorn_argv(worker, port)[:-1] + [target]
    server = DeployProcess(kind, argv, log)
    server.scheme = "https" if tls else "http"
    server.start_on_port(port)
    return server


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("close-codes-tls"))


@pytest.fixture(scope="module", params=[
    pytest.param(kind, marks=pytest.mark.tls_clients) if kind.endswith("-tls") else kind
    for kind in DEPLOYMENTS])
def server(request, certificate, tmp_path_factory):
    proc = _start(request.param, tmp_path_factory.mktemp("close-codes"), certificate)
    proc.kind = request.param
    proc.cafile = str(certificate[0])
    yield proc
    proc.stop()
    log = proc.log()
    for noise in ("Socket error", "Error on request", "Bad file descriptor",
                  "Error handling request"):
        assert noise not in log, log[-6000:]


def _families(server) -> List[str]:
    return ["sock", "flask"] + (["wsgi"] if DEPLOYMENTS[server.kind] else [])


def _observed_with_websocket_client(server, path: str, ending: str) -> int:
    sslopt = {"ca_certs": server.cafile} if server.scheme == "https" else None
    conn = websocket.create_connection(server.url(path), timeout=TIMEOUT,
                                       suppress_origin=True, sslopt=sslopt)
    try:
        if ending in ("raise-after-receive", "return"):
            conn.send("hi")
        if ending == "raise-after-send":
            assert conn.recv() == "hello"
        while True:
            opcode, data = conn.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return int.from_bytes(data[:2], "big")
    finally:
        conn.close(timeout=2)


def _observed_with_websockets(server, path: str, ending: str) -> int:
    context = None
    if server.scheme == "https":
        context = ssl.create_default_context(cafile=server.cafile)
    with ws_connect(server.url(path), open_timeout=TIMEOUT, close_timeout=TIMEOUT,
                    ssl=context) as conn:
        if ending in ("raise-after-receive", "return"):
            conn.send("hi")
        if ending == "raise-after-send":
            assert conn.recv(timeout=TIMEOUT) == "hello"
        try:
            conn.recv(timeout=TIMEOUT)
        except Exception:
            pass
    assert conn.close_code is not None
    return conn.close_code


@pytest.mark.parametrize("ending", list(EXPECTED))
def test_close_code_follows_how_the_application_ended(server, ending):
    observed = {}
    for family in _families(server):
        path = f"/{family}/{ending}"
        observed[family] = _observed_with_websocket_client(server, path, ending)
    assert observed == dict.fromkeys(observed, EXPECTED[ending]), \
        f"{server.kind}: {observed}"


@pytest.mark.parametrize("ending", ["raise-after-send", "refuse", "return"])
def test_websockets_client_sees_the_same_codes(server, ending):
    for family in _families(server):
        code = _observed_with_websockets(server, f"/{family}/{ending}", ending)
        assert code == EXPECTED[ending], (family, server.kind)
