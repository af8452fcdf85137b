"""csrc/ is in three layers, each using only those before it (see setup.py):

- csrc/engine: the sans-I/O protocol engine.  No Python.h, never touches a
  socket; it includes nothing from io/ or binding/.  The fuzz targets and
  the C memcheck session link it alone (Makefile).
- csrc/io: reads into the engine and writes its output on a descriptor the
  caller owns; never calls Python.
- csrc/binding: the pyws._core module.

These tests read the sources (comments and string literals left out) and,
where a C compiler is at hand, compile each layer with only the include
paths it may use.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CSRC = Path(__file__).resolve().parents[2] / "csrc"
ENGINE, IO, BINDING = CSRC / "engine", CSRC / "io", CSRC / "binding"

# The one system call on a descriptor the engine makes: pyws_random.c reads
# /dev/urandom (a file it opens itself) where getrandom(2) is missing.
URANDOM_FALLBACK = "pyws_random.c"

SOCKET_HEADERS = ("sys/socket.h", "sys/uio.h", "netinet/", "arpa/", "netdb.h",
                  "poll.h", "sys/poll.h", "sys/select.h", "sys/epoll.h")
PYTHON_HEADERS = ("Python.h", "structmember.h")
# Calls that move bytes on a descriptor or wait for one (member calls such
# as io->read( or names like on_recv( are not these).
IO_CALLS = re.compile(r"(?<![\w.>])(recv|recvfrom|recvmsg|send|sendto|sendmsg|write|writev|"
                      r"read|readv|poll|select|epoll_wait|accept|connect)\s*\(")


def sources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in (".c", ".h"))


def code_of(path: Path) -> str:
    """The source without comments and string or character literals."""
    text = path.read_text()
    pattern = re.compile(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'',
                         re.S)
    return pattern.sub(lambda m: " " if m.group(0)[0] == "/" else '""', text)


def includes(path: Path) -> list[str]:
    return re.findall(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', path.read_text(), re.M)


def names(folder: Path) -> set[str]:
    return {p.name for p in sources(folder)}


def test_every_c_file_is_in_a_layer():
    assert not [p.name for p in CSRC.iterdir() if p.is_file()], \
        "C sources belong in csrc/engine, csrc/io or csrc/binding"
    assert sorted(p.name for p in CSRC.iterdir() if p.is_dir()) == ["binding", "engine", "io"]
    assert all(n.startswith("pyws_") for n in names(ENGINE) | names(IO))
    assert all(n.startswith("py_") for n in names(BINDING))


@pytest.mark.parametrize("path", sources(ENGINE), ids=lambda p: p.name)
def test_engine_has_no_python_no_sockets_no_upper_layer(path):
    incs = includes(path)
    assert not [h for h in incs if h in PYTHON_HEADERS]
    assert not [h for h in incs if h.startswith(SOCKET_HEADERS)]
    assert not [h for h in incs if h in names(IO) | names(BINDING)], \
        "the engine must not use io/ or binding/"
    calls = sorted({m.group(1) for m in IO_CALLS.finditer(code_of(path))})
    if path.name == URANDOM_FALLBACK:
        assert calls == ["read"]
    else:
        assert calls == [], f"{path.name} makes I/O calls: {calls}"
        assert "unistd.h" not in incs


@pytest.mark.parametrize("path", sources(IO), ids=lambda p: p.name)
def test_io_never_calls_python(path):
    incs = includes(path)
    assert not [h for h in incs if h in PYTHON_HEADERS]
    assert not [h for h in incs if h in names(BINDING)], "io/ must not use binding/"
    assert not re.search(r"\bPy[A-Z_]\w*", code_of(path))


def compiler() -> str | None:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    return None


@pytest.mark.skipif(compiler() is None, reason="no C compiler")
@pytest.mark.parametrize("folder,paths", [
    ("engine", [ENGINE]),
    ("io", [ENGINE, IO]),
], ids=["engine", "io"])
def test_layer_compiles_with_its_own_include_paths(folder, paths):
    """Each layer compiles seeing only itself and the layers below: an
    #include of a header from above would fail here, not only at link time
    in the fuzz and memcheck builds."""
    flags = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-fsyntax-only"]
    flags += [f"-I{p}" for p in paths]
    for src in sorted((CSRC / folder).glob("*.c")):
        r = subprocess.run([compiler(), *flags, str(src)], capture_output=True, text=True)
        assert r.returncode == 0, f"{src.name}:\n{r.stderr}"
