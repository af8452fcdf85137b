"""uvicorn in a subprocess, once per ``--ws`` implementation.

Every test that takes the ``impl`` fixture runs against uvicorn's own
WebSocket implementations (``websockets``, ``websockets-sansio``: the one
``--ws auto`` picks, ``wsproto``) and against ``pyws.uvicorn:WebSocketProtocol``:
a test that is wrong about uvicorn fails on uvicorn's own implementations.
``PYWS_ASGI_IMPLS=pyws,wsproto`` runs a subset.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

from tests.conftest import ROOT, ServerLog, _running, subprocess_env, terminate

IMPLS: Dict[str, str] = {
    "websockets": "websockets",
    "websockets-sansio": "websockets-sansio",
    "wsproto": "wsproto",
    "pyws": "pyws.uvicorn:WebSocketProtocol",
}
REFERENCE_IMPLS = ("websockets", "websockets-sansio", "wsproto")
SELECTED_IMPLS = [name.strip() for name in
                  os.environ.get("PYWS_ASGI_IMPLS", ",".join(IMPLS)).split(",") if name.strip()]

APPS = {
    "starlette": "tests.asgi.starlette_app:app",
    "fastapi": "tests.asgi.fastapi_app:app",
}

STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0
_RUNNING_ON = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+) ")


class Uvicorn(ServerLog):
    """``python -m uvicorn APP --ws IMPL ...`` on 127.0.0.1, any free port.

    A thread reads the process's output (stdout and stderr together) line by
    line into the log file and ``lines``, so a test can wait for a line (the
    app prints ``DISCONNECT {...}`` lines) and the pipe never fills."""

    _started = 0

    def __init__(self, impl: str, app: str = "starlette", http: str = "httptools",
                 options: Tuple[str, ...] = (), log_dir: Optional[Path] = None) -> None:
        self.impl = impl
        self.app = app
        self.http = http
        self.options = tuple(options)
        self.name = f"uvicorn --ws {IMPLS[impl]} --http {http} {' '.join(options)} ({app})"
        self.argv = [sys.executable, "-m", "uvicorn", APPS[app],
                     "--host", "127.0.0.1", "--port", "0",
                     "--ws", IMPLS[impl], "--http", http, "--lifespan", "on",
                     *self.options]
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{impl}-{app}-{http}-{'-'.join(options)}")
        Uvicorn._started += 1
        self.log_path = (log_dir or Path("/tmp")) / f"uvicorn-{Uvicorn._started:03d}-{slug}.log"
        self.lines: List[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self.proc: Optional[subprocess.Popen] = None
        self.port: Optional[int] = None

    # URLs.
    def url(self, path: str = "/echo") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def http_url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # Output.
    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with open(self.log_path, "w", encoding="utf-8", errors="replace") as log:
            for raw in self.proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                log.write(line + "\n")
                log.flush()
                with self._cond:
                    self.lines.append(line)
                    self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_for_line(self, pattern: str, timeout: float = 10.0,
                      start: int = 0) -> Optional[re.Match]:
        """The first match of ``pattern`` in an output line from line index
        ``start`` on, waiting up to ``timeout`` s; None if none came (or the
        process ended first)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            i = start
            while True:
                while i < len(self.lines):
                    match = regex.search(self.lines[i])
                    if match:
                        return match
                    i += 1
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def line_count(self) -> int:
        with self._cond:
            return len(self.lines)

    def wait_for_disconnect_line(self, token: str, timeout: float = 10.0) -> Optional[dict]:
        """The ``DISCONNECT`` line the app printed for ``?id=token``."""
        match = self.wait_for_line(r'^DISCONNECT (\{.*"id": "' + re.escape(token) + r'".*\})$',
                                   timeout)
        return json.loads(match.group(1)) if match else None

    # Lifetime.
    def start(self) -> Uvicorn:
        self.proc = subprocess.Popen(self.argv, cwd=str(ROOT), env=subprocess_env(),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        _running.append(self)  # type: ignore[arg-type]  # its log joins failure reports
        threading.Thread(target=self._pump, name=f"pump-{self.proc.pid}", daemon=True).start()
        match = self.wait_for_line(_RUNNING_ON.pattern, STARTUP_TIMEOUT)
        if match is None:
            self.stop()
            pytest.fail(f"{self.name}: no 'Uvicorn running on' line within "
                        f"{STARTUP_TIMEOUT:.0f}s\n--- output ---\n" + "\n".join(self.lines[-60:]),
                        pytrace=False)
        self.port = int(match.group(1))
        return self

    def send_signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> Optional[int]:
        """The exit status, or None if still running after ``timeout``."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self in _running:
            _running.remove(self)  # type: ignore[arg-type]
        if self.proc is not None:
            terminate(self.proc, grace=STOP_TIMEOUT)
            if self.proc.stdout is not None:
                self.proc.stdout.close()

    # HTTP.
    def get_json(self, path: str, timeout: float = 15.0) -> Tuple[int, dict]:
        try:
            with urllib.request.urlopen(self.http_url(path), timeout=timeout) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def recorded_disconnect(self, token: str, timeout: float = 10.0) -> dict:
        """The ``websocket.disconnect`` the app received for ``?id=token``
        (waits for it up to ``timeout`` s server-side)."""
        status, body = self.get_json(f"/disconnects/{token}?timeout={timeout}",
                                     timeout=timeout + 5)
        assert status == 200, f"{self.impl}: the app recorded no disconnect for {token}: {body}"
        return body


class UvicornPool:
    """Servers started on first use and kept for the session, one per
    (impl, app, http, options)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.servers: Dict[Tuple, Uvicorn] = {}

    def get(self, impl: str, app: str = "starlette", http: str = "httptools",
            options: Tuple[str, ...] = ()) -> Uvicorn:
        key = (impl, app, http, tuple(options))
        server = self.servers.get(key)
        if server is not None and server.proc is not None and server.proc.poll() is not None:
            # It died under an earlier test: start another for the tests to
            # come, and fail this one with the dead server's last words.
            self.servers[key] = Uvicorn(impl, app, http, options, self.log_dir).start()
            pytest.fail(f"{server.name} exited with status {server.proc.returncode} during an "
                        f"earlier test\n--- its output ---\n" + "\n".join(server.lines[-60:]),
                        pytrace=False)
        if server is None:
            server = Uvicorn(impl, app, http, options, self.log_dir).start()
            self.servers[key] = server
        return server

    def fresh(self, impl: str, app: str = "starlette", http: str = "httptools",
              options: Tuple[str, ...] = ()) -> Uvicorn:
        """A server of one's own (to be stopped by the caller or at the end)."""
        server = Uvicorn(impl, app, http, options, self.log_dir)
        self.servers[(impl, app, http, tuple(options), id(server))] = server
        return server.start()

    def stop_all(self) -> None:
        # SIGTERM them all first, so that they shut down side by side.
        for server in self.servers.values():
            if server.proc is not None and server.proc.poll() is None:
                server.proc.terminate()
        for server in self.servers.values():
            server.stop()


@pytest.fixture(scope="session")
def uvicorn_pool(tmp_path_factory) -> Iterator[UvicornPool]:
    pool = UvicornPool(tmp_path_factory.mktemp("uvicorn-logs"))
    yield pool
    pool.stop_all()


@pytest.fixture(params=SELECTED_IMPLS)
def impl(request) -> str:
    return request.param


@pytest.fixture
def server(uvicorn_pool: UvicornPool, impl: str) -> Uvicorn:
    """The Starlette app under uvicorn --ws IMPL --http httptools, defaults."""
    return uvicorn_pool.get(impl)


@pytest.fixture
def token(request) -> str:
    """A unique ``?id=`` for the disconnect record."""
    return re.sub(r"[^A-Za-z0-9]+", "-", request.node.name) + f"-{time.monotonic_ns()}"


# The Chromium test reuses tests/browser's fixtures; without a browser it is
# skipped here (tests/browser fails instead: CI must have one).
from tests.browser.conftest import CHROMEDRIVER, CHROMIUM, new_page  # noqa: E402,F401


@pytest.fixture(scope="session")
def _browser_available() -> None:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER)
               if not (os.path.isfile(path) and os.access(path, os.X_OK))]
    if missing:
        pytest.skip(f"Chromium test skipped: missing {', '.join(missing)} "
                    f"(apt-get install chromium chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("Chromium test skipped: selenium is not installed")


# The other server configurations (each started once per implementation).
SMALL_LIMIT = 1000
SMALL_LIMIT_OPTIONS = ("--ws-max-size", str(SMALL_LIMIT))
PING_INTERVAL, PING_TIMEOUT = 0.2, 0.6
PING_OPTIONS = ("--ws-ping-interval", str(PING_INTERVAL), "--ws-ping-timeout", str(PING_TIMEOUT))
ROOT_PATH = "/prefix"
ALT_HTTP = "h11"
ALT_OPTIONS = ("--root-path", ROOT_PATH, "--no-server-header", "--header", "x-extra:from-cli",
               "--ws-per-message-deflate", "false", "--ws-max-queue", "1")


@pytest.fixture
def small_limit_server(uvicorn_pool: UvicornPool, impl: str) -> Uvicorn:
    """--ws-max-size 1000."""
    return uvicorn_pool.get(impl, options=SMALL_LIMIT_OPTIONS)


@pytest.fixture
def ping_server(uvicorn_pool: UvicornPool, impl: str) -> Uvicorn:
    """--ws-ping-interval 0.2 --ws-ping-timeout 0.6."""
    return uvicorn_pool.get(impl, options=PING_OPTIONS)


@pytest.fixture
def alt_server(uvicorn_pool: UvicornPool, impl: str) -> Uvicorn:
    """--http h11, a root path, no server header, an extra default header,
    no permessage-deflate, --ws-max-queue 1."""
    return uvicorn_pool.get(impl, http=ALT_HTTP, options=ALT_OPTIONS)


@pytest.fixture
def fastapi_server(uvicorn_pool: UvicornPool, impl: str) -> Uvicorn:
    return uvicorn_pool.get(impl, app="fastapi")
