"""The authentication history (issue 21): one record per Access-Accept or Access-Reject.
Pure: the shell (``authlog_writer``) makes each row (``row``) as it is answered and copies them
into PostgreSQL off the hot path; ``AuthEvent`` is the same record for other writers.

A record says who (User-Name), where (NAS, NAS-Port-Id or NAS-Port, Calling-Station-Id),
how (the method), what came of it (accept or reject, and why), the plan applied and what
the Accept gave: addresses, prefixes and pool names. Access-Challenges are steps of an
exchange, not results, and are not recorded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from daemons.radius.acct import NAS_PORT, NAS_PORT_ID, text
from daemons.radius.auth import Outcome
from daemons.radius.codec import Attr, Code, Packet

# What an Accept gave that the history keeps (RFC 2865 §5.8, §5.88; RFC 3162; RFC 4818;
# RFC 6911), by name; a vendor's spelling of a pool is kept under its own name.
GIVEN = frozenset(
    {
        "Framed-IP-Address",
        "Framed-Pool",
        "Framed-IPv6-Address",
        "Framed-IPv6-Prefix",
        "Framed-IPv6-Pool",
        "Delegated-IPv6-Prefix",
        "Delegated-IPv6-Prefix-Pool",
        "ERX-IPv6-NdRa-Pool-Name",
        "ERX-IPv6-Delegated-Pool-Name",
        "Huawei-Framed-IPv6-Address",
        "Huawei-Delegated-IPv6-Prefix-Pool",
        "Mikrotik-Delegated-IPv6-Pool",
    }
)


@dataclass(frozen=True, slots=True)
class AuthEvent:
    at: float
    username: str
    nas: str
    nas_port: str
    calling_station: str
    method: str
    result: str  # "accept" or "reject"
    reason: str
    plan: str | None
    given: dict[str, Any] = field(default_factory=dict)


Row = tuple[datetime, str, str, str, str, str, str, str, str | None, str]
_PORT_ATTRS = (NAS_PORT_ID, NAS_PORT, Attr.CALLING_STATION_ID)


def row(pkt: Packet, nas: str, username: str | None, outcome: Outcome, now: float) -> Row:
    """The table row of an Accept or Reject, in one pass (what the writer copies in: a few
    µs a request, off the reply's path)."""
    port_id = port = calling = None
    for t, v in pkt.attributes:
        if t in _PORT_ATTRS:
            if t == NAS_PORT_ID:
                port_id = v
            elif t == NAS_PORT:
                port = v
            else:
                calling = v
    accept = outcome.code == Code.ACCESS_ACCEPT
    given = "{}"
    if accept:
        found = tuple((a.name, a.value) for a in outcome.attributes if a.name in GIVEN)
        if found:
            given = _GIVEN.get(found) or _given(found)
    return (
        datetime.fromtimestamp(now, UTC),
        username or "",
        nas,
        text(port_id) if port_id else (str(int.from_bytes(port, "big")) if port else ""),
        text(calling) if calling else "",
        outcome.method.value,
        "accept" if accept else "reject",
        outcome.reason,
        outcome.plan or None,
        given,
    )


_GIVEN: dict[tuple[tuple[str, Any], ...], str] = {}


def _given(found: tuple[tuple[str, Any], ...]) -> str:
    """The JSON of what an Accept gave; the same few (a plan's pool names) are kept."""
    text = json.dumps({name: str(value) for name, value in found})
    if len(_GIVEN) >= 4096:
        _GIVEN.clear()
    _GIVEN[found] = text
    return text


COLUMNS = (
    "at",
    "username",
    "nas",
    "nas_port",
    "calling_station",
    "method",
    "result",
    "reason",
    "plan",
    "given",
)


def reject_data(r: Row) -> dict[str, object]:
    """The event-stream entry of a rejected row (``auth.reject``)."""
    return {
        "user": r[1],
        "nas": r[2],
        "nas_port": r[3],
        "calling_station": r[4],
        "method": r[5],
        "reason": r[7],
        "time": r[0].timestamp(),
    }
