"""An echo session through the Python binding, run under valgrind by
``make memcheck``: both engines, every event kind, a failure, and the
error paths (sending after close), many times over."""
from __future__ import annotations

from pyws import _core

for _ in range(100):
    server = _core.Protocol()
    client = _core.Protocol(server=False, max_message_size=0)
    for size in (0, 5, 125, 126, 70000):
        client.send_text("x" * size)
        client.send_binary(b"y" * size)
        client.send_ping(b"p")
        server.receive_data(client.data_to_send())
        for kind, data in server.events_received():
            if kind == _core.TEXT:
                server.send_text(data)
            elif kind == _core.BINARY:
                server.send_binary(data)
        client.receive_data(server.data_to_send())
        client.events_received()
    client.send_close(1000, "bye")
    server.receive_data(client.data_to_send())
    server.events_received()
    client.receive_data(server.data_to_send())
    client.events_received()
    try:
        client.send_text("too late")
    except Exception:
        pass
    broken = _core.Protocol()
    broken.receive_data(b"\x81\x05Hello")  # unmasked: fails with 1002
    broken.events_received()
    _core.check_request("GET", "HTTP/1.1", [("Host", "x"), ("Upgrade", "websocket"),
                                            ("Connection", "Upgrade"),
                                            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                            ("Sec-WebSocket-Version", "13")])
    _core.encode_frame(2, b"z" * 1000)
print("python session: ok")
