"""The accounting parser, in memory: keys, 64-bit counters, event time, malformed input."""

from __future__ import annotations

import struct

import pytest

from daemons.radius import acct
from daemons.radius.codec import Attr, Code, DecodeError, decode, encode_request
from daemons.radius.dictionary import Dictionary

DICT = Dictionary()
SECRET = b"s"


def u32(value: int) -> bytes:
    return struct.pack("!I", value)


def record(*attrs: tuple[int, bytes], now: float = 1_800_000_000.0) -> acct.AcctRecord:
    pkt = decode(encode_request(Code.ACCOUNTING_REQUEST, 1, list(attrs), SECRET))
    return acct.parse(pkt, "bng1", DICT, now)


def test_keys_survive_retransmission() -> None:
    base = (
        (acct.STATUS_TYPE, u32(3)),
        (acct.SESSION_ID, b"s1"),
        (Attr.USER_NAME, b"u"),
        (acct.SESSION_TIME, u32(300)),
    )
    first = record(*base, now=1000.0)
    again = record(*base, (acct.DELAY_TIME, u32(5)), now=1005.0)
    assert first.idem_key == again.idem_key and first.event_time == again.event_time
    later = record(
        (acct.STATUS_TYPE, u32(3)), (acct.SESSION_ID, b"s1"), (acct.SESSION_TIME, u32(600))
    )
    assert later.idem_key != first.idem_key and later.unique_id == first.unique_id
    start = record((acct.STATUS_TYPE, u32(1)), (acct.SESSION_ID, b"s1"))
    assert start.idem_key != first.idem_key


def test_gigawords_event_timestamp_and_attributes() -> None:
    r = record(
        (acct.STATUS_TYPE, u32(2)),
        (acct.SESSION_ID, b"s2"),
        (acct.INPUT_OCTETS, u32(7)),
        (acct.INPUT_GIGAWORDS, u32(3)),
        (acct.OUTPUT_OCTETS, u32(1)),
        (acct.EVENT_TIMESTAMP, u32(1_700_000_000)),
        (Attr.FRAMED_IP_ADDRESS, bytes((100, 64, 0, 1))),
        (acct.TERMINATE_CAUSE, u32(1)),
    )
    assert r.input_octets == (3 << 32) + 7 and r.output_octets == 1
    assert r.event_time == 1_700_000_000 and r.framed_ip == "100.64.0.1"
    assert r.attributes["Acct-Terminate-Cause"] == "User-Request"  # as FreeRADIUS prints it
    assert r.attributes["Framed-IP-Address"] == "100.64.0.1"


@pytest.mark.parametrize(
    "attrs",
    [
        ((Attr.USER_NAME, b"u"),),  # no Acct-Status-Type
        ((acct.STATUS_TYPE, u32(1)),),  # Start without a session
        ((acct.STATUS_TYPE, b"\x00\x01"), (acct.SESSION_ID, b"x")),  # 2-octet integer
    ],
)
def test_malformed(attrs: tuple[tuple[int, bytes], ...]) -> None:
    with pytest.raises(DecodeError):
        record(*attrs)


def test_accounting_on_has_no_session() -> None:
    r = record((acct.STATUS_TYPE, u32(7)))
    assert r.unique_id == "" and not r.is_session_event
