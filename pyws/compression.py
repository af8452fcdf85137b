"""permessage-deflate (RFC 7692) settings.

Servers and ``connect()`` take ``compression=``: True (the default: these
defaults), False (never negotiate it), or a :class:`PerMessageDeflate`.
The negotiation and the compression run in the C engine (zlib).
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

__all__ = ["PerMessageDeflate", "Compression"]

#: What ``compression=`` accepts.
Compression = Union[bool, "PerMessageDeflate", None]

DeflateParams = Tuple[bool, bool, int, int]


class PerMessageDeflate:
    """The permessage-deflate parameters this side asks for.

    - ``server_no_context_takeover`` / ``client_no_context_takeover``: that
      side resets its compressor after each message (less memory kept
      between messages, worse compression).  A server also grants what a
      client offers.
    - ``server_max_window_bits`` / ``client_max_window_bits``: the largest
      LZ77 window (2**bits bytes, 8 to 15) that side may compress with.
      The defaults, 12 (4 KiB), follow the ``websockets`` library's server:
      a compressor then costs about 32 KiB per connection instead of 256.
      A client's window is limited only if the client said it supports the
      parameter (browsers do).
    - ``level`` (0-9, -1: zlib's default) and ``mem_level`` (1-9) tune this
      side's compressor.

    The limit on message size (``max_message_size``) applies to the
    decompressed size, checked as the data is decompressed.
    """

    __slots__ = ("server_no_context_takeover", "client_no_context_takeover",
                 "server_max_window_bits", "client_max_window_bits", "level", "mem_level")

    def __init__(self, *, server_no_context_takeover: bool = False,
                 client_no_context_takeover: bool = False,
                 server_max_window_bits: int = 12, client_max_window_bits: int = 12,
                 level: int = 6, mem_level: int = 5) -> None:
        for name, bits in (("server_max_window_bits", server_max_window_bits),
                           ("client_max_window_bits", client_max_window_bits)):
            if not isinstance(bits, int) or isinstance(bits, bool) or not 8 <= bits <= 15:
                raise ValueError(f"{name} must be an int from 8 to 15, not {bits!r}")
        if not isinstance(level, int) or not -1 <= level <= 9:
            raise ValueError(f"level must be from -1 to 9, not {level!r}")
        if not isinstance(mem_level, int) or not 1 <= mem_level <= 9:
            raise ValueError(f"mem_level must be from 1 to 9, not {mem_level!r}")
        self.server_no_context_takeover = bool(server_no_context_takeover)
        self.client_no_context_takeover = bool(client_no_context_takeover)
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self.level = level
        self.mem_level = mem_level

    def params(self) -> DeflateParams:
        """The four parameters, as the C engine takes them."""
        return (self.server_no_context_takeover, self.client_no_context_takeover,
                self.server_max_window_bits, self.client_max_window_bits)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"PerMessageDeflate({fields})"


def resolve(value: Compression) -> Optional[PerMessageDeflate]:
    """The settings for ``compression=value`` (None: off)."""
    if value is None or value is False:
        return None
    if value is True:
        return PerMessageDeflate()
    if isinstance(value, PerMessageDeflate):
        return value
    raise TypeError(f"compression is True, False or a PerMessageDeflate, not {value!r}")
