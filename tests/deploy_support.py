"""Starting tests/integration/deploy_app.py under each server pyws supports,
for tests/integration/test_deploy_*.py; a self-signed certificate for TLS."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

from tests.conftest import ROOT, ServerProcess, _running, free_port, subprocess_env

DEPLOY_APP = ROOT / "tests" / "integration" / "deploy_app.py"
INTEGRATION = ROOT / "tests" / "integration"

#: The servers the deploy app runs under.
SERVERS = ["gevent", "werkzeug", "gunicorn-pyws", "gunicorn-gthread"]
#: PYWS_MAX_MESSAGE_SIZE given to the pyws gunicorn worker (environment).
GUNICORN_ENV_MAX = 4096


class DeployProcess(ServerProcess):
    """A server subprocess with extra environment variables."""

    def __init__(self, name: str, argv: List[str], log_path: Path,
                 extra_env: Optional[Dict[str, str]] = None) -> None:
        super().__init__(name, argv, log_path)
        self.extra_env = dict(extra_env or {})
        self.scheme = "http"

    def _popen(self, stdout) -> None:  # type: ignore[no-untyped-def]
        env = subprocess_env()
        env.update(self.extra_env)
        self.log_file = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        if stdout == subprocess.DEVNULL:
            stdout = self.log_file  # gunicorn's access log ("-"), Werkzeug's banner
        self.proc = subprocess.Popen(self.argv, cwd=str(ROOT), env=env,
                                     stdin=subprocess.DEVNULL, stdout=stdout,
                                     stderr=self.log_file)
        _running.append(self)

    def url(self, path: str = "/ws") -> str:
        scheme = "wss" if self.scheme == "https" else "ws"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def http_url(self, path: str = "/") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"


def _gunicorn_argv(worker: List[str], port: int) -> List[str]:
    argv = [sys.executable, "-m", "gunicorn", "-w", "1", *worker,
            "-b", f"127.0.0.1:{port}", "--chdir", str(INTEGRATION),
            "--graceful-timeout", "2", "--access-logfile", "-"]
    if _has_gunicorn_setting("control_socket_disable"):
        argv.append("--no-control-socket")  # gunicorn >= 24: one per process tree
    return argv + ["deploy_app:app"]


def _has_gunicorn_setting(name: str) -> bool:
    from gunicorn.config import Config

    return name in Config().settings


def start_deploy(kind: str, log_dir: Path,
                 tls: Optional[Tuple[Path, Path]] = None) -> DeployProcess:
    """The deploy app under ``kind`` (one of SERVERS, or "gevent-options":
    WebSocketServer with handshake options); ``tls``: (cert, key)."""
    name = f"deploy-{kind}{'-tls' if tls else ''}"
    log = log_dir / f"{name}.log"
    tls_args = ["--tls", str(tls[0]), str(tls[1])] if tls else []
    if kind in ("gevent", "gevent-options"):
        server = DeployProcess(name, [sys.executable, str(DEPLOY_APP), "--server", kind,
                                      *tls_args], log)
        if tls:
            server.scheme = "https"
        server.start_and_read_port()
        return server
    port = free_port()
    if kind == "werkzeug":
        argv = [sys.executable, str(DEPLOY_APP), "--server", "werkzeug",
                "--port", str(port), *tls_args]
        server = DeployProcess(name, argv, log)
    elif kind in ("gunicorn-pyws", "gunicorn-gthread"):
        try:
            import gunicorn  # noqa: F401
        except ImportError:
            pytest.fail("gunicorn is not installed: pip install -e '.[test]'", pytrace=False)
        if kind == "gunicorn-pyws":
            worker = ["-k", "pyws.gunicorn.GeventWebSocketWorker"]
        else:
            worker = ["-k", "gthread", "--threads", "8"]
        if tls:
            worker += ["--certfile", str(tls[0]), "--keyfile", str(tls[1])]
        server = DeployProcess(name, _gunicorn_argv(worker, port), log,
                               {"PYWS_MAX_MESSAGE_SIZE": str(GUNICORN_ENV_MAX)})
    else:
        raise ValueError(kind)
    if tls:
        server.scheme = "https"
    server.start_on_port(port)
    return server


def make_certificate(directory: Path) -> Tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, made now
    (openssl; no network).  Returns (cert, key) paths."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the TLS tests need the openssl command (apt-get install openssl)",
                    pytrace=False)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-subj", "/CN=localhost", "-days", "1",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key
