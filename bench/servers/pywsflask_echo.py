"""pyws's Flask extension, ``pyws.flask.Sock``, under gunicorn's threaded
worker: each connection holds one of the worker's threads for its life, so
``--threads`` must exceed the connections open at once::

    gunicorn -k gthread --threads 64 -w 1 -b 127.0.0.1:P \\
        --chdir bench/servers -e PYWS_MAX_MESSAGE_SIZE=16777216 pywsflask_echo:app

Under a thread worker the route does the handshake itself on gunicorn's
socket; its size limit is the ``max_message_size`` given to ``Sock``, read
here from ``PYWS_MAX_MESSAGE_SIZE``."""
from __future__ import annotations

import os

import _common

_common.raise_nofile()

from flask import Flask  # noqa: E402

from pyws.flask import Sock  # noqa: E402

app = Flask(__name__)
sock = Sock(app, max_message_size=int(os.environ.get("PYWS_MAX_MESSAGE_SIZE",
                                                     _common.DEFAULT_MAX_SIZE)))


@sock.route("/")
def echo(ws):
    while True:
        msg = ws.receive()  # str, bytes, or None once closed
        if msg is None:
            break
        ws.send(msg)
