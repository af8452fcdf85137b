"""The plain WSGI echo app (``_common.echo_app``) as a module for gunicorn,
with pyws's gevent worker::

    gunicorn -k pyws.gunicorn.GeventWebSocketWorker -w 1 -b 127.0.0.1:P \\
        --chdir bench/servers -e PYWS_MAX_MESSAGE_SIZE=16777216 wsgi_echo:app

The worker takes its WebSocket options from ``PYWS_*`` variables (see
pyws/gunicorn.py), and monkey-patches before it loads this module, as all
of gunicorn's gevent workers do."""
from __future__ import annotations

import _common

_common.raise_nofile()

app = _common.echo_app
