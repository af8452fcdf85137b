#!/usr/bin/env bash
# Run python_session.py under valgrind memcheck and fail if any byte is
# definitely or indirectly lost.  CPython itself keeps memory "still
# reachable" at exit and trips memcheck's uninitialised-value checks in its
# own small-int code, so only the leak summary is judged here; the pure-C
# echo session (echo_session.c) is checked for every kind of error.
set -euo pipefail
python=${1:-python3}
exe=$("$python" -c 'import sys; print(sys.executable)')
log=$(mktemp)
trap 'rm -f "$log"' EXIT
PYTHONMALLOC=malloc valgrind --leak-check=full --show-leak-kinds=definite,indirect \
    "$exe" "$(dirname "$0")/python_session.py" >"$log" 2>&1 || { cat "$log"; exit 1; }
grep -E "python session: ok" "$log" >/dev/null || { cat "$log"; exit 1; }
grep -E "definitely lost:|indirectly lost:" "$log"
if ! grep -qE "definitely lost: 0 bytes" "$log" || ! grep -qE "indirectly lost: 0 bytes" "$log"; then
    if grep -q "All heap blocks were freed" "$log"; then exit 0; fi
    grep -A25 "definitely lost in\|indirectly lost in" "$log" | head -80
    echo "memcheck: bytes lost in the Python session" >&2
    exit 1
fi
