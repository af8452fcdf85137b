"""Byte-exact test vectors from the standards.

RFC 6455 (WebSocket) section 1.3 and 5.7, FIPS 180 (SHA-1) and RFC 4648
section 10 (base64).
"""
from __future__ import annotations

# RFC 6455 section 1.3: the opening handshake sample.
RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

# RFC 6455 section 1.3 / 4.1: the client's sample handshake headers.
RFC_REQUEST_HEADERS = [
    ("Host", "server.example.com"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", RFC_KEY),
    ("Origin", "http://example.com"),
    ("Sec-WebSocket-Protocol", "chat, superchat"),
    ("Sec-WebSocket-Version", "13"),
]

# RFC 6455 section 5.7: examples.
HELLO = b"Hello"
MASK_KEY = bytes.fromhex("37fa213d")
# A single-frame unmasked text message.
TEXT_HELLO_UNMASKED = bytes.fromhex("81 05 48 65 6c 6c 6f")
# A single-frame masked text message.
TEXT_HELLO_MASKED = bytes.fromhex("81 85 37 fa 21 3d 7f 9f 4d 51 58")
# A fragmented unmasked text message: "Hel" then "lo".
TEXT_HELLO_FRAGMENTED_UNMASKED = (
    bytes.fromhex("01 03 48 65 6c"),
    bytes.fromhex("80 02 6c 6f"),
)
# Unmasked Ping request ("Hello" as body).
PING_HELLO_UNMASKED = bytes.fromhex("89 05 48 65 6c 6c 6f")
# Masked Ping response (a pong with "Hello" as body, matching the ping).
PONG_HELLO_MASKED = bytes.fromhex("8a 85 37 fa 21 3d 7f 9f 4d 51 58")
# 256 bytes binary message in a single unmasked frame: header.
BINARY_256_HEADER = bytes.fromhex("82 7E 0100")
# 64KiB binary message in a single unmasked frame: header.
BINARY_64K_HEADER = bytes.fromhex("82 7F 0000000000010000")

# FIPS 180-2 appendix A / FIPS 180-4 examples for SHA-1.
SHA1_VECTORS = [
    (b"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
    (b"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
    (b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "84983e441c3bd26ebaae4aa1f95129e5e54670f1"),
    (b"a" * 1_000_000, "34aa973cd4c4daa4f61eeb2bdbad27316534016f"),
]

# RFC 4648 section 10: base64 test vectors.
BASE64_VECTORS = [
    (b"", b""),
    (b"f", b"Zg=="),
    (b"fo", b"Zm8="),
    (b"foo", b"Zm9v"),
    (b"foob", b"Zm9vYg=="),
    (b"fooba", b"Zm9vYmE="),
    (b"foobar", b"Zm9vYmFy"),
]
