"""What every benchmark server shares: its command line and its file limit.

Each server in this folder is a plain program: ``python3 NAME.py --port P``
serves WebSocket echo (or a broadcast room) on 127.0.0.1:P until killed.
The suite (``bench/run.py``) starts and stops them; they can also be run by
hand and driven with ``bench/build/loadgen``.  ``patched.py`` runs one of
them under gevent's monkey-patching; the modules that gunicorn serves
(``wsgi_echo.py``, ``pywsflask_echo.py``) are given to it as ``module:app``.
"""
from __future__ import annotations

import argparse
import resource
from typing import Callable, Optional

#: Large enough for the 1 MiB scenario, with room to spare.
DEFAULT_MAX_SIZE = 16 << 20


def parse_args(description: str,
               add_options: Optional[Callable[[argparse.ArgumentParser], None]] = None
               ) -> argparse.Namespace:
    """The options every server takes; ``add_options`` adds a script's own
    (the suite passes them from ``Server.options``: ``--ws``, ``--loop``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-size", type=int, default=DEFAULT_MAX_SIZE,
                        help="largest message accepted, in bytes (default: %(default)s)")
    if add_options is not None:
        add_options(parser)
    args = parser.parse_args()
    raise_nofile()
    return args


def raise_nofile() -> int:
    """Soft open-file limit up to the hard one: the idle scenario holds
    thousands of sockets, more than the usual soft limit of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def add_loop_option(parser: argparse.ArgumentParser) -> None:
    """``--loop asyncio|uvloop``: the event loop of an asyncio server."""
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                        help="event loop (default: %(default)s, asyncio's own)")


def run_async(main, loop: str):
    """Run the coroutine function ``main`` on asyncio's default event loop
    or on uvloop's."""
    if loop == "uvloop":
        import uvloop
        return uvloop.run(main())
    import asyncio
    return asyncio.run(main())


def echo_app(environ, start_response):
    """The plain WSGI echo app (the gevent-websocket style): what pyws's
    gevent servers and gunicorn's gevent worker run."""
    ws = environ.get("wsgi.websocket")
    if ws is None:
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [b"WebSocket only\n"]
    while True:
        msg = ws.receive()  # str, bytes, or None once closed
        if msg is None:
            break
        ws.send(msg)  # text stays text, bytes stay binary
    return []
