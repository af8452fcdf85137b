"""Starting tests/compat/fs_app.py (a flask-sock program) against a peer,
under each server flask-sock documents, for tests/compat/test_flask_sock.py."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from tests.conftest import ROOT, ServerLog, _running, subprocess_env, terminate

APP = ROOT / "tests" / "compat" / "fs_app.py"
COMPAT = ROOT / "tests" / "compat"
PEERS = ["pyws", "flask-sock"]
SERVERS = ["werkzeug", "gevent-patched", "gevent-unpatched", "gunicorn-gthread",
           "gunicorn-gevent"]
STARTUP_TIMEOUT = 30.0
EVENT_TIMEOUT = 10.0

# How each server says which port it bound (all bind port 0).
_PORT_LINES = [re.compile(rb"^PORT (\d+)$", re.MULTILINE),                      # fs_app.py, gevent
               re.compile(rb"Running on http://127\.0\.0\.1:(\d+)"),      # Werkzeug
               re.compile(rb"Listening at: http://127\.0\.0\.1:(\d+)")]   # gunicorn


class FsServer(ServerLog):
    """fs_app.py under one server, its stdout and stderr in one log file."""

    def __init__(self, peer: str, kind: str, log_path: Path,
                 options: Optional[Dict[str, Any]] = None) -> None:
        self.peer = peer
        self.kind = kind
        self.name = f"fs_app[{peer}, {kind}]"
        self.log_path = log_path
        self.options = options
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.port = 0
        self._log_mark = 0

    def argv(self) -> List[str]:
        if self.kind.startswith("gunicorn"):
            worker = (["-k", "gthread", "--threads", "8"] if self.kind == "gunicorn-gthread"
                      else ["-k", "gevent"])
            return [sys.executable, "-m", "gunicorn", "-w", "1", *worker,
                    "-b", "127.0.0.1:0", "--chdir", str(COMPAT), "--graceful-timeout", "2",
                    "--access-logfile", "-", *_no_control_socket(), "fs_app:app"]
        return [sys.executable, str(APP), self.kind]

    def start(self) -> FsServer:
        env = subprocess_env()
        env["FS_PEER"] = self.peer
        if self.options is not None:
            env["FS_OPTIONS"] = json.dumps(self.options)
        self.log_file = open(self.log_path, "wb")  # noqa: SIM115 (the server's lifetime)
        self.proc = subprocess.Popen(self.argv(), cwd=str(ROOT), env=env,
                                     stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=subprocess.STDOUT)
        _running.append(self)  # type: ignore[arg-type]  # conftest's log sections
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self.port:
            if self.proc.poll() is not None:
                self._fail(f"exited with {self.proc.returncode} before listening")
            if time.monotonic() > deadline:
                self._fail(f"no port announced within {STARTUP_TIMEOUT:.0f}s")
            data = self.log_path.read_bytes()
            for pattern in _PORT_LINES:
                found = pattern.search(data)
                if found:
                    self.port = int(found.group(1))
                    break
            else:
                time.sleep(0.02)  # polling a log not written yet; not a synchronisation
        return self

    def _fail(self, why: str) -> None:
        self.stop()
        pytest.fail(f"{self.name}: {why}\n--- log ---\n{self.log()[-4000:]}", pytrace=False)

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def http_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


    def wait_event(self, pattern: str, timeout: float = EVENT_TIMEOUT) -> re.Match[str]:
        """The first ``EVENT`` line matching ``pattern`` (a regex), waiting
        up to ``timeout`` seconds for the program to print it."""
        regex = re.compile(r"^EVENT (" + pattern + r")$", re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            found = regex.search(self.log())
            if found:
                return found
            if time.monotonic() > deadline:
                pytest.fail(f"{self.name}: no event matching {pattern!r} within "
                            f"{timeout:.0f}s\n--- log ---\n{self.log()[-3000:]}",
                            pytrace=False)
            time.sleep(0.02)  # the event is a line in a file: poll it, bounded

    def stop(self) -> None:
        if self in _running:  # type: ignore[comparison-overlap]
            _running.remove(self)  # type: ignore[arg-type]
        if self.proc is not None:
            terminate(self.proc)
        if not self.log_file.closed:
            self.log_file.close()


def _no_control_socket() -> List[str]:
    """gunicorn >= 24 opens one control socket per process tree: not for tests."""
    from gunicorn.config import Config

    return ["--no-control-socket"] if "control_socket_disable" in Config().settings else []
