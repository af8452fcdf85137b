"""pyws echo: ``pyws.WebSocketServer`` (gevent pywsgi) and a plain WSGI app
(``_common.echo_app``).  ``python3 patched.py pyws_echo.py`` is the same
under gevent's monkey-patching."""
from __future__ import annotations

import _common

args = _common.parse_args(__doc__)

import pyws  # noqa: E402  (after the rlimit, like every server here)

# log=None: no access log line per connection (the peers log none either).
pyws.WebSocketServer((args.host, args.port), _common.echo_app, max_message_size=args.max_size,
                     log=None).serve_forever()
