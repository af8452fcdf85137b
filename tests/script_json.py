"""Run a test file as a script in a fresh interpreter and read the JSON it
prints: how the gevent cases of a test module run without the test process
ever importing gevent (whose monkey-patching and hub would leak into the
other tests)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def script_json(path: str, timeout: float, *args: str) -> Any:
    """``python path *args`` with the repository on PYTHONPATH; its stdout as
    JSON.  Fails the test with the script's stderr if it does not exit with 0."""
    proc = subprocess.run([sys.executable, os.path.abspath(path), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(
                              filter(None, [ROOT, os.environ.get("PYTHONPATH")]))})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
