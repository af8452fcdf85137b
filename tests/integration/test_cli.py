"""``python -m pyws``: its help, ``serve`` (the echo demo, a busy port) and
``connect`` (lines in, messages out, the close code on exit)."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT, ServerProcess, free_port, subprocess_env


def run_cli(*args: str, stdin: str = "", timeout: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pyws", *args], input=stdin, text=True,
                          capture_output=True, timeout=timeout, cwd=str(ROOT),
                          env=subprocess_env())


def test_help_names_both_commands():
    done = run_cli("--help")
    assert done.returncode == 0
    assert "serve" in done.stdout and "connect" in done.stdout
    assert "--binary" in run_cli("connect", "--help").stdout


def test_serve_runs_the_echo_demo_and_connect_talks_to_it(tmp_path):
    port = free_port()
    server = ServerProcess("pyws serve", [sys.executable, "-m", "pyws", "serve",
                                          "--port", str(port)], tmp_path / "serve.log")
    server.start_on_port(port)
    try:
        done = run_cli("connect", f"ws://127.0.0.1:{port}/ws", stdin="hello\nwörld\n")
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == ["< hello", "< wörld"]
        assert done.stderr.strip().splitlines()[-1] == "closed: 1000"
        done = run_cli("connect", "--binary", f"ws://127.0.0.1:{port}/ws", stdin="AB\n")
        assert done.stdout.splitlines() == ["< (2 bytes) 4142"]
        # The same port again: one line saying so, not a traceback.
        busy = run_cli("serve", "--port", str(port))
        assert busy.returncode == 1
        assert busy.stderr.strip() == (f"port {port} on 127.0.0.1 is in use: stop the "
                                       "other server or choose another port with --port")
    finally:
        server.stop()


def test_connect_to_nothing_is_one_line_and_status_1():
    done = run_cli("connect", f"ws://127.0.0.1:{free_port()}/ws", "--timeout", "5")
    assert done.returncode == 1
    assert done.stderr.startswith("pyws connect: ") and "Traceback" not in done.stderr
