"""permessage-deflate (RFC 7692) on the test side, with Python's zlib and
independent of pyws: offers, reading the server's answer, compressing the
client's messages and decompressing the server's.

Decompression is strict where a lenient peer would hide a server bug: the
server's frames are inflated with the window the server agreed to (a longer
back-reference fails with "invalid distance too far back"), and, when the
server agreed to ``server_no_context_takeover``, with a fresh decompressor
per message (a reference into an earlier message fails).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from tests.conformance.rawclient import OP_CONT, Client, frame

TAIL = b"\x00\x00\xff\xff"
RSV1 = 0x4


@dataclass(frozen=True)
class Offer:
    """One offer, named as in the Autobahn catalog's section 13: the client
    accepts no context takeover / a window limit for itself, and requests
    them of the server."""
    accept_no_context_takeover: bool = False
    accept_max_window_bits: bool = True
    request_no_context_takeover: bool = False
    request_max_window_bits: int = 0  # 0: not requested

    def header(self) -> str:
        parts = ["permessage-deflate"]
        if self.accept_no_context_takeover:
            parts.append("client_no_context_takeover")
        if self.accept_max_window_bits:
            parts.append("client_max_window_bits")
        if self.request_no_context_takeover:
            parts.append("server_no_context_takeover")
        if self.request_max_window_bits:
            parts.append(f"server_max_window_bits={self.request_max_window_bits}")
        return "; ".join(parts)


def parse_extensions(value: str) -> List[Tuple[str, Dict[str, Optional[str]]]]:
    """A Sec-WebSocket-Extensions value as (name, params) pairs (enough for
    what servers answer: no quoted strings)."""
    out = []
    for element in value.split(","):
        if not element.strip():
            continue
        name, *params = [p.strip() for p in element.split(";")]
        parsed: Dict[str, Optional[str]] = {}
        for param in params:
            key, eq, val = param.partition("=")
            assert key.strip() not in parsed, f"repeated parameter {key!r} in {value!r}"
            parsed[key.strip()] = val.strip() if eq else None
        out.append((name, parsed))
    return out


class Session:
    """Compression state for one connection, from the server's answer."""

    def __init__(self, answer: Optional[str], offers: List[Offer]) -> None:
        assert answer is not None, "the server did not accept permessage-deflate"
        (name, params), = parse_extensions(answer)
        assert name == "permessage-deflate", answer
        known = {"server_no_context_takeover", "client_no_context_takeover",
                 "server_max_window_bits", "client_max_window_bits"}
        assert set(params) <= known, f"unknown parameter in {answer!r}"
        for flag in ("server_no_context_takeover", "client_no_context_takeover"):
            assert params.get(flag, None) is None, f"{flag} takes no value: {answer!r}"
        self.server_no_context_takeover = "server_no_context_takeover" in params
        self.client_no_context_takeover = "client_no_context_takeover" in params
        server_bits = params.get("server_max_window_bits")
        client_bits = params.get("client_max_window_bits")
        self.server_bits = int(server_bits) if server_bits else 15
        self.client_bits = int(client_bits) if client_bits else 15
        assert 8 <= self.server_bits <= 15 and 8 <= self.client_bits <= 15, answer
        # RFC 7692 section 7.1: the answer must fit one of the offers.
        assert any(self._fits(offer, params) for offer in offers), (
            f"answer {answer!r} fits none of the offers {[o.header() for o in offers]}")
        self._new_compressor()
        self._new_decompressor()

    def _fits(self, offer: Offer, params: Dict[str, Optional[str]]) -> bool:
        if offer.request_no_context_takeover and not self.server_no_context_takeover:
            return False
        if offer.request_max_window_bits and (
                "server_max_window_bits" not in params
                or self.server_bits > offer.request_max_window_bits):
            return False
        return not ("client_max_window_bits" in params and not offer.accept_max_window_bits)

    def _new_compressor(self) -> None:
        # zlib cannot compress raw DEFLATE in a 256-byte window: limited to
        # 8 bits, the client sends its messages uncompressed (allowed).
        self._comp = (zlib.compressobj(wbits=-self.client_bits)
                      if self.client_bits > 8 else None)

    def _new_decompressor(self) -> None:
        self._decomp = zlib.decompressobj(wbits=-self.server_bits)

    @property
    def compresses(self) -> bool:
        return self._comp is not None

    def compress(self, data: bytes) -> bytes:
        assert self._comp is not None
        out = self._comp.compress(data) + self._comp.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(TAIL)
        if self.client_no_context_takeover:
            self._new_compressor()
        return out[:-4]

    def message_frames(self, opcode: int, data: bytes, fragment: int = 0) -> bytes:
        """The bytes of one message, compressed when this side compresses,
        cut into frames of ``fragment`` payload bytes (0: one frame)."""
        if not self.compresses:
            payload, rsv = data, 0
        else:
            payload, rsv = self.compress(data), RSV1
        if not fragment or len(payload) <= fragment:
            return frame(opcode, payload, rsv=rsv)
        pieces = [payload[i:i + fragment] for i in range(0, len(payload), fragment)]
        out = []
        for i, piece in enumerate(pieces):
            out.append(frame(opcode if i == 0 else OP_CONT, piece,
                             fin=i == len(pieces) - 1, rsv=rsv if i == 0 else 0))
        return b"".join(out)

    def decompress(self, payload: bytes) -> bytes:
        out = self._decomp.decompress(payload + TAIL)
        if self.server_no_context_takeover:
            self._new_decompressor()
        return out

    def read_echo(self, c: Client, opcode: int, expected: bytes,
                  timeout: Optional[float] = None) -> None:
        """The server's echo: one unmasked frame, compressed (RSV1) unless
        its window is limited to 8 bits, that inflates to ``expected``."""
        f = c.read_frame(timeout)
        assert not f.masked and f.fin and f.opcode == opcode, f
        if self.server_bits > 8:
            assert f.rsv == RSV1, f"expected a compressed frame, got {f}"
        else:
            assert f.rsv in (0, RSV1), f
        got = self.decompress(f.payload) if f.rsv == RSV1 else f.payload
        assert got == expected, (f"echo differs: {len(expected)} bytes sent, "
                                 f"{len(got)} back: {got[:60]!r}")


def open_session(c: Client, offers: List[Offer], path: str = "/ws") -> Session:
    """The opening handshake with these offers, in order of preference."""
    resp = c.handshake(path, [("Sec-WebSocket-Extensions",
                               ", ".join(o.header() for o in offers))])
    return Session(resp.header("Sec-WebSocket-Extensions"), offers)
