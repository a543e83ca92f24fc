"""Accounting-Request → ledger record (RFC 2866, RFC 2869 §5.1-5.3). Pure.

Idempotency: a NAS retransmits with a new Identifier and a larger Acct-Delay-Time, so the
packet bytes differ. The key is what stays the same:
- Start and Stop: NAS, Acct-Session-Id and status (one of each per session);
- Interim-Update: the same plus Acct-Session-Time (successive interims differ in it);
- Accounting-On/Off: NAS, status and the event time to 10 s (they carry no session).
"""

from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from daemons.radius import ledger
from daemons.radius.codec import Attr, DecodeError, DropReason, Packet
from daemons.radius.dictionary import Dictionary


class AcctStatus(IntEnum):
    START = 1
    STOP = 2
    INTERIM_UPDATE = 3
    ACCOUNTING_ON = 7
    ACCOUNTING_OFF = 8


# RFC 2866 §5, RFC 2869 §5.1-5.3, RFC 2865 §5.5
STATUS_TYPE, DELAY_TIME, INPUT_OCTETS, OUTPUT_OCTETS, SESSION_ID = 40, 41, 42, 43, 44
SESSION_TIME, INPUT_PACKETS, OUTPUT_PACKETS, TERMINATE_CAUSE = 46, 47, 48, 49
INPUT_GIGAWORDS, OUTPUT_GIGAWORDS, EVENT_TIMESTAMP, NAS_PORT, NAS_PORT_ID = 52, 53, 55, 5, 87
# RFC 3162 §2.3, RFC 4818 §3, RFC 6911 §3.1
FRAMED_IPV6_PREFIX, DELEGATED_IPV6_PREFIX, FRAMED_IPV6_ADDRESS = 97, 123, 168


@dataclass(frozen=True, slots=True)
class AcctRecord:
    nas: str
    status: int
    acct_session_id: str
    unique_id: str
    idem_key: str
    event_time: float
    username: str = ""
    nas_port: str = ""
    framed_ip: str | None = None
    input_octets: int = 0
    output_octets: int = 0
    input_packets: int = 0
    output_packets: int = 0
    session_time: int = 0
    terminate_cause: int | None = None
    delay_time: int = 0
    attributes: dict[str, Any] = field(default_factory=dict)
    framed_ipv6_address: str | None = None  # RFC 6911 §3.1
    framed_ipv6_prefix: str | None = None  # RFC 3162 §2.3
    delegated_ipv6_prefix: str | None = None  # RFC 4818

    @property
    def ipv6(self) -> tuple[str, ...]:
        """The IPv6 address and prefixes the session holds (its live index entries)."""
        return tuple(
            x
            for x in (self.framed_ipv6_address, self.framed_ipv6_prefix, self.delegated_ipv6_prefix)
            if x
        )

    @property
    def is_session_event(self) -> bool:
        return self.status in (AcctStatus.START, AcctStatus.INTERIM_UPDATE, AcctStatus.STOP)


def _first(pkt: Packet) -> dict[int, bytes]:
    """Each attribute's first value, by type: one pass, then dictionary lookups (a record
    reads some 17 attributes)."""
    first: dict[int, bytes] = {}
    for atype, value in pkt.attributes:
        if atype not in first:
            first[atype] = value
    return first


def _int(attrs: dict[int, bytes], attr: int) -> int | None:
    raw = attrs.get(attr)
    if raw is None:
        return None
    if len(raw) != 4:
        raise DecodeError(DropReason.MALFORMED, f"attribute {attr} is not 4 octets")
    return int.from_bytes(raw, "big")


def text(raw: bytes) -> str:
    """A text attribute as it can be stored: UTF-8 (invalid octets replaced), trailing NULs
    (C-string padding some NAS send) stripped and any other NUL replaced. PostgreSQL's text
    and JSONB refuse U+0000, and one record holding it would fail its whole batch."""
    out = raw.decode("utf-8", "replace")
    if "\0" in out:
        out = out.rstrip("\0").replace("\0", "\ufffd")
    return out


def _text(attrs: dict[int, bytes], attr: int) -> str:
    raw = attrs.get(attr)
    return text(raw) if raw is not None else ""


def _key(*parts: object) -> str:
    return hashlib.sha256("\0".join(str(p) for p in parts).encode()).hexdigest()[:40]


def parse(pkt: Packet, nas: str, dictionary: Dictionary, now: float) -> AcctRecord:
    """The ledger record of an Accounting-Request (authenticator already verified).

    Raises DecodeError(MALFORMED) without Acct-Status-Type, or without Acct-Session-Id on a
    session event, or with integers of the wrong size.
    """
    a = _first(pkt)
    status = _int(a, STATUS_TYPE)
    if status is None:
        raise DecodeError(DropReason.MALFORMED, "no Acct-Status-Type")
    delay = _int(a, DELAY_TIME) or 0
    stamp = _int(a, EVENT_TIMESTAMP)
    event_time = float(stamp) if stamp is not None else now - delay
    sid = _text(a, SESSION_ID)
    session_event = status in (AcctStatus.START, AcctStatus.INTERIM_UPDATE, AcctStatus.STOP)
    if session_event and not sid:
        raise DecodeError(DropReason.MALFORMED, "session event without Acct-Session-Id")
    session_time = _int(a, SESSION_TIME) or 0
    port = _text(a, NAS_PORT_ID) or (str(_int(a, NAS_PORT)) if a.get(NAS_PORT) else "")
    if status == AcctStatus.INTERIM_UPDATE:
        idem = _key(nas, sid, status, session_time)
    elif session_event:
        idem = _key(nas, sid, status)
    else:
        idem = _key(nas, sid, status, int(event_time) // 10)
    framed = a.get(Attr.FRAMED_IP_ADDRESS)
    return AcctRecord(
        nas=nas,
        status=status,
        acct_session_id=sid,
        unique_id=_key(nas, sid, port) if sid else "",
        idem_key=idem,
        event_time=event_time,
        username=_text(a, Attr.USER_NAME),
        nas_port=port,
        framed_ip=socket.inet_ntoa(framed) if framed and len(framed) == 4 else None,
        input_octets=((_int(a, INPUT_GIGAWORDS) or 0) << 32) + (_int(a, INPUT_OCTETS) or 0),
        output_octets=((_int(a, OUTPUT_GIGAWORDS) or 0) << 32) + (_int(a, OUTPUT_OCTETS) or 0),
        input_packets=_int(a, INPUT_PACKETS) or 0,
        output_packets=_int(a, OUTPUT_PACKETS) or 0,
        session_time=session_time,
        terminate_cause=_int(a, TERMINATE_CAUSE),
        delay_time=delay,
        attributes=describe(pkt, dictionary),
        framed_ipv6_address=ledger.ipv6_address(a.get(FRAMED_IPV6_ADDRESS)),
        framed_ipv6_prefix=ledger.ipv6_prefix(a.get(FRAMED_IPV6_PREFIX)),
        delegated_ipv6_prefix=ledger.ipv6_prefix(a.get(DELEGATED_IPV6_PREFIX)),
    )


def describe(pkt: Packet, dictionary: Dictionary) -> dict[str, Any]:
    """Every attribute by dictionary name as FreeRADIUS prints it (``radius/ledger.py``);
    repeated attributes become lists."""
    return ledger.describe(pkt.attributes, dictionary)
