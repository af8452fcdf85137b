"""pyws.options.Options: one table of defaults, one check, every entry point.

WebSocketServer, WebSocketHandler (a server's option attributes), the
gunicorn worker's options, Sock and connect all reject a bad value with the
message Options gives, and all start from the same defaults.  The gevent
entry points run in a subprocess (this file as a script), so that the test
process never imports gevent.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import sys
from typing import Any, Dict, List, Tuple

import pytest

from pyws.options import CONNECTION_OPTIONS, DEFAULTS, OPTION_NAMES, Options

#: (option, bad value); every entry point must refuse each the same way.
BAD: List[Tuple[str, Any]] = [
    ("max_message_size", -1),
    ("max_message_size", 1.5),
    ("close_timeout", -1),
    ("ping_interval", "soon"),
    ("ping_timeout", -0.5),
    ("idle_timeout", -3),
    ("compression", "yes"),
    ("handshake_timeout", -1),
    ("max_request_size", "big"),
    ("origins", "https://a.example"),
    ("subprotocols", "chat"),
    ("extra_headers", {"X-A": "1"}),
    ("on_upgrade", 42),
    ("max_mesage_size", 1),  # a typo: unknown
]
# What the server alone takes (reading the request head).
SERVER_ONLY = {"handshake_timeout", "max_request_size"}


def refusal(call: Any, *args: Any, **kwargs: Any) -> List[str]:
    """[exception type name, message] of what ``call`` raises."""
    try:
        call(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        return [type(exc).__name__, str(exc)]
    return ["accepted", ""]


def expected(name: str, value: Any) -> List[str]:
    return refusal(Options.build, **{name: value})


def test_defaults_table():
    assert Options() == DEFAULTS
    assert DEFAULTS.max_message_size == 1048576
    assert (DEFAULTS.close_timeout, DEFAULTS.ping_interval, DEFAULTS.ping_timeout,
            DEFAULTS.idle_timeout) == (1.0, 20.0, 20.0, None)
    assert (DEFAULTS.handshake_timeout, DEFAULTS.max_request_size) == (10.0, 32768)
    assert DEFAULTS.compression is True
    assert (DEFAULTS.origins, DEFAULTS.subprotocols, DEFAULTS.extra_headers,
            DEFAULTS.on_upgrade) == (None, None, (), None)


def test_docstring_describes_every_option():
    for name in OPTION_NAMES:
        assert f"``{name}``" in (Options.__doc__ or ""), name


@pytest.mark.parametrize("name,value", BAD)
def test_bad_value_is_refused_naming_the_option(name, value):
    kind, message = expected(name, value)
    assert kind in ("TypeError", "ValueError")
    assert name in message


def test_unknown_option_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="'max_mesage_size'"):
        Options.build(max_mesage_size=1)


def test_options_are_frozen_and_replace_checks():
    options = Options.build(max_message_size=10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.max_message_size = 5  # type: ignore[misc]
    assert options.replace(close_timeout=1.0).max_message_size == 10
    with pytest.raises(ValueError, match="close_timeout"):
        options.replace(close_timeout=-1.0)


def test_none_max_message_size_means_no_limit():
    assert Options.build(max_message_size=None).max_message_size == 0


@pytest.mark.parametrize("name,value", [(n, v) for n, v in BAD if n not in SERVER_ONLY])
def test_sock_refuses_the_same_way(name, value):
    from pyws.flask import Sock

    assert refusal(Sock, **{name: value}) == expected(name, value)


def test_sock_refuses_server_only_options():
    from pyws.flask import Sock

    for name in SERVER_ONLY:
        with pytest.raises(TypeError, match=name):
            Sock(**{name: 1.0})


def test_sock_defaults_and_overrides():
    from pyws.flask import Sock

    sock = Sock()
    assert sock.options == DEFAULTS and sock.overrides == {}
    assert sock.policy.compression is None  # follows the server
    sock = Sock(max_message_size=10, compression=False)
    assert sock.overrides == {"max_message_size": 10}
    assert sock.policy.compression is False
    sock = Sock(options=Options.build(idle_timeout=3.0))
    assert set(sock.overrides) == set(CONNECTION_OPTIONS)
    assert sock.overrides["idle_timeout"] == 3.0


@pytest.mark.parametrize("name,value", [(n, v) for n, v in BAD
                                        if n in CONNECTION_OPTIONS or n == "compression"])
def test_connect_refuses_the_same_way(name, value):
    import pyws

    # Checked before any connection is attempted (nothing listens there).
    assert refusal(pyws.connect, "ws://127.0.0.1:9/", **{name: value}) == \
        expected(name, value)


def test_connect_defaults_are_the_table():
    import pyws

    parameters = inspect.signature(pyws.connect).parameters
    for name in list(CONNECTION_OPTIONS) + ["compression"]:
        assert parameters[name].default == getattr(DEFAULTS, name), name


def test_connect_unknown_keyword_names_it():
    import pyws

    with pytest.raises(TypeError, match="max_mesage_size"):
        pyws.connect("ws://127.0.0.1:9/", max_mesage_size=1)  # type: ignore[call-arg]


def test_gevent_entry_points_refuse_the_same_way():
    from tests.script_json import script_json

    results: Dict[str, Any] = script_json(__file__, timeout=120)
    assert results["defaults"] == {"server": True, "handler": True, "gunicorn": True}
    for (name, value), got in zip(BAD, results["refusals"]):
        want = expected(name, value)
        # A server's attributes are read by name: an unknown one is not seen.
        handler_want = ["accepted", ""] if name not in OPTION_NAMES else want
        assert got == {"server": want, "handler": handler_want, "gunicorn": want}, name


def _gevent_results() -> Dict[str, Any]:
    from pyws.gunicorn import WebSocketPyWSGIServer, server_options
    from pyws.handler import server_settings
    from pyws.server import WebSocketServer

    class BareServer:
        """A server with option attributes, as the handler may meet one."""

    def handler(name: str, value: Any) -> None:
        server = BareServer()
        setattr(server, name, value)
        server_settings(server)

    refusals = []
    for name, value in BAD:
        refusals.append({
            "server": refusal(WebSocketServer, ("127.0.0.1", 0), None, **{name: value}),
            "handler": refusal(handler, name, value),
            "gunicorn": refusal(server_options, config={name: value}),
        })
    defaults = {
        "server": WebSocketServer(("127.0.0.1", 0), None).options == DEFAULTS,
        "handler": server_settings(BareServer()).options == DEFAULTS,
        "gunicorn": WebSocketPyWSGIServer.options == DEFAULTS,
    }
    return {"refusals": refusals, "defaults": defaults}


if __name__ == "__main__":
    json.dump(_gevent_results(), sys.stdout)
