"""The package as a user meets it: ``dir()`` and ``help()`` show the public
API, and a missing optional dependency names the extra that brings it."""
from __future__ import annotations

import pydoc
import subprocess
import sys

import pytest

import pyws
from tests.conftest import ROOT, subprocess_env


def test_dir_lists_the_public_api_and_no_helpers() -> None:
    names = dir(pyws)
    for public in ("WebSocket", "WebSocketServer", "WebSocketHandler", "Hub", "connect",
                   "Resource", "WebSocketApplication", "ConnectionClosed", "__version__"):
        assert public in names, public
    for helper in ("Any", "TYPE_CHECKING", "annotations"):
        assert helper not in names, helper
    assert set(pyws.__all__) <= set(names)


def test_help_shows_the_servers() -> None:
    text = pydoc.render_doc(pyws, renderer=pydoc.plaintext)
    assert "class WebSocketServer" in text and "class WebSocketHandler" in text


@pytest.mark.parametrize("hidden,statement,message", [
    ("gevent", "pyws.WebSocketServer",
     "pyws.WebSocketServer needs gevent, which is not installed: "
     "pip install 'pyws-wslay[gevent]'"),
    ("gevent", "import pyws.handler",
     "pyws.handler needs gevent, which is not installed: pip install 'pyws-wslay[gevent]'"),
    ("flask", "import pyws.flask",
     "pyws.flask needs flask, which is not installed: pip install 'pyws-wslay[flask]'"),
    ("gunicorn", "import pyws.gunicorn",
     "pyws.gunicorn needs gunicorn, which is not installed: "
     "pip install 'pyws-wslay[gunicorn]'"),
])
def test_a_missing_optional_dependency_names_the_extra(hidden: str, statement: str,
                                                       message: str) -> None:
    code = (f"import sys; sys.modules[{hidden!r}] = None\nimport pyws\n"
            f"try:\n    {statement}\nexcept ModuleNotFoundError as exc:\n    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=str(ROOT), env=subprocess_env(), timeout=60)
    assert done.stdout.strip() == message, done.stderr
