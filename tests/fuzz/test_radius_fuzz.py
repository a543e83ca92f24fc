"""Hostile RADIUS input: any datagram, through every decoder the daemon runs on it.

The property: whatever the bytes, each step either gives its value or raises the codec's
own ``DecodeError`` (a silent discard); nothing else escapes. A packet that decodes frames
back to the same bytes. Inputs are mutated seeds (RFC 2865 examples, radtest captures,
requests of every method), well-framed packets of arbitrary attributes, and plain random
bytes; mutated packets are re-signed half the time, so that they pass the authenticator
checks and reach the engines behind them.
"""

from __future__ import annotations

import contextlib
import json
import struct
import time

from hypothesis import example, given, settings
from hypothesis import strategies as st

from daemons.core.config import DatabaseConfig
from daemons.radius import acct, coa, eap_inner
from daemons.radius.auth import user_name
from daemons.radius.codec import (
    HEADER,
    Attr,
    Code,
    DecodeError,
    Packet,
    decode,
    encode_request,
)
from daemons.store import accounting
from daemons.store.pg import create_pool
from tests.fuzz import seeds
from tests.fuzz.eap_paths import eap_tls_receive
from tests.fuzz.eap_paths import seed as eap_seed
from tests.fuzz.paths import DICT, NOW, SECRET, STATE, radius_receive
from tests.fuzz.strategies import (
    attributes,
    budget,
    fix_length,
    mutated,
    radius_frame,
    resign,
)

# --- the properties ------------------------------------------------------------------------


@budget(500)
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    radius_receive(data)
    radius_receive(fix_length(data))


@budget(1000)
@given(mutated(seeds.radius_packets()), st.booleans())
@example(seeds.radius_packets()[0], False)
def test_mutated_packets(data: bytes, sign: bool) -> None:
    if sign:
        data = resign(fix_length(data), SECRET)
    radius_receive(data)


@budget(500)
@given(
    st.sampled_from([1, 4, 12, 40, 43, 2, 11]),
    st.integers(0, 255),
    attributes,
    st.booleans(),
)
def test_framed_attributes(code: int, ident: int, attrs: list[tuple[int, bytes]], ma: bool) -> None:
    """Well-framed packets of arbitrary attributes (VSAs with sub-attributes of any length,
    odd sizes of the integers and hidden values), correctly signed: the engines see them."""
    if ma:
        attrs = [(Attr.MESSAGE_AUTHENTICATOR, bytes(16)), *attrs]
    if code == Code.ACCESS_REQUEST and attrs and attrs[-1][0] == Attr.STATE:
        attrs[-1] = (Attr.STATE, STATE)
    data = radius_frame(code, ident, bytes(16), attrs)
    if len(data) <= 4096:
        radius_receive(resign(data, SECRET))


@budget(300)
@given(mutated(seeds.radius_packets()), st.sampled_from(["disconnect", "coa"]), st.booleans())
def test_coa_replies(data: bytes, kind: str, sign: bool) -> None:
    """A NAS's answer to our Disconnect/CoA-Request: a result or None, never an exception."""
    request = encode_request(
        Code.DISCONNECT_REQUEST if kind == "disconnect" else Code.COA_REQUEST,
        7,
        [(Attr.USER_NAME, b"alice")],
        SECRET,
    )
    data = fix_length(data)
    if len(data) >= HEADER:
        data = data[:1] + request[1:2] + data[2:]  # the request's identifier
    if sign:
        data = resign(data, SECRET, request[4:HEADER])
    result = coa.read_reply(data, request, SECRET)
    assert result is None or result.result in ("ack", "nak")


# --- regressions: inputs the fuzzing found -------------------------------------------------


def _acct_request(*attrs: tuple[int, bytes]) -> Packet:
    status = (acct.STATUS_TYPE, struct.pack("!I", acct.AcctStatus.START))
    return decode(encode_request(Code.ACCOUNTING_REQUEST, 1, [status, *attrs], SECRET))


NUL_RECORD = (
    (acct.SESSION_ID, b"sess\x00-1\x00"),
    (Attr.USER_NAME, b"al\x00ice"),
    (acct.NAS_PORT_ID, b"\x00"),
    (30, b"called\x00station"),  # Called-Station-Id, a string in the dictionary
    (Attr.CLASS, b"\xff\x00"),
)


def test_nul_in_accounting_text_is_not_stored() -> None:
    """A NUL in a text attribute of an Accounting-Request reached the ledger's text and
    JSONB columns, which PostgreSQL refuses: the whole batch failed, was spooled as if
    PostgreSQL were down, and its replay failed the same way for ever."""
    record = acct.parse(_acct_request(*NUL_RECORD), "nas", DICT, NOW)
    assert record.acct_session_id == "sess\ufffd-1"  # C-string padding dropped
    assert record.username == "al\ufffdice"
    assert record.attributes["Called-Station-Id"] == "0x" + b"called\x00station".hex()
    assert "\\u0000" not in json.dumps(record.attributes)


def test_nul_in_user_name_is_dropped() -> None:
    """A User-Name with a NUL failed the PostgreSQL lookup of every uncached subscriber in
    its batch (all dropped as a store error); now that request alone is discarded."""
    pkt = decode(encode_request(Code.ACCESS_REQUEST, 1, [(1, b"bob\x00")], SECRET, bytes(16)))
    try:
        user_name(pkt)
    except DecodeError as exc:
        assert exc.reason.value == "malformed"
    else:
        raise AssertionError("a User-Name with a NUL was accepted")


async def test_hostile_accounting_records_reach_the_ledger(migrated: str) -> None:
    """The record of the NUL regression goes into the real ledger with the others of its
    batch (it failed the batch before the fix)."""
    good = acct.parse(_acct_request((acct.SESSION_ID, b"good-1")), "nas", DICT, time.time())
    bad = acct.parse(_acct_request(*NUL_RECORD), "nas", DICT, time.time())
    pool = await create_pool(DatabaseConfig(), migrated, "fuzz")
    try:
        await accounting.ensure_partitions(pool, time.time())
        await accounting.append_accounting(pool, [good, bad])
        ids = await pool.fetch("SELECT acct_session_id FROM accounting_events ORDER BY 1")
        assert [r[0] for r in ids] == ["good-1", "sess\ufffd-1"]
    finally:
        await pool.close()


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=3000))
@example(eap_seed())
def test_eap_tls_engine_takes_any_bytes(data: bytes) -> None:
    """EAP-TLS/PEAP/TTLS Type-Data, any bytes over up to four rounds: a Challenge, a
    Reject or a drop; an ended exchange is released (issue 29)."""
    eap_tls_receive(data)


@given(st.binary(max_size=600))
def test_tunnelled_parsers_take_any_bytes(data: bytes) -> None:
    """What PEAP and TTLS decrypt: AVPs, EAP-MSCHAPv2 and the Result TLV parse or raise
    DecodeError, nothing else (issue 29)."""
    try:
        avps = eap_inner.parse_avps(data)
        assert len(avps) <= eap_inner.MAX_AVPS
        rebuilt = b"".join(eap_inner.encode_avp(a.code, a.data, a.vendor) for a in avps)
        assert [(a.code, a.vendor, a.data) for a in eap_inner.parse_avps(rebuilt)] == [
            (a.code, a.vendor, a.data) for a in avps
        ]
    except DecodeError:
        pass
    with contextlib.suppress(DecodeError):
        resp = eap_inner.parse_mschapv2_response(data)
        assert len(resp.peer_challenge) == 16 and len(resp.nt_response) == 24
    assert eap_inner.parse_result_tlv(data) in (None, *range(65536))
