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
import ipaddress
import json
import struct
import time
from dataclasses import asdict
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from daemons.core.config import DatabaseConfig
from daemons.core.policies import load_policies
from daemons.radius import acct, coa, eap, mschap
from daemons.radius.auth import (
    MICROSOFT,
    EngineConfig,
    HashCheck,
    Nas,
    Outcome,
    Subscriber,
    authenticate,
    method_of,
    user_name,
)
from daemons.radius.codec import (
    HEADER,
    Attr,
    Code,
    DecodeError,
    Packet,
    check_message_authenticator,
    check_request_authenticator,
    decode,
    encode_reply,
    encode_request,
    iter_vsa,
    salt_decrypt,
    unhide_password,
)
from daemons.radius.dictionary import Dictionary
from daemons.radius.policy import load_policy
from daemons.store import accounting
from daemons.store.pg import create_pool
from tests.fuzz import seeds
from tests.fuzz.strategies import (
    attributes,
    budget,
    fix_length,
    mutated,
    radius_frame,
    resign,
)

REPO = Path(__file__).resolve().parents[2]
DICT = Dictionary()
CFG = EngineConfig(DICT, load_policy(load_policies(REPO / "policies", 1), DICT), b"k" * 32, 30)
SECRET = seeds.SECRET
NOW = 1_800_000_000.0
NASES = (
    seeds.NAS,
    Nas("fuzz-huawei", ipaddress.ip_network("127.0.0.1/32"), SECRET, "huawei", True),
)
SUBSCRIBERS = (
    None,
    Subscriber("alice", "fiber-100", password=b"arctangent"),
    Subscriber("alice", "default", mac="aa:bb:cc:dd:ee:ff", nt_hash=mschap.md4(b"x")),
    Subscriber("alice", "fiber-1000", state="suspended", password=b"arctangent"),
    Subscriber("alice", "no-such-plan", state="disabled", password=b"arctangent"),
    Subscriber("alice", "default", password_hash="$5$rounds=1000$salt$x"),
)
# A valid EAP-MD5 State for the seeds' EAP response (identifier 2), to reach the MD5 check.
_STATE = eap.make_state(
    CFG.eap_key, eap.Md5State(int(NOW) + 30, 2, bytes(16)), b"alice", "fuzz-nas"
)


def _rand(n: int) -> bytes:
    return bytes(range(n))


def receive(data: bytes) -> Packet | None:
    """Everything the daemon does with a datagram, in order, the stores left out.
    Returns the packet if it decoded. Only DecodeError may escape a step."""
    try:
        pkt = decode(data)
    except DecodeError:
        return None
    # Round trip: the frame is the header and the attributes, in order, and decodes again.
    body = b"".join(bytes((t, len(v) + 2)) + v for t, v in pkt.attributes)
    assert pkt.raw == struct.pack("!BBH", pkt.code, pkt.identifier, len(pkt.raw)) + (
        pkt.authenticator + body
    )
    assert decode(pkt.raw) == pkt
    for required in (False, True):
        with contextlib.suppress(DecodeError):
            check_message_authenticator(pkt, SECRET, required)
    with contextlib.suppress(DecodeError):
        check_request_authenticator(pkt, SECRET)
    for t, value in pkt.attributes:
        if t == Attr.VENDOR_SPECIFIC:
            for vendor, vtype, sub in iter_vsa(value):
                assert vendor < 2**32 and 0 <= vtype < 256 and len(sub) <= 253 - 6
                if (vendor, vtype) in ((MICROSOFT, 16), (MICROSOFT, 17)):
                    _salted(sub)
        elif t == 69:  # Tunnel-Password: a tag, then the salt-encrypted value
            _salted(value[1:])
    _hidden(pkt)
    _eap(pkt)
    _accounting(pkt)
    _access(pkt)
    return pkt


def _salted(value: bytes) -> None:
    try:
        plain = salt_decrypt(value, SECRET, bytes(16))
    except DecodeError:
        return
    assert len(plain) <= len(value) - 3


def _hidden(pkt: Packet) -> None:
    hidden = pkt.get(Attr.USER_PASSWORD)
    if hidden is None:
        return
    try:
        password = unhide_password(hidden, SECRET, pkt.authenticator)
    except DecodeError:
        return
    assert len(password) <= len(hidden)


def _eap(pkt: Packet) -> None:
    try:
        packet = eap.eap_from_radius(pkt)
    except DecodeError:
        return
    if packet is None:
        assert pkt.get(Attr.EAP_MESSAGE) is None
        return
    joined = b"".join(pkt.get_all(Attr.EAP_MESSAGE))
    if packet.type is not None:  # Success/Failure carry no data: the rest is not kept
        assert packet.encode() == joined  # round trip
    assert b"".join(v for _, v in eap.eap_attributes(packet)) == packet.encode()
    try:
        value = eap.md5_response_value(packet)
        assert len(value) == 16
    except DecodeError:
        pass
    eap.open_state(CFG.eap_key, pkt.get(Attr.STATE) or b"", b"alice", "fuzz-nas", NOW)


def _accounting(pkt: Packet) -> None:
    try:
        record = acct.parse(pkt, "fuzz-nas", DICT, NOW)
    except DecodeError:
        return
    # What the ledger and the spool store: text PostgreSQL accepts (no NUL), JSON.
    row = asdict(record)
    for value in row.values():
        if isinstance(value, str):
            assert "\0" not in value
            value.encode("utf-8")
    doc = json.dumps(record.attributes, default=str)
    assert "\\u0000" not in doc
    json.dumps(row, default=str)
    assert 0 <= record.input_octets < 2**64 and 0 <= record.output_octets < 2**64


def _access(pkt: Packet) -> None:
    try:
        name = user_name(pkt)
    except DecodeError:
        return
    assert name is None or "\0" not in name
    method_of(pkt)
    for i, sub in enumerate(SUBSCRIBERS):
        nas = NASES[i % 2]
        try:
            outcome = authenticate(pkt, nas, sub, i % 3, CFG, NOW, _rand)
            if isinstance(outcome, HashCheck):  # the service verifies the hash, then again
                outcome = authenticate(pkt, nas, sub, 0, CFG, NOW, _rand, hash_ok=True)
        except DecodeError:
            continue
        assert isinstance(outcome, Outcome)
        _reply(pkt, nas, outcome)


def _reply(pkt: Packet, nas: Nas, outcome: Outcome) -> None:
    """What the service sends: the reply attributes encoded, the packet framed and signed.
    A reply that cannot fit is a ValueError the service counts as a drop."""
    attrs = DICT.encode(outcome.attributes, nas.secret, pkt.authenticator, _rand)
    try:
        raw = encode_reply(outcome.code, pkt, [*attrs, *outcome.raw], nas.secret)
    except ValueError:
        return
    reply = decode(raw)
    assert reply.code == outcome.code and reply.identifier == pkt.identifier


# --- the properties ------------------------------------------------------------------------


@budget(500)
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    receive(data)
    receive(fix_length(data))


@budget(1000)
@given(mutated(seeds.radius_packets()), st.booleans())
@example(seeds.radius_packets()[0], False)
def test_mutated_packets(data: bytes, sign: bool) -> None:
    if sign:
        data = resign(fix_length(data), SECRET)
    receive(data)


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
        attrs[-1] = (Attr.STATE, _STATE)
    data = radius_frame(code, ident, bytes(16), attrs)
    if len(data) <= 4096:
        receive(resign(data, SECRET))


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
