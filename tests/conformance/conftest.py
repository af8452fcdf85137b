"""Servers for the conformance suite: an echo server in subprocesses, over
every transport (see tests/conformance/echo_over.py): the whole suite runs
once per transport, and every case must give the same result on each.

``echo`` allows messages up to BIG_MAX bytes (section 9 sends up to 16 MiB);
``echo_default_limit`` runs with echo.py's default limit (1 MiB), for the
checks that a message over the limit fails the connection with 1009.
Both listen on a port the kernel picks (``--port 0``); the port is read from
the ``serving on http://HOST:PORT`` line echo.py prints once it listens.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.conformance.rawclient import Client
from tests.conftest import EXAMPLE_ECHO, ServerProcess

ECHO_OVER = Path(__file__).with_name("echo_over.py")

BIG_MAX = 16 << 20  # section 9.1.6 / 9.2.6 send 16 MiB
DEFAULT_MAX = 1 << 20  # echo.py's default --max-message-size

_BANNER = re.compile(rb"serving on http://(?P<host>[^\s]+):(?P<port>\d+)")


def _port_from_banner(line: bytes) -> int:
    """The port in examples/echo.py's "serving on http://HOST:PORT" line."""
    match = _BANNER.search(line)
    if match is None:
        raise ValueError(line)
    return int(match.group("port"))


#: How the server's sockets are driven: examples/echo.py as it is (gevent),
#: the same after monkey.patch_all(), Werkzeug's threads, gevent's TLS,
#: pyws.asyncio.serve, and uvicorn with pyws's WebSocket protocol.
TRANSPORTS = ["gevent", "gevent-patched", "threads", "tls", "asyncio", "uvicorn"]


@pytest.fixture(scope="session", params=TRANSPORTS)
def transport(request, tmp_path_factory) -> str:
    """The transport of this run of the suite (every test runs once per
    transport; the servers below follow it)."""
    return request.param


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    from tests.deploy_support import make_certificate

    return make_certificate(tmp_path_factory.mktemp("conformance-tls"))


def _start(request, tmp_path_factory, transport: str, name: str,
           max_size: int) -> ServerProcess:
    log: Path = tmp_path_factory.mktemp("conformance-logs") / f"{name}-{transport}.log"
    if transport == "gevent":
        argv = [sys.executable, str(EXAMPLE_ECHO), "--host", "127.0.0.1", "--port", "0",
                "--max-message-size", str(max_size)]
    else:
        argv = [sys.executable, str(ECHO_OVER), transport, "--max-message-size", str(max_size)]
        if transport == "tls":
            cert, key = request.getfixturevalue("tls_files")
            argv += ["--certfile", str(cert), "--keyfile", str(key)]
    server = ServerProcess(f"{name} ({transport})", argv, log)
    server.tls = transport == "tls"  # type: ignore[attr-defined]  # read by Client.to
    return server.start_and_read_port(port_from_line=_port_from_banner)


@pytest.fixture(scope="session")
def echo(request, tmp_path_factory, transport: str) -> Iterator[ServerProcess]:
    """The echo server with messages up to BIG_MAX."""
    if not EXAMPLE_ECHO.exists():
        pytest.fail(f"{EXAMPLE_ECHO} does not exist", pytrace=False)
    server = _start(request, tmp_path_factory, transport, "echo-16MiB", BIG_MAX)
    yield server
    server.stop()  # SIGTERM, then SIGKILL after 5 s


@pytest.fixture(scope="session")
def echo_default_limit(request, tmp_path_factory, transport: str) -> Iterator[ServerProcess]:
    """The echo server with the default limit (DEFAULT_MAX)."""
    server = _start(request, tmp_path_factory, transport, "echo-default", DEFAULT_MAX)
    yield server
    server.stop()


@pytest.fixture
def ws(echo) -> Iterator[Client]:
    """A raw client past the opening handshake with ``echo``."""
    with Client.to(echo) as c:
        c.handshake("/ws")
        yield c


@pytest.fixture
def conn(echo) -> Iterator[Client]:
    """A raw client connected to ``echo``, before any handshake."""
    with Client.to(echo) as c:
        yield c
