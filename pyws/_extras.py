"""The optional dependencies, and the error that names the extra to install
when one is missing (instead of a bare ``No module named 'gevent'``)."""
from __future__ import annotations

__all__ = ["DISTRIBUTION", "missing"]

#: pyws's name on the package index (``import pyws`` is the module's).
DISTRIBUTION = "pyws-wslay"

#: Which extra brings each optional top-level module.
EXTRAS = {"gevent": "gevent", "flask": "flask", "werkzeug": "flask",
          "gunicorn": "gunicorn", "redis": "redis", "uvicorn": "uvicorn",
          "uvicorn_worker": "uvicorn"}


def missing(exc: ModuleNotFoundError, user: str) -> ModuleNotFoundError:
    """What to raise for ``exc`` met while importing ``user`` (a pyws module
    or name): the same error, saying which extra to install, when the
    module is an optional dependency of pyws."""
    top = (exc.name or "").split(".")[0]
    extra = EXTRAS.get(top)
    if extra is None:
        return exc
    return ModuleNotFoundError(f"{user} needs {top}, which is not installed: "
                               f"pip install '{DISTRIBUTION}[{extra}]'", name=exc.name)
