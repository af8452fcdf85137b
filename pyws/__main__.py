"""``python -m pyws``: serve the demos, or talk to a WebSocket server.

    python -m pyws serve [--host H] [--port P]      the echo demo
    python -m pyws serve --chat [--redis URL]       the group chat
    python -m pyws connect ws://host:port/path      lines in, messages out

The demos are the programs of the repository's ``examples/`` folder (shipped
in the package as ``pyws._examples``).
"""
from __future__ import annotations

import argparse
import runpy
import sys
import threading
from pathlib import Path
from typing import List, Optional

__all__ = ["main"]


def _examples() -> Path:
    """Where the demo programs are: inside the installed package, or the
    repository's examples/ beside it (a source checkout)."""
    here = Path(__file__).resolve().parent
    for folder in (here / "_examples", here.parent / "examples"):
        if (folder / "echo.py").is_file():
            return folder
    raise SystemExit("pyws: the demo programs are missing from this installation")


def _serve(args: argparse.Namespace) -> int:
    program = _examples() / ("chat/app.py" if args.chat else "echo.py")
    argv = [str(program), "--host", args.host, "--port", str(args.port)]
    if args.redis:
        if not args.chat:
            raise SystemExit("pyws serve: --redis goes with --chat")
        argv += ["--redis", args.redis]
    sys.argv = argv
    runpy.run_path(str(program), run_name="__main__")  # a busy port: its one line
    return 0


def _connect(args: argparse.Namespace) -> int:
    import pyws

    try:
        ws = pyws.connect(args.url, subprotocols=args.subprotocol or None,
                          timeout=args.timeout)
    except (pyws.HandshakeError, OSError) as exc:
        print(f"pyws connect: {exc}", file=sys.stderr)
        return 1
    out = sys.stdout

    def show() -> None:
        for message in ws:
            if isinstance(message, bytes):
                out.write(f"< ({len(message)} bytes) {message.hex()}\n")
            else:
                out.write(f"< {message}\n")
            out.flush()

    reader = threading.Thread(target=show, name="pyws-connect", daemon=True)
    reader.start()
    try:
        for line in sys.stdin:
            text = line.rstrip("\r\n")
            try:
                ws.send(text.encode("utf-8") if args.binary else text)
            except pyws.ConnectionClosed:
                break
    except KeyboardInterrupt:
        pass
    ws.close()
    reader.join(5.0)
    code = ws.close_code
    print(f"closed: {code} {ws.close_reason}".rstrip(), file=sys.stderr)
    return 0 if code in (1000, 1001, 1005) else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pyws", description="WebSocket for Flask and gevent, on a C engine.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve", help="run the echo demo from the Flask + gevent tutorial (or the chat)",
        description="Run the echo demo from the Flask + gevent tutorial, or with --chat "
                    "the group chat; open http://HOST:PORT/ in a browser.")
    serve.add_argument("--host", default="127.0.0.1", help="address (default: %(default)s)")
    serve.add_argument("--port", type=int, default=9527, help="port (default: %(default)s)")
    serve.add_argument("--chat", action="store_true", help="the group chat instead")
    serve.add_argument("--redis", metavar="URL", help="with --chat: share rooms through Redis")
    serve.set_defaults(run=_serve)
    connect = commands.add_parser(
        "connect", help="an interactive client: lines in, messages out",
        description="Connect to URL (ws:// or wss://); each line read from stdin is sent "
                    "as a message, each message received is printed ('< ' first; binary "
                    "ones as hex). On exit, the close code is printed; the status is 0 "
                    "for a normal close.")
    connect.add_argument("url")
    connect.add_argument("--binary", action="store_true",
                         help="send each line as a binary message")
    connect.add_argument("--subprotocol", action="append", metavar="NAME",
                         help="offer this subprotocol (repeatable)")
    connect.add_argument("--timeout", type=float, default=10.0,
                         help="seconds for the connection and the handshake (default: "
                              "%(default)s)")
    connect.set_defaults(run=_connect)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
