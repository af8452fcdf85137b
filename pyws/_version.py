"""The version of pyws, in one place: pyproject.toml reads it (setuptools'
dynamic version) and ``pyws.__version__`` imports it."""

__version__ = "0.1.0"
