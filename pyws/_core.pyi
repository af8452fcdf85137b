"""Type stub and contract of ``pyws._core``, the C protocol engine.

The engine is sans-I/O: bytes go in with ``receive_data``, events come out of
``events_received``, bytes to write come out of ``data_to_send``.  It never
touches a socket.  Framing, masking, UTF-8 validation, the close handshake and
the opening handshake are all done in C (on wslay).
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple, Union

Buffer = Union[bytes, bytearray, memoryview]

# Event kinds, as returned in ``Protocol.events_received()``.
TEXT: int  # (TEXT, str): a complete text message, already UTF-8 validated
BINARY: int  # (BINARY, bytes): a complete binary message
PING: int  # (PING, bytes): a ping arrived; the pong is already queued
PONG: int  # (PONG, bytes): a pong arrived
CLOSE: int  # (CLOSE, (code, reason)): the peer's close frame arrived; if we had
#             not sent a close yet, the engine queues the echo of its code
#             when this event is taken.  code is 1005 when the frame had no code.
FAIL: int  # (FAIL, (code, reason)): the peer broke the protocol; the engine
#            queues a close frame with that code (1002, 1007 or 1009) and a
#            reason when this event is taken, and stops reading.  Nothing
#            after this event.
# Order: a CLOSE or FAIL that follows data messages is held back (the state
# stays OPEN, close_code None) until those messages were taken, so that what
# the application sends in reply precedes the close frame.

# Protocol states.
OPEN: int  # both directions open
CLOSING: int  # a close frame was sent or received, not both
CLOSED: int  # close sent and received, or failed, or EOF

DEFAULT_MAX_MESSAGE_SIZE: int  # 1 MiB

#: permessage-deflate parameters: (server_no_context_takeover,
#: client_no_context_takeover, server_max_window_bits, client_max_window_bits),
#: window bits from 8 to 15.  As settings: what this side asks for; as an
#: agreement: what binds both sides.
DeflateParams = Tuple[bool, bool, int, int]

class Protocol:
    """One WebSocket connection's protocol state, after the opening handshake."""

    def __init__(self, server: bool = True,
                 max_message_size: int = ...,
                 deflate: Optional[DeflateParams] = None,
                 deflate_level: int = -1, deflate_mem_level: int = 8) -> None:
        """``server``: True for the server role (expects masked frames, sends
        unmasked), False for the client role.  ``max_message_size``: the largest
        message accepted, in bytes (0 means no limit), decompressed size for a
        compressed one; a longer one fails the connection with 1009.
        ``deflate``: the permessage-deflate agreement (None: no extension; an
        RSV1 frame then fails with 1002); ``deflate_level`` and
        ``deflate_mem_level`` tune zlib's compressor.  Raises ValueError for a
        negative size or bad deflate settings."""

    # Incoming side.
    def receive_data(self, data: Buffer) -> None:
        """Feed bytes read from the transport.  Any split is fine (one byte at a
        time included).  Produces events and, for pings, closes and failures,
        bytes to send.  After a FAIL or once closed, further data is ignored."""
    def receive_eof(self) -> None:
        """The transport reached EOF.  The state becomes CLOSED; if no close
        frame was received, ``close_code`` becomes 1006."""
    def events_received(self) -> list[Tuple[int, object]]:
        """Return and clear the events produced so far, oldest first; a CLOSE
        or FAIL that follows data messages is left for the next call."""
    @property
    def has_events(self) -> bool:
        """An event is queued (one ``events_received`` left for later)."""
    @property
    def message_ready(self) -> bool:
        """The next event is a complete message (``receive_from`` returns it
        without reading)."""

    # Outgoing side.  Each call appends one complete frame to the output.
    def send_text(self, data: Union[str, Buffer]) -> None:
        """Queue a text message.  ``str`` is encoded to UTF-8; bytes must be
        valid UTF-8 (ValueError otherwise).  Raises ConnectionClosed once a
        close frame was sent."""
    def send_binary(self, data: Buffer) -> None: ...
    def send_ping(self, data: Buffer = b"") -> None:
        """ValueError if over 125 bytes."""
    def send_pong(self, data: Buffer = b"") -> None: ...
    def send_close(self, code: int = 1000, reason: Union[str, bytes] = "") -> None:
        """Start (or answer) the closing handshake.  ``code`` must be a code an
        endpoint may send (1000-1003, 1007-1014, 3000-4999) or 1005 meaning "no
        code" (then reason must be empty); reason at most 123 UTF-8 bytes.
        ValueError otherwise.  ConnectionClosed if a close was already sent."""
    def data_to_send(self) -> bytes:
        """Return and clear the bytes waiting to be written to the transport."""

    # Straight to and from a plain socket's file descriptor (never blocking):
    # the same engine calls, without bytes objects in between.  Writes must
    # be serialised by the caller, as with data_to_send.
    def receive_from(self, fd: int, readable: bool,
                     deferred: bool = False) -> Union[str, bytes, int]:
        """Read from ``fd`` (when needed) until a message is complete and
        return it, if nothing waits to be written (with ``deferred``: output
        the caller deferred does not hold back a complete message).  Else an
        int: 0, wait until ``fd`` is readable, then call again with
        ``readable=True`` (it also answers 0 at once after a read that
        emptied the socket); 1, events or output to handle
        (``events_received``, ``data_to_send``); 2, the stream ended or broke
        (call ``receive_eof``)."""
    def send_to(self, fd: int, message: Union[str, Buffer],
                binary: Optional[bool]) -> int:
        """Send one message (str as text and bytes-like as binary, unless
        ``binary`` says otherwise) and write it to ``fd`` as far as the socket
        takes it.  The bytes left (see ``flush_to``), or -errno if the socket
        failed.  Raises like ``send_text``/``send_binary``."""
    def flush_to(self, fd: int) -> int:
        """Write queued output to ``fd``: the bytes left, or -errno."""
    def queue_message(self, message: Union[str, Buffer], binary: Optional[bool]) -> int:
        """``send_to``'s message into the output only, not written (replies to
        a burst gather this way); the bytes now queued."""
    def read_message(self, fd: int, watcher: Any, hub: Any,
                     deferred: bool) -> Union[str, bytes, int]:
        """``receive_from`` on a plain gevent socket that, instead of
        answering 0, parks the current greenlet until ``fd`` is readable: it
        starts ``watcher`` (the socket's read watcher) with the greenlet's
        ``switch`` and switches to ``hub``.  A message, or 1 (events) or 2
        (EOF).  With ``deferred``, output waiting to be written does not hold
        back a complete message.  Exceptions thrown into the wait (a close
        from another greenlet) propagate."""

    # State.
    @property
    def state(self) -> int: ...
    @property
    def is_server(self) -> bool: ...
    @property
    def max_message_size(self) -> int: ...
    @property
    def deflate(self) -> bool:
        """True when permessage-deflate is in use."""
    @property
    def close_sent(self) -> bool: ...
    @property
    def close_received(self) -> bool: ...
    @property
    def close_code(self) -> Optional[int]:
        """The peer's close code (1005 if its close had none), the code we
        failed with after a protocol error, 1006 after EOF without a close;
        None while open."""
    @property
    def close_reason(self) -> str: ...
    @property
    def output_size(self) -> int:
        """Bytes waiting in the output buffer."""

