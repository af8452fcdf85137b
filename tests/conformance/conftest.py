"""Servers for the conformance suite: examples/echo.py in subprocesses.

``echo`` allows messages up to BIG_MAX bytes (section 9 sends up to 16 MiB);
``echo_default_limit`` runs with echo.py's default limit (1 MiB), for the
checks that a message over the limit fails the connection with 1009.
Both listen on a port the kernel picks (``--port 0``); the port is read from
the ``serving on http://HOST:PORT`` line echo.py prints once it listens.
"""
from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import EXAMPLE_ECHO, STARTUP_TIMEOUT, ServerProcess
from tests.conformance.rawclient import Client

BIG_MAX = 16 << 20  # section 9.1.6 / 9.2.6 send 16 MiB
DEFAULT_MAX = 1 << 20  # echo.py's default --max-message-size

_BANNER = re.compile(rb"serving on http://(?P<host>[^\s]+):(?P<port>\d+)")


class EchoExample(ServerProcess):
    """examples/echo.py, its port taken from the banner it prints."""

    def start_from_banner(self, timeout: float = STARTUP_TIMEOUT) -> "EchoExample":
        self._popen(subprocess.PIPE)
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in buf:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._fail(f"no 'serving on' line within {timeout:.0f}s")
                if not sel.select(remaining):
                    continue
                chunk = os.read(fd, 4096)
                if not chunk:
                    self._fail(f"exited with {self.proc.wait(5)} before listening")
                buf += chunk
        match = _BANNER.search(buf)
        if match is None:
            self._fail(f"printed {buf!r} instead of 'serving on http://HOST:PORT'")
        self.port = int(match.group("port"))
        return self


def _start(tmp_path_factory, name: str, *args: str) -> EchoExample:
    log: Path = tmp_path_factory.mktemp("conformance-logs") / f"{name}.log"
    server = EchoExample(name, [sys.executable, str(EXAMPLE_ECHO), "--host", "127.0.0.1",
                                "--port", "0", *args], log)
    return server.start_from_banner()


@pytest.fixture(scope="session")
def echo(tmp_path_factory) -> Iterator[EchoExample]:
    """examples/echo.py with --max-message-size BIG_MAX."""
    if not EXAMPLE_ECHO.exists():
        pytest.fail(f"{EXAMPLE_ECHO} does not exist", pytrace=False)
    server = _start(tmp_path_factory, "echo.py-16MiB", "--max-message-size", str(BIG_MAX))
    yield server
    server.stop()  # SIGTERM, then SIGKILL after 5 s


@pytest.fixture(scope="session")
def echo_default_limit(tmp_path_factory) -> Iterator[EchoExample]:
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
