"""SHA-1 (FIPS 180) and base64 (RFC 4648) building blocks of pyws._core."""
from __future__ import annotations

import base64
import hashlib
import random

import pytest

from pyws import _core
from tests.vectors import BASE64_VECTORS, RFC_ACCEPT, RFC_KEY, SHA1_VECTORS


@pytest.mark.parametrize("data,digest", SHA1_VECTORS,
                         ids=["abc", "empty", "448-bit", "million-a"])
def test_sha1_matches_fips_180_vectors(data, digest):
    assert _core.sha1(data) == bytes.fromhex(digest)


def test_sha1_returns_20_bytes():
    out = _core.sha1(b"abc")
    assert type(out) is bytes
    assert len(out) == 20


@pytest.mark.parametrize("n", list(range(0, 130)) + [1000, 4095, 4096, 4097, 65537])
def test_sha1_matches_hashlib_for_every_padding_boundary(n):
    data = bytes((i * 7 + n) & 0xFF for i in range(n))
    assert _core.sha1(data) == hashlib.sha1(data).digest()


def test_sha1_accepts_bytearray_and_memoryview():
    data = b"The quick brown fox jumps over the lazy dog"
    expected = bytes.fromhex("2fd4e1c67a2d28fced849ee1bb76e7391b93eb12")
    assert _core.sha1(bytearray(data)) == expected
    assert _core.sha1(memoryview(data)) == expected
    assert _core.sha1(memoryview(b"xx" + data + b"yy")[2:-2]) == expected


def test_sha1_rejects_str():
    with pytest.raises(TypeError):
        _core.sha1("abc")


@pytest.mark.parametrize("data,encoded", BASE64_VECTORS,
                         ids=[repr(d.decode()) for d, _ in BASE64_VECTORS])
def test_b64encode_matches_rfc_4648_vectors(data, encoded):
    out = _core.b64encode(data)
    assert type(out) is bytes
    assert out == encoded


def test_b64encode_matches_stdlib_for_all_lengths_and_byte_values():
    rng = random.Random(6455)
    for n in range(0, 200):
        data = bytes(rng.randrange(256) for _ in range(n))
        assert _core.b64encode(data) == base64.b64encode(data), n
    every_byte = bytes(range(256)) * 3
    assert _core.b64encode(every_byte) == base64.b64encode(every_byte)


def test_b64encode_accepts_bytearray_and_memoryview():
    assert _core.b64encode(bytearray(b"foobar")) == b"Zm9vYmFy"
    assert _core.b64encode(memoryview(b"foobar")) == b"Zm9vYmFy"


def test_sha1_then_base64_gives_the_rfc_6455_accept_value():
    digest = _core.sha1(RFC_KEY.encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
    assert _core.b64encode(digest) == RFC_ACCEPT.encode()
