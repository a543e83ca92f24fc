"""The authentication history's per-request record (issue 21): the optional C extension
``daemons.radius._authlog`` builds exactly the bytes of the pure path (``pure_line``), and
hands back to it whatever needs a text conversion; both paths store the same rows
(tests/radius/test_auth_log.py stores them through PostgreSQL with either)."""

from __future__ import annotations

import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemons.radius import authlog
from daemons.radius.auth import Method, Outcome
from daemons.radius.codec import Code, Packet
from daemons.radius.dictionary import ReplyAttr

NAS_PORT, CALLING, NAS_PORT_ID = 5, 31, 87


def fast() -> authlog._Fast:
    got = authlog.compiled()
    assert got is not None, "daemons.radius._authlog was not built (pip install -e .)"
    return got


def test_the_extension_is_built_here() -> None:
    # The CI machine has a compiler: the C path is the one the daemons use by default.
    fast()


values = st.one_of(
    st.binary(max_size=40),
    st.text(alphabet=st.characters(max_codepoint=0x7E, exclude_characters="\0"), max_size=40).map(
        str.encode
    ),
)
attributes = st.lists(
    st.tuples(st.sampled_from([1, 4, NAS_PORT, CALLING, NAS_PORT_ID, 80, 241]), values),
    max_size=8,
).map(tuple)
times = st.floats(min_value=946_684_800.0, max_value=4_102_444_800.0)
users = st.text(alphabet=st.characters(exclude_characters="\0", exclude_categories=["Cs"]))


@settings(max_examples=2000, deadline=None)
@given(attributes, times, users, st.binary(max_size=64))
def test_the_c_record_is_the_pure_one(
    attrs: tuple[tuple[int, bytes], ...], now: float, user: str, tail: bytes
) -> None:
    got = fast()(attrs, now, user, tail)
    want = authlog.pure_line(attrs, now, user, tail)
    if got is None:
        # Handed back only for what the pure path converts (PostgreSQL's text rules).
        port_id = [v for t, v in attrs if t == NAS_PORT_ID]
        port = [v for t, v in attrs if t == NAS_PORT]
        calling = [v for t, v in attrs if t == CALLING]

        def odd(v: bytes) -> bool:
            return not v.isascii() or b"\0" in v

        assert (
            (port_id and port_id[-1] and odd(port_id[-1]))
            or (not (port_id and port_id[-1]) and port and len(port[-1]) > 8)
            or (calling and calling[-1] and odd(calling[-1]))
        )
    else:
        assert got == want


def test_the_fields_are_where_postgresql_reads_them() -> None:
    attrs = ((NAS_PORT, (70000).to_bytes(4, "big")), (CALLING, b"aa-bb"), (1, b"u"))
    now = 1_700_000_000.25
    got = fast()(attrs, now, "ünï", b"TAIL")
    user = "ünï".encode()
    assert got == b"".join(
        (
            struct.pack("!hiqi", 10, 8, round((now - 946_684_800.0) * 1e6), len(user)),
            user,
            struct.pack("!i", 5) + b"70000",
            struct.pack("!i", 5) + b"aa-bb",
            b"TAIL",
        )
    )
    # NAS-Port-Id wins over NAS-Port; the last of one attribute wins.
    both = ((NAS_PORT_ID, b"a"), (NAS_PORT, b"\x01"), (NAS_PORT_ID, b"olt1/2"))
    assert fast()(both, now, "u", b"") == authlog.pure_line(both, now, "u", b"")
    assert b"olt1/2" in fast()(both, now, "u", b"")  # type: ignore[operator]


@pytest.mark.parametrize(
    "attrs",
    [
        ((NAS_PORT_ID, b"olt\x00"),),
        ((NAS_PORT_ID, b"olt\xff"),),
        ((CALLING, b"\xc3\xa9"),),
        ((NAS_PORT, bytes(9)),),
    ],
)
def test_what_needs_converting_goes_the_pure_way(attrs: tuple[tuple[int, bytes], ...]) -> None:
    assert fast()(attrs, time.time(), "u", b"") is None
    pkt = Packet(Code.ACCESS_REQUEST, 1, bytes(16), attrs, b"")
    outcome = Outcome(Code.ACCESS_REJECT, Method.PAP, "bad_password")
    now = time.time()
    assert authlog.line(pkt, "nas", "u", outcome, now) == authlog.pure_line(
        attrs, now, "u", authlog._TAILS[("nas", Method.PAP, False, "bad_password", "", ())]
    )


def test_bad_arguments_raise_not_crash() -> None:
    line = fast()
    with pytest.raises(TypeError):
        line([(1, b"x")], 1.0, "u", b"")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        line(((NAS_PORT_ID, "text"),), 1.0, "u", b"")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        line(((NAS_PORT_ID,),), 1.0, "u", b"")  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        line((), float("inf"), "u", b"")
    with pytest.raises(UnicodeEncodeError):
        line((), 1.0, "\ud800", b"")


def test_line_without_the_extension_is_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the daemons make with and without the extension: the same bytes."""
    pkt = Packet(
        Code.ACCESS_REQUEST,
        1,
        bytes(16),
        ((1, b"carol"), (NAS_PORT_ID, b"olt7/1/1:42"), (CALLING, b"aa-bb-cc-00-00-07")),
        b"",
    )
    outcome = Outcome(
        Code.ACCESS_ACCEPT,
        Method.PAP,
        "ok",
        (ReplyAttr("Framed-Pool", "fiber"), ReplyAttr("Delegated-IPv6-Prefix", "2001:db8::/56")),
        (),
        "fiber-100",
    )
    now = time.time()
    with_c = authlog.line(pkt, "lo", "carol", outcome, now)
    monkeypatch.setattr(authlog, "_fast", None)
    assert authlog.line(pkt, "lo", "carol", outcome, now) == with_c
