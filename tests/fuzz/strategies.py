"""Hypothesis strategies shared by the fuzz tests: seed mutation, RADIUS framing, and the
example budget.

``NETD_FUZZ=fuzz`` multiplies every test's examples by 50 (``NETD_FUZZ_SCALE`` sets any
factor) for a long hunt; the default, ``ci``, keeps tests/fuzz near half a minute.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from daemons.radius.codec import HEADER, hmac_md5, request_authenticator, response_authenticator

_PROFILE = os.environ.get("NETD_FUZZ", "ci")
SCALE = float(os.environ.get("NETD_FUZZ_SCALE", "50" if _PROFILE == "fuzz" else "1"))


def budget(examples: int) -> settings:
    """Settings for a fuzz test: ``examples`` scaled by the profile, no deadline (the
    machine is shared and noisy), no database of failures kept between runs."""
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# Values that break parsers: boundaries of lengths and counts.
_INTERESTING = (0x00, 0x01, 0x02, 0x03, 0x04, 0x10, 0x11, 0x12, 0x7F, 0x80, 0xFE, 0xFF)


@st.composite
def mutated(draw: st.DrawFn, seeds: Sequence[bytes], max_ops: int = 6) -> bytes:
    """A seed with a few byte-level mutations: flips, interesting bytes, insertions,
    deletions, duplicated or swapped slices, truncation."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, max_ops))):
        op = draw(st.integers(0, 7))
        n = len(data)
        pos = draw(st.integers(0, n)) if n else 0
        if op == 0 and n:
            data[min(pos, n - 1)] ^= 1 << draw(st.integers(0, 7))
        elif op == 1 and n:
            data[min(pos, n - 1)] = draw(st.sampled_from(_INTERESTING))
        elif op == 2:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == 3 and n:
            end = draw(st.integers(pos, min(n, pos + 32)))
            del data[pos:end]
        elif op == 4 and n:
            end = draw(st.integers(pos, min(n, pos + 64)))
            data[pos:pos] = data[pos:end]
        elif op == 5:
            del data[pos:]
        elif op == 6 and n > 1:
            other = draw(st.integers(0, n - 1))
            data[pos : pos + 1], data[other : other + 1] = (
                data[other : other + 1],
                data[pos : pos + 1],
            )
        elif op == 7:
            data[pos:pos] = draw(st.sampled_from(_INSERTS))
    return bytes(data)


# Fragments that make XML, BER and RADIUS parsers take other branches.
_INSERTS = (
    b"<",
    b">",
    b"</",
    b"&amp;",
    b"&#0;",
    b"&#x110000;",
    b"]]>",
    b"<![CDATA[",
    b"<?xml version='1.0' encoding='latin-1'?>",
    b'xmlns:cwmp="urn:dslforum-org:cwmp-1-4"',
    b'xsi:type="xsd:int"',
    b"<Value>9" + b"9" * 40 + b"</Value>",
    b"\xff\xfe",
    b"\x00",
    b"\x1a\x0c\x00\x00\x017\x01\x06abcd",  # a Microsoft VSA
    b"\x4f\x06\x02\x01\x00\x05",  # EAP-Message
    b"\x50\x12" + bytes(16),  # Message-Authenticator
    b"\x30\x80",  # BER indefinite length
    b"\x02\x09\x00\xff\xff\xff\xff\xff\xff\xff\xff",  # a large BER integer
    b"\x06\x00",
)


def radius_frame(code: int, ident: int, auth: bytes, attrs: Sequence[tuple[int, bytes]]) -> bytes:
    """A packet whose header length is right, whatever the attributes hold."""
    body = b"".join(bytes((t, len(v) + 2)) + v for t, v in attrs)
    return struct.pack("!BBH", code, ident, HEADER + len(body)) + auth + body


def fix_length(data: bytes) -> bytes:
    """``data`` with its RADIUS length field set to its size (past the header check)."""
    if len(data) < HEADER:
        return data
    return data[:2] + struct.pack("!H", min(len(data), 0xFFFF)) + data[4:]


def resign(data: bytes, secret: bytes, request_auth: bytes | None = None) -> bytes:
    """Recompute a packet's Message-Authenticator (if it has a well-placed one) and, for an
    accounting-style request or a reply, its authenticator, so that a mutated packet is
    accepted by the signature checks and reaches the parsers behind them."""
    raw = bytearray(data)
    if len(raw) < HEADER:
        return data
    pos = HEADER
    while pos + 2 <= len(raw):
        atype, alen = raw[pos], raw[pos + 1]
        if alen < 2:
            break
        if atype == 80 and alen == 18 and pos + 18 <= len(raw):
            raw[pos + 2 : pos + 18] = bytes(16)
            if request_auth is not None:
                raw[4:HEADER] = request_auth
            raw[pos + 2 : pos + 18] = hmac_md5(secret, bytes(raw))
            break
        pos += alen
    if request_auth is not None:
        raw[4:HEADER] = response_authenticator(bytes(raw), request_auth, secret)
    elif raw[0] in (4, 40, 43):
        raw[4:HEADER] = request_authenticator(bytes(raw), secret)
    return bytes(raw)


attr_values = st.one_of(
    st.binary(max_size=20),
    st.binary(min_size=250, max_size=253),
    st.sampled_from([b"", bytes(4), b"\xff" * 4, bytes(16), b"\x01" * 17, bytes(18), bytes(50)]),
)
# The attribute types the engines read, weighted over the rest.
_KNOWN_TYPES = (1, 2, 3, 4, 5, 8, 24, 25, 26, 31, 33, 40, 41, 42, 43, 44, 46, 47, 48, 49)
_KNOWN_TYPES += (52, 53, 55, 60, 64, 69, 79, 80, 87, 101)
attr_types = st.one_of(st.sampled_from(_KNOWN_TYPES), st.integers(0, 255))


@st.composite
def vsa_value(draw: st.DrawFn) -> bytes:
    """A Vendor-Specific value: a vendor the dictionaries know (or any), sub-attributes whose
    length octets are sometimes wrong."""
    vendor = draw(
        st.one_of(
            st.sampled_from([311, 9, 14988, 2011, 4874, 2352, 14122]), st.integers(0, 2**32 - 1)
        )
    )
    out = vendor.to_bytes(4, "big")
    for _ in range(draw(st.integers(0, 4))):
        vtype = draw(
            st.one_of(st.sampled_from([1, 2, 11, 12, 16, 17, 25, 26]), st.integers(0, 255))
        )
        value = draw(st.binary(max_size=60))
        vlen = draw(st.one_of(st.just(len(value) + 2), st.integers(0, 255)))
        out += bytes((vtype, vlen)) + value
    return out[:253]


attributes = st.lists(
    st.one_of(st.tuples(attr_types, attr_values), st.tuples(st.just(26), vsa_value())),
    max_size=12,
)
