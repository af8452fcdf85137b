"""The UTF-8 test sequences of cases 6.5.x - 6.23.x, after Markus Kuhn's
UTF-8 decoder stress test (https://www.cl.cam.ac.uk/~mgk25/ucs/examples/UTF-8-test.txt),
in the catalog's order so that the n-th sequence of group g is case 6.g.n.

``GROUPS`` is a list of (group number, title, [(valid, bytes), ...]).
Validity is that of RFC 3629 UTF-8 (noncharacters such as U+FFFE are valid;
surrogates, overlong forms and code points above U+10FFFF are not).
"""
from __future__ import annotations

from typing import List, Tuple

Sequence = Tuple[bool, bytes]

# Greek "kosme": ce ba e1 bd b9 cf 83 ce bc ce b5
KOSME = "\u03ba\u1f79\u03c3\u03bc\u03b5".encode("utf-8")
assert KOSME == b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8", "strict")  # Python's decoder follows RFC 3629
        return True
    except UnicodeDecodeError:
        return False


def _groups() -> List[Tuple[int, str, List[Sequence]]]:
    g: List[Tuple[str, List[Sequence]]] = []

    g.append(("Some valid UTF-8 sequences", [
        (True, b"hello\x24world"),
        (True, b"hello\xc2\xa2world"),
        (True, b"hello\xe2\x82\xacworld"),
        (True, b"hello\xf0\xa4\xad\xa2world"),
        (True, KOSME),
    ]))

    g.append(("All prefixes of a valid UTF-8 string with multi-byte code points",
              [(_is_utf8(KOSME[:i]), KOSME[:i]) for i in range(1, len(KOSME) + 1)]))

    g.append(("First possible sequence of a certain length", [
        (True, b"\x00"), (True, b"\xc2\x80"), (True, b"\xe0\xa0\x80"),
        (True, b"\xf0\x90\x80\x80"),
    ]))

    g.append(("First possible sequence of length 5/6 (invalid code points)", [
        (False, b"\xf8\x88\x80\x80\x80"), (False, b"\xfc\x84\x80\x80\x80\x80"),
    ]))

    g.append(("Last possible sequence of a certain length", [
        (True, b"\x7f"), (True, b"\xdf\xbf"), (True, b"\xef\xbf\xbf"),
        (True, b"\xf4\x8f\xbf\xbf"),
    ]))

    g.append(("Last possible sequence of length 4/5/6 (invalid code points)", [
        (False, b"\xf7\xbf\xbf\xbf"), (False, b"\xfb\xbf\xbf\xbf\xbf"),
        (False, b"\xfd\xbf\xbf\xbf\xbf\xbf"),
    ]))

    g.append(("Other boundary conditions", [
        (True, b"\xed\x9f\xbf"), (True, b"\xee\x80\x80"), (True, b"\xef\xbf\xbd"),
        (True, b"\xf4\x8f\xbf\xbf"), (False, b"\xf4\x90\x80\x80"),
    ]))

    g.append(("Unexpected continuation bytes", [
        (False, b"\x80"), (False, b"\xbf"), (False, b"\x80\xbf"),
        (False, b"\x80\xbf\x80"), (False, b"\x80\xbf\x80\xbf"),
        (False, b"\x80\xbf\x80\xbf\x80"), (False, b"\x80\xbf\x80\xbf\x80\xbf"),
        # 0x80 .. 0xbe (the catalog's range stops before 0xbf)
        (False, bytes(range(0x80, 0xbf))),
    ]))

    # Each lead byte of a range followed by a space; the ranges stop before
    # their last byte, as in the catalog.
    g.append(("Lonely start characters", [
        (False, b"".join(bytes((b, 0x20)) for b in range(lo, hi)))
        for lo, hi in [(0xc0, 0xdf), (0xe0, 0xef), (0xf0, 0xf7), (0xf8, 0xfb), (0xfc, 0xfd)]
    ]))

    truncated = [b"\xc0", b"\xe0\x80", b"\xf0\x80\x80", b"\xf8\x80\x80\x80",
                 b"\xfc\x80\x80\x80\x80", b"\xdf", b"\xef\xbf", b"\xf7\xbf\xbf",
                 b"\xfb\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf"]
    g.append(("Sequences with last continuation byte missing",
              [(False, t) for t in truncated]))

    g.append(("Concatenation of incomplete sequences", [(False, b"".join(truncated))]))

    g.append(("Impossible bytes", [
        (False, b"\xfe"), (False, b"\xff"), (False, b"\xfe\xfe\xff\xff"),
    ]))

    g.append(("Examples of an overlong ASCII character", [
        (False, b"\xc0\xaf"), (False, b"\xe0\x80\xaf"), (False, b"\xf0\x80\x80\xaf"),
        (False, b"\xf8\x80\x80\x80\xaf"), (False, b"\xfc\x80\x80\x80\x80\xaf"),
    ]))

    g.append(("Maximum overlong sequences", [
        (False, b"\xc1\xbf"), (False, b"\xe0\x9f\xbf"), (False, b"\xf0\x8f\xbf\xbf"),
        (False, b"\xf8\x87\xbf\xbf\xbf"), (False, b"\xfc\x83\xbf\xbf\xbf\xbf"),
    ]))

    g.append(("Overlong representation of the NUL character", [
        (False, b"\xc0\x80"), (False, b"\xe0\x80\x80"), (False, b"\xf0\x80\x80\x80"),
        (False, b"\xf8\x80\x80\x80\x80"), (False, b"\xfc\x80\x80\x80\x80\x80"),
    ]))

    g.append(("Single UTF-16 surrogates", [
        (False, b"\xed\xa0\x80"), (False, b"\xed\xad\xbf"), (False, b"\xed\xae\x80"),
        (False, b"\xed\xaf\xbf"), (False, b"\xed\xb0\x80"), (False, b"\xed\xbe\x80"),
        (False, b"\xed\xbf\xbf"),
    ]))

    highs = [b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80", b"\xed\xaf\xbf"]
    g.append(("Paired UTF-16 surrogates", [
        (False, h + low) for h in highs for low in (b"\xed\xb0\x80", b"\xed\xbf\xbf")
    ]))

    nonchars: List[Sequence] = [(True, b"\xef\xbf\xbe"), (True, b"\xef\xbf\xbf")]
    for z1 in b"\xf0\xf1\xf2\xf3\xf4":
        for z2 in b"\x8f\x9f\xaf\xbf":
            if z1 == 0xf4 and z2 != 0x8f:
                continue  # above U+10FFFF
            for z3 in b"\xbe\xbf":
                seq = bytes((z1, z2, 0xbf, z3))
                if seq in (b"\xf0\x8f\xbf\xbe", b"\xf0\x8f\xbf\xbf"):
                    continue  # overlong
                nonchars.append((True, seq))
    g.append(("Noncharacter code points (valid UTF-8)", nonchars))

    g.append(("Unicode specials (i.e. replacement char)", [
        (True, b"\xef\xbf\xb9"), (True, b"\xef\xbf\xba"), (True, b"\xef\xbf\xbb"),
        (True, b"\xef\xbf\xbc"), (True, b"\xef\xbf\xbd"), (True, b"\xef\xbf\xbe"),
        (True, b"\xef\xbf\xbf"),
    ]))

    groups = [(5 + i, title, seqs) for i, (title, seqs) in enumerate(g)]
    # The validity flags above are hand-written; they must agree with a
    # strict decoder, or the suite itself is wrong.
    for _, title, seqs in groups:
        for valid, seq in seqs:
            assert valid == _is_utf8(seq), (title, seq)
    return groups


GROUPS = _groups()
assert [n for n, _, _ in GROUPS] == list(range(5, 24))
