"""Section 13 -- permessage-deflate negotiation parameters.

The client offers, as in the catalog (accept no context takeover, request
it of the server, request a server window):

13.1 (default)                       13.2 client_no_context_takeover
13.3 server_max_window_bits=8        13.4 server_max_window_bits=15
13.5 client_no_context_takeover and server_no_context_takeover, window 8
13.6 the same, window 15
13.7 three offers: [13.5's, client_no_context_takeover, default]

The answer must fit an offer (RFC 7692 section 7.1: a requested server
window is answered with one as small or smaller, a requested
server_no_context_takeover is granted); then each case runs the cases of
section 12 (text, compressible) with that agreement.  The strict test-side
decompressor makes the agreement observable: a server that compressed
with a larger window than it agreed, or that kept its context across
messages after agreeing not to, fails to inflate.
"""
from __future__ import annotations

import random

import pytest

from tests.conformance.checks import close_normally
from tests.conformance.deflate import Offer, open_session
from tests.conformance.rawclient import OP_TEXT, Client
from tests.conformance.test_s12_compression import CASES, payload

COUNT = 5
OFFERS = {
    1: [Offer()],
    2: [Offer(accept_no_context_takeover=True)],
    3: [Offer(request_max_window_bits=8)],
    4: [Offer(request_max_window_bits=15)],
    5: [Offer(accept_no_context_takeover=True, request_no_context_takeover=True,
              request_max_window_bits=8)],
    6: [Offer(accept_no_context_takeover=True, request_no_context_takeover=True,
              request_max_window_bits=15)],
    7: [Offer(accept_no_context_takeover=True, request_no_context_takeover=True,
              request_max_window_bits=8),
        Offer(accept_no_context_takeover=True), Offer()],
}


@pytest.mark.parametrize("section, case", [
    pytest.param(s, c, id=f"13.{s}.{c}") for s in sorted(OFFERS)
    for c in range(1, len(CASES) + 1)])
def test_13(echo, section: int, case: int) -> None:
    size, fragment = CASES[case - 1]
    rng = random.Random(f"13.{section}.{case}")
    offers = OFFERS[section]
    with Client.to(echo) as c:
        session = open_session(c, offers)
        first = offers[0]
        # pyws accepts the first offer whenever it is valid.
        if first.request_max_window_bits:
            assert session.server_bits <= first.request_max_window_bits
        assert session.server_no_context_takeover == first.request_no_context_takeover
        for _ in range(COUNT):
            data = payload("text", size, rng)
            c.send(session.message_frames(OP_TEXT, data, fragment))
            session.read_echo(c, OP_TEXT, data)
        close_normally(c)
