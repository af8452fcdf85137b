"""WebSocketServer warns when given a stdlib ssl.SSLContext in a program
gevent has not patched: its TLS sockets block, so one slow client stalls
every connection.  gevent's SSLContext, certfile/keyfile and a patched
program are fine.  Run in subprocesses (this file as a script): the test
process never imports gevent."""
from __future__ import annotations

import json
import logging
import sys
from typing import Any, Dict, List

from tests.script_json import script_json


def test_stdlib_ssl_context_warns_only_when_unpatched():
    results: Dict[str, Any] = script_json(__file__, timeout=60)
    assert results["stdlib"] and "gevent.ssl.SSLContext" in results["stdlib"][0]
    assert results["gevent"] == []
    assert results["none"] == []


def _warnings(context: Any) -> List[str]:
    from pyws.server import WebSocketServer

    seen: List[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    log = logging.getLogger("pyws.server")
    handler = Keep(logging.WARNING)
    log.addHandler(handler)
    try:
        if context is None:
            WebSocketServer(("127.0.0.1", 0), None)
        else:
            WebSocketServer(("127.0.0.1", 0), None, ssl_context=context)
    finally:
        log.removeHandler(handler)
    return seen


if __name__ == "__main__":
    import ssl

    from gevent import ssl as gevent_ssl

    json.dump({
        "stdlib": _warnings(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)),
        "gevent": _warnings(gevent_ssl.SSLContext(gevent_ssl.PROTOCOL_TLS_SERVER)),
        "none": _warnings(None),
    }, sys.stdout)