# Opening handshake, server side.
def check_request(method: str, http_version: str,
                  headers: Sequence[Tuple[str, str]],
                  subprotocols: Optional[Sequence[str]] = None
                  ) -> Tuple[str, Optional[str]]:
    """Validate an upgrade request.  ``http_version`` as in the request line
    ("HTTP/1.1").  ``headers``: (name, value) pairs, names in any case;
    repeated headers are combined as comma lists.  ``subprotocols``: the
    server's supported list, in order of preference; the first of them that
    the client offered is selected.

    Returns (sec_websocket_accept, selected_subprotocol_or_None).
    Raises pyws.exceptions.HandshakeError(message, status, headers) where
    status is 400 (bad request: missing Host, Upgrade, Connection, bad key,
    HTTP/1.0), 405 (method not GET, headers [("Allow", "GET")]) or 426
    (version not 13, headers [("Sec-WebSocket-Version", "13")]); the message
    names the reason."""

def accept_key(key: Union[str, bytes]) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (no validation of key)."""

def response_headers(accept: str, subprotocol: Optional[str] = None
                     ) -> list[Tuple[str, str]]:
    """The headers of a 101 response: Upgrade, Connection,
    Sec-WebSocket-Accept and, if given, Sec-WebSocket-Protocol."""

# Opening handshake, client side.
def client_request(host: str, resource: str,
                   subprotocols: Optional[Sequence[str]] = None,
                   headers: Optional[Sequence[Tuple[str, str]]] = None
                   ) -> Tuple[bytes, str]:
    """Build the HTTP/1.1 upgrade request with a fresh random key.
    ``host`` is the Host header value ("example.com:8080"), ``resource`` the
    request target ("/ws?x=1").  Returns (request_bytes, key)."""

def check_response(data: Buffer, key: str,
                   subprotocols: Optional[Sequence[str]] = None,
                   deflate: Optional[DeflateParams] = None
                   ) -> Optional[Tuple[int, Optional[str], list[Tuple[str, str]],
                                       Optional[DeflateParams]]]:
    """Parse and validate the server's response head at the start of ``data``.
    ``deflate``: the settings permessage-deflate was offered with, if it was.
    Returns None if the head is not complete yet (no blank line); else
    (head_length, selected_subprotocol_or_None, headers, deflate agreement or
    None).  Bytes after
    head_length belong to the WebSocket stream.  Raises HandshakeError
    (status = the response's status code, or 0 if unparsable) when the
    status is not 101, a header is missing or wrong, the accept value does
    not match, the subprotocol or an extension was not offered, or the
    permessage-deflate answer does not fit the offer (RFC 7692 section 7.1)."""

# permessage-deflate negotiation.
def negotiate_deflate(headers: Sequence[Tuple[str, str]], settings: DeflateParams
                      ) -> Optional[Tuple[str, DeflateParams]]:
    """Server side: the first acceptable permessage-deflate offer among the
    request's Sec-WebSocket-Extensions ``headers``, under ``settings``: None
    (none acceptable: answer without the extension) or (the response header's
    value, the agreement).  HandshakeError (400) for a malformed header."""

def deflate_offer(settings: DeflateParams) -> str:
    """Client side: the Sec-WebSocket-Extensions value offering the extension."""

def parse_request(data: Buffer, max_size: int = 65536
                  ) -> Optional[Tuple[int, str, str, str, list[Tuple[str, str]]]]:
    """Parse an HTTP request head.  None if incomplete; else (head_length,
    method, target, http_version, headers).  HandshakeError(status 400, or 431
    if the head exceeds max_size) when malformed."""

# Frames encoded once, for broadcast.
def encode_frame(opcode: int, data: Union[str, Buffer], mask: bool = False) -> bytes:
    """One complete final frame (FIN set) with the given opcode."""

def fanout(frame: Buffer, fds: Sequence[int]) -> List[Tuple[int, int]]:
    """Write ``frame`` to every descriptor with non-blocking sends; for each
    that did not take all of it: (its index, the bytes it took, or -errno
    if its first send failed)."""

# Building blocks, exposed for tests and vectors.
def sha1(data: Buffer) -> bytes: ...
def b64encode(data: Buffer) -> bytes: ...
def utf8_valid(data: Buffer) -> bool: ...


#: The method names the binding calls on Python objects: ``start``/``stop`` on
#: a gevent watcher, ``switch`` on a greenlet and on gevent's hub (see
#: ``Protocol.read_message``).  None belongs to pyws's own Python layer.
CALLED_NAMES: Tuple[str, ...]
