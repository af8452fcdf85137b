"""Running examples/chat/app.py (and a Redis for it) in subprocesses, for the
chat's integration and browser tests."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from tests.conftest import ROOT, ServerProcess, _running, free_port, subprocess_env, terminate

CHAT_APP = ROOT / "examples" / "chat" / "app.py"
_SERVING = re.compile(rb"serving on http://127\.0\.0\.1:(\d+)")


def serving_port(line: bytes) -> int:
    """The port of the app's "serving on http://127.0.0.1:PORT" line."""
    match = _SERVING.fullmatch(line)
    if match is None:
        raise ValueError(line)
    return int(match.group(1))


class ChatProcess(ServerProcess):
    """examples/chat/app.py in a subprocess, with extra environment variables."""

    def __init__(self, name: str, argv: List[str], log_path: Path,
                 extra_env: Optional[Dict[str, str]] = None) -> None:
        super().__init__(name, argv, log_path)
        self.extra_env = dict(extra_env or {})

    def _popen(self, stdout) -> None:
        env = subprocess_env()
        env.update(self.extra_env)
        self.log_file = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(self.argv, cwd=str(ROOT), env=env,
                                     stdin=subprocess.DEVNULL, stdout=stdout,
                                     stderr=self.log_file)
        _running.append(self)

    def kill(self) -> None:
        """SIGKILL: the process dies without cleaning up anything."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(5)
        self.stop()


def start_chat(log_dir: Path, *args: str, port: int = 0,
               env: Optional[Dict[str, str]] = None) -> ChatProcess:
    """Start the chat app (``port`` 0: any free port) and wait for its
    "serving on" line."""
    if not CHAT_APP.exists():
        pytest.fail(f"{CHAT_APP} does not exist", pytrace=False)
    name = f"chat-{port or 'any'}-{len(list(log_dir.glob('chat-*.log')))}"
    server = ChatProcess(f"examples/chat/app.py ({name})",
                         [sys.executable, str(CHAT_APP), "--host", "127.0.0.1",
                          "--port", str(port), *args],
                         log_dir / f"{name}.log", env)
    return server.start_and_read_port(port_from_line=serving_port)  # type: ignore[return-value]


def foreign_env() -> Dict[str, str]:
    """The environment for programs that are not pyws's (redis-server,
    Chromium): without the sanitizer runtime ``make sanitize`` preloads."""
    env = dict(os.environ)
    for name in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS"):
        env.pop(name, None)
    return env


class RedisServer:
    """A throw-away redis-server on a free port, nothing persisted."""

    def __init__(self, log_dir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: apt-get install redis-server "
                        "(the chat's multi-process tests run it)", pytrace=False)
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = log_dir / f"redis-{self.port}.log"
        self.start()

    def start(self) -> None:
        """Start it (again, on the same port, empty) and wait for PONG."""
        binary = self.binary
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--logfile", str(self.log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            env=foreign_env())
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"redis-server exited with {self.proc.returncode}: "
                            f"{self.log.read_text(errors='replace')[-2000:]}", pytrace=False)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail("redis-server did not answer PING within 15 s", pytrace=False)
            time.sleep(0.05)  # polling a port that is not open yet; not a synchronisation

    def stop(self) -> None:
        terminate(self.proc)

    def kill(self) -> None:
        """SIGKILL: gone at once, with everything it held."""
        self.proc.kill()
        self.proc.wait(5)
