#!/usr/bin/env bash
# `make demo` as a new user runs it, with the given interpreter (default:
# Debian's own /usr/bin/python3, which is externally managed) and a venv of
# its own: it must install, start and serve the chat page; then it is
# stopped (its process group: make and the demo under it).
#
#   scripts/check_demo.sh [PYTHON [VENV]]
set -euo pipefail
python=${1:-/usr/bin/python3}
venv=${2:-build/venv-demo}
port=${DEMO_PORT:-9527}
url="http://127.0.0.1:$port/"
log=$(mktemp)

if curl -s -o /dev/null "$url"; then
    echo "check_demo: something already answers on $url" >&2; exit 1
fi
# setsid: make leads a process group of its own, so the demo under it is
# stopped with it.
setsid make --no-print-directory demo PYTHON="$python" VENV="$venv" \
    DEMO_ARGS="--port $port" >"$log" 2>&1 &
pid=$!
trap 'kill -- -$pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -f "$log"' EXIT

# The first run installs Flask and gevent and builds the extension.
for _ in $(seq 600); do
    if page=$(curl -fsS "$url" 2>/dev/null); then
        break
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        cat "$log"; echo "check_demo: make demo ended before serving $url" >&2; exit 1
    fi
    sleep 0.5
done
[ -n "${page:-}" ] || { cat "$log"; echo "check_demo: no answer on $url in 5 minutes" >&2; exit 1; }
grep -qi "<html" <<<"$page" || { echo "check_demo: $url is not the chat page" >&2; exit 1; }
installed=$("$venv/bin/python" -m pip list --format=freeze 2>/dev/null | cut -d= -f1 | tr '\n' ' ')
echo "check_demo: make demo with $("$python" --version 2>&1) ($python) serves $url: $(head -c 200 <<<"$page" | tr '\n' ' ' | grep -o '<title>[^<]*</title>' || true)"
echo "check_demo: its venv holds: $installed"
