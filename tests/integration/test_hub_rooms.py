"""pyws.Hub in a real gevent server (tests/integration/hub_server.py):
200 clients in 4 rooms, each broadcasting to its room."""
from __future__ import annotations

import pytest

from tests.integration.hub_clients import (
    RoomClient,
    connect_all,
    drop_all,
    exchange,
    start_hub_server,
)

ROOMS = ["alpha", "beta", "gamma", "d\u00e9lta room"]  # a name that needs quoting
PER_ROOM = 50
MESSAGES = 5


@pytest.fixture(scope="module")
def hub_server(tmp_path_factory):
    server = start_hub_server(tmp_path_factory, "hub-server")
    yield server
    server.stop()


@pytest.fixture
def clients():
    opened = []
    yield opened
    drop_all(opened)


def test_200_clients_in_4_rooms_get_their_room_exactly_once_in_order(hub_server, clients):
    # Every fifth client does not want its own messages back (broadcast's
    # exclude); the others get them too.
    plan = [(room, f"{room[:2]}{i}", i % 5 == 0) for room in ROOMS for i in range(PER_ROOM)]
    clients.extend(connect_all(hub_server.port, plan))
    assert len(clients) == 200
    exchange(clients, MESSAGES)
    assert "Traceback" not in hub_server.log_since_mark()


def test_a_room_of_one_and_rooms_that_share_a_prefix(hub_server, clients):
    plan = [("solo", "s0", False), ("room", "r0", False), ("room", "r1", True),
            ("room2", "q0", False), ("room/2", "q1", False)]
    clients.extend(connect_all(hub_server.port, plan))
    exchange(clients, 3)


def test_a_client_that_leaves_stops_receiving_and_the_room_goes_on(hub_server, clients):
    clients.extend(connect_all(hub_server.port, [("leavers", f"l{i}", False) for i in range(4)]))
    leaving = clients.pop()
    leaving.close()
    # The others still exchange, and nobody waits on the one that left.
    exchange(clients, 3)
    late = RoomClient(hub_server.port, "leavers", "l9")
    clients.append(late)
    for c in clients:
        c.received.clear()
    exchange(clients, 2)
