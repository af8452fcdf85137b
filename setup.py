"""Builds the C extension ``pyws._core`` against the system wslay.

Debian's libwslay-dev ships a header and a shared library but no pkg-config
file, so pkg-config is asked first and the default paths are the fallback.
"""
from __future__ import annotations

import glob
import os
import shlex
import subprocess
import sys

from setuptools import Extension, setup

WSLAY_MISSING = (
    "pyws needs the wslay C library: wslay/wslay.h was not found; "
    "install it with 'apt-get install libwslay-dev' (Debian/Ubuntu) and retry."
)
ZLIB_MISSING = (
    "pyws needs zlib (for permessage-deflate): zlib.h was not found; "
    "install it with 'apt-get install zlib1g-dev' (Debian/Ubuntu) and retry."
)


def pkg_config(*args: str) -> list[str] | None:
    try:
        out = subprocess.run(["pkg-config", *args, "libwslay"], check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return shlex.split(out)


def wslay_flags() -> tuple[list[str], list[str], list[str]]:
    """(include_dirs, library_dirs, libraries) for wslay."""
    cflags = pkg_config("--cflags")
    libs = pkg_config("--libs")
    if cflags is not None and libs is not None:
        incs = [f[2:] for f in cflags if f.startswith("-I")]
        libdirs = [f[2:] for f in libs if f.startswith("-L")]
        names = [f[2:] for f in libs if f.startswith("-l")] or ["wslay"]
        return incs, libdirs, names
    prefixes = [os.environ.get("WSLAY_PREFIX", ""), sys.prefix, "/usr/local", "/usr"]
    for prefix in filter(None, prefixes):
        if os.path.exists(os.path.join(prefix, "include", "wslay", "wslay.h")):
            return [os.path.join(prefix, "include")], [os.path.join(prefix, "lib")], ["wslay"]
    return [], [], []


def header_found(include_dirs: list[str], header: str) -> bool:
    for d in include_dirs + ["/usr/include", "/usr/local/include"]:
        if os.path.exists(os.path.join(d, header)):
            return True
    return False


include_dirs, library_dirs, libraries = wslay_flags()
if len(sys.argv) > 1 and sys.argv[1] not in (
        "egg_info", "dist_info", "sdist", "--version", "--name", "clean"):
    if not header_found(include_dirs, os.path.join("wslay", "wslay.h")):
        sys.exit(WSLAY_MISSING)
    if not header_found(include_dirs, "zlib.h"):
        sys.exit(ZLIB_MISSING)

extra_compile_args = ["-O2", "-Wall", "-Wextra", "-std=c11", "-fvisibility=hidden"]
extra_link_args: list[str] = []
if os.environ.get("PYWS_SANITIZE"):
    san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
           "-fno-omit-frame-pointer", "-O1", "-g"]
    extra_compile_args += san
    extra_link_args += san

# csrc/ in three layers, each only using those before it: engine/ (the
# sans-I/O protocol engine: no Python.h, no sockets), io/ (reads into the
# engine and writes its output on a descriptor the caller owns) and
# binding/ (the pyws._core module).  One include path per layer, so that
# #include lines name files, not folders.
LAYERS = ["csrc/engine", "csrc/io", "csrc/binding"]

# The wheel (make wheel) carries zlib inside the extension: auditwheel
# never copies libz into a wheel (manylinux counts it as part of the
# system), so it is linked statically from the static library, its symbols
# kept local so that they neither clash with nor bind to another libz
# loaded in the process.  Other builds link the shared libz.
libz = ["z"]
extra_objects: list[str] = []
if os.environ.get("PYWS_STATIC_ZLIB"):
    static = subprocess.run([os.environ.get("CC", "gcc"), "-print-file-name=libz.a"],
                            capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(static):
        sys.exit("PYWS_STATIC_ZLIB: libz.a was not found; "
                 "install it with 'apt-get install zlib1g-dev' (Debian/Ubuntu) and retry.")
    libz, extra_objects = [], [static]
    extra_link_args.append("-Wl,--exclude-libs,libz.a")

core = Extension(
    "pyws._core",
    sources=[f for d in LAYERS for f in sorted(glob.glob(os.path.join(d, "*.c")))],
    depends=[f for d in LAYERS for f in sorted(glob.glob(os.path.join(d, "*.h")))],
    include_dirs=[*LAYERS, *include_dirs],
    library_dirs=library_dirs,
    libraries=[*(libraries or ["wslay"]), *libz],
    extra_objects=extra_objects,
    extra_compile_args=extra_compile_args,
    extra_link_args=extra_link_args,
)

setup(ext_modules=[core])
