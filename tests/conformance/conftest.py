"""Servers for the conformance suite: examples/echo.py in subprocesses.

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

from tests.conftest import EXAMPLE_ECHO, ServerProcess
from tests.conformance.rawclient import Client

BIG_MAX = 16 << 20  # section 9.1.6 / 9.2.6 send 16 MiB
DEFAULT_MAX = 1 << 20  # echo.py's default --max-message-size

_BANNER = re.compile(rb"serving on http://(?P<host>[^\s]+):(?P<port>\d+)")


def _port_from_banner(line: bytes) -> int:
    """The port in examples/echo.py's "serving on http://HOST:PORT" line."""
    match = _BANNER.search(line)
    if match is None:
        raise ValueError(line)
    return int(match.group("port"))


def _start(tmp_path_factory, name: str, *args: str) -> ServerProcess:
    log: Path = tmp_path_factory.mktemp("conformance-logs") / f"{name}.log"
    server = ServerProcess(name, [sys.executable, str(EXAMPLE_ECHO), "--host", "127.0.0.1",
                                  "--port", "0", *args], log)
    return server.start_and_read_port(port_from_line=_port_from_banner)


@pytest.fixture(scope="session")
def echo(tmp_path_factory) -> Iterator[ServerProcess]:
    """examples/echo.py with --max-message-size BIG_MAX."""
    if not EXAMPLE_ECHO.exists():
        pytest.fail(f"{EXAMPLE_ECHO} does not exist", pytrace=False)
    server = _start(tmp_path_factory, "echo.py-16MiB", "--max-message-size", str(BIG_MAX))
    yield server
    server.stop()  # SIGTERM, then SIGKILL after 5 s


@pytest.fixture(scope="session")
def echo_default_limit(tmp_path_factory) -> Iterator[ServerProcess]:
    """examples/echo.py with its default limit (DEFAULT_MAX)."""
    server = _start(tmp_path_factory, "echo.py-default")
    yield server
    server.stop()


@pytest.fixture
def ws(echo) -> Iterator[Client]:
    """A raw client past the opening handshake with ``echo``."""
    with Client(echo.port) as c:
        c.handshake("/ws")
        yield c


@pytest.fixture
def conn(echo) -> Iterator[Client]:
    """A raw client connected to ``echo``, before any handshake."""
    with Client(echo.port) as c:
        yield c
