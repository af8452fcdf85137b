"""For the test servers run as subprocesses: tell the test the port."""
from __future__ import annotations

import os
import sys
from typing import Any


def start_and_announce(server: Any) -> None:
    """Start a gevent server and print its port on stdout, one line, which
    the test reads (tests/conftest.py, ServerProcess).  Anything printed
    later goes to stderr (the log file), so the stdout pipe, which nobody
    reads any more, can never fill up and block the server."""
    server.start()
    sys.stdout.write(f"{server.address[1]}\n")
    sys.stdout.flush()
    os.dup2(2, 1)
