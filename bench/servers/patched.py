"""Runs another server of this folder the way most gevent apps run: with
gevent's monkey-patching first, before anything else is imported::

    python3 patched.py pyws_echo.py --port P [--max-size N]

The script named is then run as ``__main__``, with the rest of the
command line as its arguments."""
from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import runpy  # noqa: E402
import sys  # noqa: E402

if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
    sys.exit("usage: patched.py SCRIPT.py --port P [options of SCRIPT]")
script = os.path.join(os.path.dirname(os.path.abspath(__file__)), sys.argv.pop(1))
sys.argv[0] = script
runpy.run_path(script, run_name="__main__")
