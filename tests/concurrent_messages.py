"""Messages sent concurrently by tests/integration/echo_server.py's
'/concurrent' route and checked by test_concurrent_send.py."""
from __future__ import annotations

from typing import Union

SIZES = [3, 200, 70000, 126, 65536, 1000, 131072, 125]


def message(i: int, j: int) -> Union[str, bytes]:
    """Message j of greenlet i: text when j is even, binary when odd; the
    filler letter tells the greenlet, so a mixed-up frame is visible."""
    size = SIZES[(i + j) % len(SIZES)]
    prefix = f"{i}:{j}:"
    body = prefix + chr(ord("a") + i % 26) * size
    return body if j % 2 == 0 else body.encode("ascii")
