"""flask-sock (simple-websocket) echo under its natural server: Werkzeug's
threaded WSGI server, what ``flask run`` gives.  Each connection has a
request thread and simple-websocket's reader thread."""
from __future__ import annotations

import _common

args = _common.parse_args(__doc__)

import logging  # noqa: E402

from flask import Flask  # noqa: E402
from flask_sock import Sock  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

app = Flask(__name__)
# ping_interval None: no keepalive pings, like the other servers here.
app.config["SOCK_SERVER_OPTIONS"] = {"max_message_size": args.max_size,
                                     "ping_interval": None}
sock = Sock(app)


@sock.route("/")
def echo(ws):
    while True:
        ws.send(ws.receive())  # receive() raises ConnectionClosed at the end


logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log
make_server(args.host, args.port, app, threaded=True).serve_forever()
