"""A ``pyws.resource.Resource`` under WebSocketServer, for
test_deploy_resource.py.  Prints its port on stdout, then serves.

- WebSocket ``^/echo``: EchoApp: sends "open <path>" in on_open, "echo:<m>"
  for each text message (binary echoed as is; "raise" raises), and records
  its on_close.
- WebSocket ``^/chat$``: ChatApp, PROTOCOL_NAME "chat": sends its protocol,
  then the default on_message (echo).
- HTTP ``^/events$``: the on_close records whose path is ``?path=``,
  waiting (up to 5 s) until there are ``?count=`` of them.
- HTTP ``^/page$``: a plain page.
"""
from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402  (gevent's, patched)
from typing import Any, Callable, Dict, Iterable, List, Optional  # noqa: E402
from urllib.parse import parse_qs  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from pyws import WebSocketServer  # noqa: E402
from pyws.resource import Resource, WebSocketApplication  # noqa: E402
from pyws.websocket import Message  # noqa: E402
from tests.server_port import start_and_announce  # noqa: E402

CLOSES: List[Dict[str, Any]] = []
CHANGED = threading.Condition()


class Recording(WebSocketApplication):
    def on_close(self, reason: Optional[str]) -> None:
        with CHANGED:
            CLOSES.append({"app": type(self).__name__, "path": self.ws.path,
                           "code": self.ws.close_code, "reason": reason,
                           "close_reason": self.ws.close_reason,
                           "opened": getattr(self, "opened", False)})
            CHANGED.notify_all()


class EchoApp(Recording):
    def on_open(self) -> None:
        self.opened = True
        self.ws.send(f"open {self.ws.path}")

    def on_message(self, message: Message) -> None:
        if message == "raise":
            raise RuntimeError("on_message failed on purpose")
        if isinstance(message, str):
            self.ws.send("echo:" + message)
        else:
            self.ws.send(message)


class ChatApp(Recording):
    PROTOCOL_NAME = "chat"

    def on_open(self) -> None:
        self.opened = True
        self.ws.send(f"protocol={self.ws.subprotocol}")


def events(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    path = query["path"][0]
    count = int(query.get("count", ["1"])[0])

    def mine() -> List[Dict[str, Any]]:
        return [c for c in CLOSES if c["path"] == path]

    with CHANGED:
        CHANGED.wait_for(lambda: len(mine()) >= count, timeout=5)
        body = json.dumps(mine()).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def page(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = b"a plain page\n"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


def main() -> None:
    resource = Resource([("^/echo", EchoApp), ("^/chat$", ChatApp),
                         ("^/events$", events), ("^/page$", page)])
    server = WebSocketServer(("127.0.0.1", 0), resource)
    start_and_announce(server)
    server.serve_forever()


if __name__ == "__main__":
    main()
