#!/usr/bin/env bash
# Proves the repaired wheel self-contained:
#  1. no shared object in it needs a library other than glibc's and those
#     it carries (libwslay, grafted by auditwheel); in particular none
#     needs libz, which is linked into the extension (setup.py);
#  2. installed into a fresh venv, it runs an echo round trip (a pyws
#     client against a pyws WebSocketServer, permessage-deflate on, so
#     zlib is used) in a private mount namespace where the system's
#     libwslay is an empty file.  (libz cannot be hidden that way: the
#     interpreter itself loads it, for binascii and zipfile; 1. covers it.)
# The plain wheel (before auditwheel) must pass the same round trip outside
# the namespace and fail inside it, naming libwslay: the check is known to
# bite, and to bite for the hidden library.
#
#   scripts/check_wheel.sh PYTHON REPAIRED.whl PLAIN.whl
#
# Needs root (or CAP_SYS_ADMIN) for unshare --mount; there is no fallback,
# as a check that skips itself proves nothing.
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 PYTHON REPAIRED.whl PLAIN.whl" >&2; exit 2; }
python=$1
repaired=$(realpath "$2")
plain=$(realpath "$3")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
: >"$work/empty"

cat >"$work/echo.py" <<'EOF'
from gevent import monkey

monkey.patch_all()

import pyws  # noqa: E402
from pyws import _core  # noqa: E402


def app(environ, start_response):
    ws = environ["wsgi.websocket"]
    while (message := ws.receive()) is not None:
        ws.send(message)
    return []


server = pyws.WebSocketServer(("127.0.0.1", 0), app, log=None)
server.start()
ws = pyws.connect(f"ws://127.0.0.1:{server.server_port}/", timeout=10)
for message in ("hello", b"\x00\xff" * 50_000, "é" * 10_000):
    ws.send(message)
    assert ws.receive() == message, "echo differs"
ws.close()
server.stop()
with open("/proc/self/maps") as maps:
    libs = sorted({line.split()[-1] for line in maps if "libwslay" in line or "libz" in line})
# python -m pyws serve finds its demo programs inside the installed package.
from pyws.__main__ import _examples  # noqa: E402

demos = _examples()
assert (demos / "echo.py").is_file() and (demos / "chat" / "static" / "index.html").is_file()
assert "site-packages" in str(demos), f"demos outside the installed package: {demos}"
print(f"echo ok: pyws {pyws.__version__} from {pyws.__file__}; demos in {demos}")
print("  C libraries:", *libs, sep="\n    ")
EOF

# A fresh venv for each wheel; gevent comes from the index (WebSocketServer's).
new_venv() {  # DIR WHEEL
    "$python" -m venv "$1"
    "$1/bin/python" -m pip install -q "$2[gevent]"
}

# Run under the venv's python in a mount namespace hiding the libraries.
# -I: neither the checkout nor $PYTHONPATH can supply pyws.
hidden() {  # VENV
    unshare --mount --propagation private -- bash -c '
        set -e
        empty=$1; venv=$2; shift 2
        for lib in "$@"; do mount --bind "$empty" "$lib"; done
        # The hiding itself is checked: the system libwslay must not load.
        if "$venv/bin/python" -I -c "import ctypes; ctypes.CDLL(\"libwslay.so.1\")" 2>/dev/null; then
            echo "check_wheel: the system libwslay still loads in the namespace" >&2; exit 99
        fi
        cd / && exec "$venv/bin/python" -I "$(dirname "$venv")/echo.py"
    ' hide "$work/empty" "$1" "${libs[@]}"
}

pattern='libwslay\.so'
mapfile -t libs < <(ldconfig -p | grep -E "$pattern" | awk '{print $NF}' |
                    xargs -r realpath | sort -u)
[ ${#libs[@]} -gt 0 ] || { echo "check_wheel: no system libwslay found to hide" >&2; exit 1; }
if ! unshare --mount true 2>/dev/null; then
    echo "check_wheel: unshare --mount is not permitted here (needs root or CAP_SYS_ADMIN)" >&2
    exit 1
fi
echo "check_wheel: hiding ${libs[*]}"

echo "==> repaired wheel: $(basename "$repaired")"
# 1. What its ELF files need: glibc's libraries, or one the wheel carries.
mkdir "$work/unpacked"
(cd "$work/unpacked" && "$python" -m zipfile -e "$repaired" .)
find "$work/unpacked" -name '*.so*' -type f | while read -r so; do
    readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | while read -r lib; do
        case $lib in
            libc.so.6|libm.so.6|libpthread.so.0|libdl.so.2|librt.so.1|ld-linux-x86-64.so.2) ;;
            *) if [ -z "$(find "$work/unpacked" -name "$lib")" ]; then
                   echo "check_wheel: FAILED: ${so#"$work/unpacked/"} needs $lib, not in the wheel" >&2
                   exit 1
               fi
               echo "  ${so#"$work/unpacked/"} needs $lib: in the wheel" ;;
        esac
    done
done
new_venv "$work/repaired" "$repaired"
hidden "$work/repaired"

echo "==> plain wheel: $(basename "$plain")"
new_venv "$work/plain" "$plain"
(cd / && "$work/plain/bin/python" -I "$work/echo.py") >/dev/null
echo "plain wheel echoes with the system libraries"
if hidden "$work/plain" >"$work/plain.log" 2>&1; then
    cat "$work/plain.log"
    echo "check_wheel: FAILED: the plain wheel echoed with the libraries hidden: the check does not bite" >&2
    exit 1
fi
if ! grep -E "$pattern|file too short" "$work/plain.log" >/dev/null; then
    cat "$work/plain.log"
    echo "check_wheel: FAILED: the plain wheel failed, but not for a hidden library" >&2
    exit 1
fi
echo "plain wheel fails with them hidden, as it must: $(grep -E 'Error' "$work/plain.log" | tail -1)"
echo "check_wheel: ok"
