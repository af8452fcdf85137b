"""Fixtures: test servers in subprocesses (so gevent's monkey-patching never
reaches the test process) and a runner for examples/echo.py."""
from __future__ import annotations

import os
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
SERVER_SCRIPT = TESTS / "integration" / "echo_server.py"
EXAMPLE_ECHO = ROOT / "examples" / "echo.py"

STARTUP_TIMEOUT = 30.0

_running: List[ServerProcess] = []


def free_port() -> int:
    """A port that was free a moment ago (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subprocess_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def terminate(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM ``proc``; SIGKILL it if it is still there after ``grace`` s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class ServerLog:
    """A server's log file, read whole or since a mark (``log_path`` and
    ``_log_mark`` are the user's)."""

    log_path: Path
    _log_mark = 0

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def mark_log(self) -> None:
        self._log_mark = len(self.log())

    def log_since_mark(self) -> str:
        return self.log()[self._log_mark:]


class ServerProcess(ServerLog):
    """A server subprocess whose stderr goes to a log file."""

    def __init__(self, name: str, argv: List[str], log_path: Path):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.proc: Optional[subprocess.Popen] = None
        self.port: Optional[int] = None
        self._log_mark = 0

    # URLs.
    def url(self, path: str = "/ws") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def http_url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # Lifetime.
    def _popen(self, stdout) -> None:
        self.log_file = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(self.argv, cwd=str(ROOT), env=subprocess_env(),
                                     stdin=subprocess.DEVNULL, stdout=stdout,
                                     stderr=self.log_file)
        _running.append(self)

    def _fail(self, why: str) -> None:
        self.stop()
        pytest.fail(f"{self.name}: {why}\n--- server log ---\n{self.log()[-4000:]}",
                    pytrace=False)

    def start_and_read_port(self, timeout: float = STARTUP_TIMEOUT,
                            port_from_line: Callable[[bytes], int] = int) -> ServerProcess:
        """Start a server that prints its port on the first line of stdout
        (``port_from_line`` reads it from that line; ValueError if absent)."""
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
                    self._fail(f"no port printed within {timeout:.0f}s")
                if not sel.select(remaining):
                    continue
                chunk = os.read(fd, 4096)
                if not chunk:
                    self._fail(f"exited with {self.proc.wait(5)} before printing its port")
                buf += chunk
        line = buf.split(b"\n", 1)[0].strip()
        try:
            self.port = port_from_line(line)
        except ValueError:
            self._fail(f"printed {line!r} instead of its port")
        return self

    def start_on_port(self, port: int, timeout: float = STARTUP_TIMEOUT) -> ServerProcess:
        """Start a server told its port, and wait until the port accepts TCP."""
        self._popen(subprocess.DEVNULL)
        assert self.proc is not None
        self.port = port
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                self._fail(f"exited with {self.proc.returncode} before accepting connections")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
                return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self._fail(f"port {port} not accepting connections within {timeout:.0f}s")
            time.sleep(0.05)  # polling a port that is not open yet; not a synchronisation

    def stop(self) -> None:
        if self in _running:
            _running.remove(self)
        if self.proc is None:
            return
        terminate(self.proc)
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            self.proc.stdout.close()
        if not self.log_file.closed:
            self.log_file.close()


def _start_test_server(tmp_path_factory, name: str, *args: str) -> ServerProcess:
    log = tmp_path_factory.mktemp("logs") / f"{name}.log"
    server = ServerProcess(name, [sys.executable, str(SERVER_SCRIPT), *args], log)
    return server.start_and_read_port()


@pytest.fixture(scope="session")
def echo_server(tmp_path_factory):
    """gevent.pywsgi.WSGIServer with handler_class=pyws.WebSocketHandler."""
    server = _start_test_server(tmp_path_factory, "handler-echo-server",
                                "--kind", "handler", "--app", "wsgi")
    yield server
    server.stop()


SMALL_MAX = 1024
SERVER_SUBPROTOCOLS = ["superchat", "chat"]


@pytest.fixture(scope="session")
def small_server(tmp_path_factory):
    """pyws.WebSocketServer with max_message_size=SMALL_MAX and subprotocols."""
    server = _start_test_server(tmp_path_factory, "small-max-server",
                                "--kind", "server", "--app", "wsgi",
                                "--max-message-size", str(SMALL_MAX),
                                "--subprotocols", ",".join(SERVER_SUBPROTOCOLS))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def flask_server(tmp_path_factory):
    """A Flask app under WSGIServer + pyws.WebSocketHandler."""
    server = _start_test_server(tmp_path_factory, "flask-server",
                                "--kind", "handler", "--app", "flask")
    yield server
    server.stop()


@pytest.fixture
def run_example(tmp_path):
    """Start examples/echo.py on a free port; returns the ServerProcess."""
    started: List[ServerProcess] = []

    def run(*extra: str) -> ServerProcess:
        if not EXAMPLE_ECHO.exists():
            pytest.fail(f"{EXAMPLE_ECHO} does not exist", pytrace=False)
        port = free_port()
        server = ServerProcess("examples/echo.py",
                               [sys.executable, str(EXAMPLE_ECHO), "--host", "127.0.0.1",
                                "--port", str(port), *extra],
                               tmp_path / f"example-{port}.log")
        started.append(server)
        return server.start_on_port(port)

    yield run
    for server in started:
        server.stop()


@pytest.fixture(autouse=True)
def _mark_server_logs():
    for server in list(_running):
        server.mark_log()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _running:
        for server in _running:
            text = server.log_since_mark()
            if text.strip():
                rep.sections.append((f"log of {server.name} during this test", text[-6000:]))
